namespace Kto.Cluster.Core;

/// <summary>
/// Stops a host when its stdin reaches end of file: a host started by a launcher (<c>kto up</c>) with
/// <c>--stop-when-stdin-closes</c> reads a pipe only the launcher writes, which the kernel closes when the launcher dies
/// in any way, SIGKILL included. Then the host stops as on SIGTERM (a trainer leaves gracefully).
/// </summary>
public static class StdinWatch
{
    /// <summary>The command-line flag.</summary>
    public const string Flag = "--stop-when-stdin-closes";

    /// <summary>Calls <paramref name="onClosed"/> once stdin is closed (reads and discards anything written to it).</summary>
    public static void Start(Action onClosed)
    {
        _ = Task.Run(async () =>
        {
            var buffer = new byte[256];
            try
            {
                await using Stream stdin = Console.OpenStandardInput();
                while (await stdin.ReadAsync(buffer) > 0)
                {
                }
            }
            catch (IOException)
            {
                // a broken pipe is closed too
            }
            Console.Error.WriteLine("stdin closed (the launcher is gone): stopping");
            onClosed();
        });
    }
}
