namespace Kto.Cluster.GpuNode.Tests;

/// <summary>The replica's tasks run one at a time, in order, on one thread for the engine's life.</summary>
public sealed class TrainerEngineTests
{
    [Fact]
    public async Task EveryTaskRunsOnTheReplicasOwnThreadAndAFailedOneLeavesItUsable()
    {
        await using TrainerEngine engine = await TrainerEngine.StartAsync("127.0.0.1:0", CancellationToken.None);
        int first = await engine.Run(() => Environment.CurrentManagedThreadId);
        Assert.Equal("replica", await engine.Run(() => Thread.CurrentThread.Name));
        Assert.NotEqual(Environment.CurrentManagedThreadId, first);
        var failure = await Assert.ThrowsAsync<InvalidDataException>(() => engine.Run<int>(() => throw new InvalidDataException("bad image")));
        Assert.Equal("bad image", failure.Message);
        Assert.Equal(first, await engine.Run(() => Environment.CurrentManagedThreadId));
    }

    [Fact]
    public async Task ASecondTaskWhileOneRunsIsRefused()
    {
        await using TrainerEngine engine = await TrainerEngine.StartAsync("127.0.0.1:0", CancellationToken.None);
        using var release = new ManualResetEventSlim();
        Task<int> running = engine.Run(() =>
        {
            release.Wait();
            return 1;
        });
        var refused = Record.Exception(() => { _ = engine.Run(() => 2); }); // thrown by the call, not by a task
        Assert.IsType<InvalidOperationException>(refused);
        release.Set();
        Assert.Equal(1, await running);
    }
}
