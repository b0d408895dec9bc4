using Kto.Cluster.Cmd.Cluster;
using RadLine;
using Spectre.Console;

namespace Kto.Cluster.Cmd.Tests;

/// <summary>
/// The interactive prompt's completion and history: the completion's candidates, and the line editor driven key by key
/// (Tab, Up, Down, Enter) on an in-memory ANSI terminal, as a user at a terminal would type.
/// </summary>
public sealed class InteractivePromptTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-prompt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Keys typed in advance, read in order.</summary>
    private sealed class Keys : IInputSource
    {
        private readonly Queue<ConsoleKeyInfo> _keys = new();

        public bool ByPassProcessing => true;

        public bool IsKeyAvailable() => _keys.Count > 0;

        public ConsoleKeyInfo ReadKey() => _keys.Dequeue();

        public Keys Type(string text)
        {
            foreach (char c in text) _keys.Enqueue(new ConsoleKeyInfo(c, c == ' ' ? ConsoleKey.Spacebar : ConsoleKey.A, false, false, false));
            return this;
        }

        public Keys Press(ConsoleKey key)
        {
            _keys.Enqueue(new ConsoleKeyInfo(key switch { ConsoleKey.Tab => '\t', ConsoleKey.Enter => '\r', _ => '\0' }, key, false, false, false));
            return this;
        }
    }

    private static IAnsiConsole Terminal() => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Ansi = AnsiSupport.Yes,
        ColorSystem = ColorSystemSupport.NoColors,
        Interactive = InteractionSupport.Yes,
        Out = new AnsiConsoleOutput(new StringWriter()),
    });

    private static readonly PaletteCompletion Completion = new(command => command switch
    {
        "node drain" => ["t1", "t2"],
        "cluster down" => ["akka.tcp://kto@10.0.0.5:4053"],
        _ => [],
    });

    [Theory]
    [InlineData("", "cluster,run,node,help,exit,quit")]
    [InlineData("run ", "status,start,pause,resume,stop,checkpoint,history,tail")]
    [InlineData("cluster ", "show,status,leader,leave,down,down-unreachable,join")]
    [InlineData("node ", "list,drain")]
    [InlineData("node drain ", "t1,t2")]
    [InlineData("cluster down ", "akka.tcp://kto@10.0.0.5:4053")]
    [InlineData("run history ", "--since")]
    [InlineData("run tail ", "--once")]
    [InlineData("run status ", "")]
    [InlineData("bogus ", "")]
    [InlineData("node drain t1 ", "")]
    public void CompletionOffersPalettesThenVerbsThenWhatTheClusterKnows(string before, string expected)
    {
        Assert.Equal(expected, string.Join(",", Completion.GetCompletions(before, "", "")!));
    }

    [Fact]
    public void TheClustersValuesComeFromTheTablesTheHostRenders()
    {
        // As CommandReceptionistActor renders node list and cluster show (padded cells, header first).
        const string nodes = """
            node | role    | address         | held step | reachable | state
            t1   | trainer | 127.0.0.1:40001 | 12        | true      | in step
            t12  | trainer | 127.0.0.1:40002 | -         | true      | loading
            s1   | scorer  | 127.0.0.1:40003 | -         | true      | idle
            """;
        const string members = """
            address                        | roles         | status | unreachable
            akka.tcp://kto@127.0.0.1:4053  | [coordinator] | Up     | false
            akka.tcp://kto@10.0.0.5:4053   | [trainer]     | Up     | true
            """;
        Assert.Equal(["t1", "t12"], CommandClient.ArgumentValuesIn("node drain", nodes));
        Assert.Equal(["akka.tcp://kto@127.0.0.1:4053", "akka.tcp://kto@10.0.0.5:4053"], CommandClient.ArgumentValuesIn("cluster down", members));
        Assert.Equal("cluster show", CommandClient.ArgumentSource("cluster join") is { } r ? $"{r.Palette} {r.Verb}" : "");
        Assert.Equal("node list", CommandClient.ArgumentSource("node drain") is { } n ? $"{n.Palette} {n.Verb}" : "");
        Assert.Null(CommandClient.ArgumentSource("run pause"));
    }

    [Fact]
    public void TabCompletesAndTheArrowsRecallEarlierCommandsAlsoInTheNextSession()
    {
        string history = Path.Combine(_dir, ".kto_history");
        var keys = new Keys()
            .Type("ru").Press(ConsoleKey.Tab).Type(" hi").Press(ConsoleKey.Tab).Press(ConsoleKey.Enter)
            .Type("node dr").Press(ConsoleKey.Tab).Type(" ").Press(ConsoleKey.Tab).Press(ConsoleKey.Tab).Press(ConsoleKey.Enter)
            .Press(ConsoleKey.UpArrow).Press(ConsoleKey.Enter)
            .Press(ConsoleKey.UpArrow).Press(ConsoleKey.UpArrow).Press(ConsoleKey.Enter)
            .Press(ConsoleKey.UpArrow).Press(ConsoleKey.UpArrow).Press(ConsoleKey.DownArrow).Press(ConsoleKey.Enter);
        var prompt = new InteractivePrompt("kto 127.0.0.1:4053>", Completion, history, Terminal(), keys);
        Assert.True(prompt.Editing);
        Assert.Equal("run history", prompt.ReadLine());
        Assert.Equal("node drain t2", prompt.ReadLine()); // a second Tab moves on to the next candidate
        Assert.Equal("node drain t2", prompt.ReadLine()); // Up: the last command
        Assert.Equal("run history", prompt.ReadLine());   // Up twice: the one before (a repeated line is kept once)
        Assert.Equal("run history", prompt.ReadLine());   // Up twice, Down once: back to the last

        Assert.Equal(["run history", "node drain t2", "run history"], File.ReadAllLines(history));
        if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(history));

        // A new session starts with the history of the last one.
        var next = new InteractivePrompt("kto 127.0.0.1:4053>", Completion, history, Terminal(),
            new Keys().Press(ConsoleKey.UpArrow).Press(ConsoleKey.UpArrow).Press(ConsoleKey.Enter));
        Assert.Equal("node drain t2", next.ReadLine());
    }

    [Fact]
    public void TheHistoryFileKeepsTheLatestLines()
    {
        string history = Path.Combine(_dir, ".kto_history");
        File.WriteAllLines(history, Enumerable.Range(0, InteractivePrompt.HistoryLines).Select(i => $"run status {i}"));
        var prompt = new InteractivePrompt("kto>", Completion, history, Terminal(), new Keys().Type("node list").Press(ConsoleKey.Enter));
        Assert.Equal("node list", prompt.ReadLine());
        string[] kept = File.ReadAllLines(history);
        Assert.Equal(InteractivePrompt.HistoryLines, kept.Length);
        Assert.Equal("run status 1", kept[0]);
        Assert.Equal("node list", kept[^1]);
    }
}
