using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Kto.Domain.Cluster;
using Kto.Domain.Training;

namespace Kto.Domain.Tests.Cluster;

/// <summary>
/// <see cref="StepDriver"/> driven by random interleavings of registrations, restarts, kills, reachability changes,
/// leaves, reports (some with wrong checksums), failed attempts, state transfers, checkpoint loads and writes,
/// evaluations, operator pause/resume/stop/pause points, checkpoint requests, time-outs and coordinator restarts. A
/// harness plays the journal (<see cref="RunState"/>, persisted at once as Akka.Persistence's Persist does: no command
/// runs in between) and the trainers (which answer what they are sent, late or never). After the storm comes a calm
/// phase (everyone reachable, the run resumed, at least one trainer) in which the run must finish.
/// </summary>
public sealed class StepDriverPropertyTests
{
    private const int TotalSteps = 12;

    /// <summary>Random histories: every invariant holds after every input, and the run finishes once things calm down.</summary>
    [Property(MaxTest = 1000)]
    public Property EveryInterleavingKeepsTheInvariantsAndTheRunFinishesOnceTheStormIsOver(int seed, PositiveInt length)
    {
        var sim = new Simulation(seed);
        string? violation = sim.Run(storm: 40 + length.Get % 400);
        return (violation is null).Label(violation ?? "");
    }

    [Fact]
    public void OneTrainerAloneCommitsEveryStepInOrderAndTheRunCompletesWithItsFinalCheckpoint()
    {
        var sim = new Simulation(seed: 7);
        Assert.Null(sim.Run(storm: 0));
        Assert.Equal(Enumerable.Range(0, TotalSteps), sim.Committed);
        Assert.Equal(RunPhase.Completed, sim.Journal.Phase);
        Assert.Equal(TotalSteps, sim.Journal.LatestCheckpoint?.Step);
        Assert.True(sim.FinishedComplete);
    }

    [Fact]
    public void ALoneTrainerClaimingMoreStepsThanTheJournalLoadsTheLatestCheckpointAndReplaysFromIt()
    {
        RunState journal = RunState.Empty.Apply(new CoordinatorIncarnated(1, "test")).Apply(new RunStarted(Simulation.Spec()));
        for (int step = 0; step < 6; step++) journal = journal.Apply(new StepCommitted(step, step + 1, ["t1"], 1));
        journal = journal.Apply(new CheckpointSaved(5, "/out/checkpoint-5", "sha"));
        var now = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var context = new StepDriverContext(journal, now);
        var (state, _) = StepDriver.Handle(StepDriverState.Empty, context, new DriverReady());
        (state, var outputs) = StepDriver.Handle(state, context, new TrainerRegistration("t1", "127.0.0.1:1", 9, NewProcess: false, "process 1"));
        Assert.Contains(outputs, o => o is DriverLog { Level: DriverLogLevel.Error } l && l.Line.Contains("claims 9 steps, more than the journal's 6", StringComparison.Ordinal));
        var load = Assert.Single(outputs.OfType<SendToTrainer>().Select(o => o.Message).OfType<LoadCheckpoint>());
        Assert.Equal(("/out/checkpoint-5", 5), (load.Path, load.Step));
        Assert.True(state.Trainers["t1"].CatchingUp);

        // Loaded: it registers with the checkpoint's step and step 6 (index 5) is replayed, not committed again.
        (state, outputs) = StepDriver.Handle(state, context, new TrainerRegistration("t1", "127.0.0.1:1", 5, NewProcess: false, "process 1"));
        var start = Assert.Single(outputs.OfType<SendToTrainer>().Select(o => o.Message).OfType<StepStart>());
        Assert.Equal(5, start.Step);
        Assert.True(state.Replay);
    }

    [Fact]
    public void ACommitSaysHowLongTheFastestMemberWaitedForTheSlowest()
    {
        RunState journal = RunState.Empty.Apply(new CoordinatorIncarnated(1, "test")).Apply(new RunStarted(Simulation.Spec()));
        var context = new StepDriverContext(journal, new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        var (state, _) = StepDriver.Handle(StepDriverState.Empty with { MinTrainers = 2 }, context, new DriverReady());
        (state, _) = StepDriver.Handle(state, context, new TrainerRegistration("t1", "127.0.0.1:1", 0, NewProcess: false, "process 1"));
        (state, var outputs) = StepDriver.Handle(state, context, new TrainerRegistration("t2", "127.0.0.1:2", 0, NewProcess: false, "process 2"));
        var start = outputs.OfType<SendToTrainer>().Select(o => o.Message).OfType<StepStart>().First();
        Assert.Equal(["t1", "t2"], start.Members);
        StepReduced Report(string id, double seconds, double exchange) =>
            new(id, start.Step, start.Generation, 42, MetricVector.From(StepMetrics.Zero), 1.0, seconds, exchange);
        // Both end their all-reduce at about the same time; t2 computed 0.30 s, t1 0.20 s and waited in the exchange.
        (state, _) = StepDriver.Handle(state, context, new ReductionReported(Report("t2", 0.32, 0.02), 0.33));
        (state, outputs) = StepDriver.Handle(state, context, new ReductionReported(Report("t1", 0.33, 0.13), 0.33));
        var persist = Assert.Single(outputs.OfType<PersistCommit>());
        context = new StepDriverContext(journal.Apply(persist.Commit), context.Now);
        (_, outputs) = StepDriver.Handle(state, context, new CommitPersisted());
        var announced = Assert.Single(outputs.OfType<CommitAnnounced>());
        Assert.Equal(0.11, announced.StragglerWait, 12); // t1's 0.13 s in the all-reduces less t2's 0.02 s
        Assert.Equal("t2", announced.Slowest);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void WithBalanceShardsAMemberSlowerPerExampleIsGivenASmallerShareOfTheNextSteps(bool balance)
    {
        // No checkpoints or evaluations on the way: every commit is followed by the next StepStart at once.
        RunSpec spec = Simulation.Spec() with
        {
            TotalSteps = 40,
            ConfigJson = """{"model_name_or_path": "m", "dataset_path": "d.jsonl", "output_dir": "/out", "save_steps": 1000, "logging_steps": 1, "max_steps": 40, "balance_shards": BALANCE}""".Replace("BALANCE", balance ? "true" : "false", StringComparison.Ordinal),
        };
        RunState journal = RunState.Empty.Apply(new CoordinatorIncarnated(1, "test")).Apply(new RunStarted(spec));
        var context = new StepDriverContext(journal, new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        var (state, _) = StepDriver.Handle(StepDriverState.Empty with { MinTrainers = 2 }, context, new DriverReady());
        (state, _) = StepDriver.Handle(state, context, new TrainerRegistration("t1", "127.0.0.1:1", 0, NewProcess: false, "process 1"));
        (state, var outputs) = StepDriver.Handle(state, context, new TrainerRegistration("t2", "127.0.0.1:2", 0, NewProcess: false, "process 2"));
        int measured = ShardBalance.Hold + 1; // the first commit starts the count; Hold measured ones follow
        for (int step = 0; step < measured; step++)
        {
            var start = outputs.OfType<SendToTrainer>().Select(o => o.Message).OfType<StepStart>().Last();
            Assert.Equal(step, start.Step);
            Assert.Null(start.Shares); // equal until every member is measured
            StepReduced Report(string id, double seconds) =>
                new(id, start.Step, start.Generation, 42, MetricVector.From(StepMetrics.Zero), 1.0, seconds, 0.02);
            // t2 computes its 2 of the 4 examples in twice t1's time.
            (state, _) = StepDriver.Handle(state, context, new ReductionReported(Report("t1", 0.12), 0.3));
            (state, outputs) = StepDriver.Handle(state, context, new ReductionReported(Report("t2", 0.22), 0.3));
            var persist = Assert.Single(outputs.OfType<PersistCommit>());
            journal = journal.Apply(persist.Commit);
            context = new StepDriverContext(journal, context.Now);
            (state, outputs) = StepDriver.Handle(state, context, new CommitPersisted());
        }
        var next = outputs.OfType<SendToTrainer>().Select(o => o.Message).OfType<StepStart>().Last();
        Assert.Equal(measured, next.Step);
        if (!balance)
        {
            Assert.Null(next.Shares); // off (the default): equal shares whatever the members' speed
            return;
        }
        Assert.Equal([3, 1], ShardPlan.Apportion(4, next.Shares!));
        Assert.Contains(outputs.OfType<DriverLog>(), l => l.Line.Contains("rebalanced", StringComparison.Ordinal));
    }

    /// <summary>The harness. Trainers are t0…t3; each holds a step and at most one attempt.</summary>
    private sealed class Simulation(int seed)
    {
        private readonly Random _random = new(seed);
        private StepDriverState _state = StepDriverState.Empty;
        private DateTime _now = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        private readonly Dictionary<string, SimTrainer> _trainers = new(StringComparer.Ordinal);
        private readonly List<Action> _pending = [];
        private readonly Dictionary<(int Step, long Generation), Dictionary<string, ulong>> _reported = [];
        private readonly HashSet<long> _generationsCommitted = [];
        private bool _retryDue;
        private (int Step, string Id, int Process, DateTime At)? _evaluationAsked;
        private readonly HashSet<int> _evaluationsRecorded = [];
        private bool _chaos = true;
        private string? _violation;
        private int _processes;

        public RunState Journal { get; private set; } = RunState.Empty;

        public List<int> Committed { get; } = [];

        public bool FinishedComplete { get; private set; }

        private bool Finished { get; set; }

        private sealed class SimTrainer(int process)
        {
            public int Process { get; } = process;
            public int Held { get; set; }
            public (int Step, long Generation)? Attempt { get; set; }
        }

        private static ulong Correct(int step) => 0x9E3779B97F4A7C15UL * (ulong)(step + 1);

        public static RunSpec Spec() => new("prop", "fp", ExampleCount: 8, Seed: 1, Shuffle: false, GlobalBatchSize: 4, Accumulation: 1, TotalSteps: TotalSteps,
            ConfigJson: $$"""{"model_name_or_path": "m", "dataset_path": "d.jsonl", "output_dir": "/out", "save_steps": 5, "logging_steps": 1, "max_steps": {{TotalSteps}}, "eval_strategy": "steps", "eval_steps": 4, "eval_dataset_path": "e.jsonl"}""");

        public string? Run(int storm)
        {
            Journal = Journal.Apply(new CoordinatorIncarnated(1, "harness")).Apply(new RunStarted(Spec()));
            _state = StepDriverState.Empty with { MinTrainers = 1 + _random.Next(2) };
            Handle(new DriverReady());
            for (int i = 0; i < storm && _violation is null && !Finished; i++) Chaos();
            _chaos = false;
            for (int i = 0; i < 20_000 && _violation is null && !Finished; i++) Calm();
            if (_violation is null && !Finished) _violation = $"the run did not finish after the storm: {Journal.Phase}, {Journal.CommittedSteps}/{TotalSteps} committed, round {_state.Round?.Step}, trainers {string.Join(",", _state.Trainers.Select(kv => $"{kv.Key}@{kv.Value.HeldStep}{(kv.Value.CatchingUp ? "c" : "")}"))}, excluded {string.Join(",", _state.Excluded)}";
            if (_violation is null && Journal.Phase != RunPhase.Stopped && !(FinishedComplete && Journal.Phase == RunPhase.Completed && Journal.CommittedSteps == TotalSteps && Journal.LatestCheckpoint?.Step == TotalSteps))
                _violation = $"the run ended {Journal.Phase} with {Journal.CommittedSteps} steps and checkpoint {Journal.LatestCheckpoint?.Step}";
            return _violation;
        }

        private string Id(int i) => $"t{i}";

        private void Chaos()
        {
            _now += TimeSpan.FromMilliseconds(_random.Next(2000));
            int roll = _random.Next(100);
            string id = Id(_random.Next(4));
            if (roll < 45 && _pending.Count > 0) Deliver(_random.Next(_pending.Count));
            else if (roll < 50) Start(id, newProcess: true);
            else if (roll < 51) Start(id, newProcess: true, held: RegisterTrainer.NoState); // loads the run, then registers again
            else if (roll < 52 && Journal.LatestCheckpoint is not null) Start(id, newProcess: true, held: Journal.CommittedSteps + 1 + _random.Next(3)); // claims more than the journal (re-synced from a peer or the checkpoint)
            else if (roll < 53 && _trainers.Remove(id)) Handle(new TrainerGone(id, Refused: true));
            else if (roll < 56 && _trainers.Remove(id)) Handle(new TrainerGone(id, Refused: false));
            else if (roll < 62) Handle(new TrainersExcluded(_state.Trainers.Keys.Where(_ => _random.Next(4) == 0).ToDictionary(k => k, _ => "unreachable")));
            else if (roll < 64 && _trainers.ContainsKey(id)) Handle(new TrainerLeave(id));
            else if (roll < 68 && Journal.Phase == RunPhase.Running) Operator(new RunPaused());
            else if (roll < 73 && Journal.Phase == RunPhase.Paused) Operator(new RunResumed());
            else if (roll < 74 && _random.Next(4) == 0 && Journal.Phase is RunPhase.Running or RunPhase.Paused) Operator(new RunStopped());
            else if (roll < 76 && Journal.Phase is RunPhase.Running or RunPhase.Paused && Journal.CommittedSteps + 1 < TotalSteps)
                Handle(new PausePointSet(_random.Next(Journal.CommittedSteps + 1, TotalSteps)));
            else if (roll < 78 && Journal.Phase is RunPhase.Running or RunPhase.Paused) Handle(new CheckpointAsked());
            else if (roll < 80) RestartCoordinator();
            else if (roll < 82) { _now += TimeSpan.FromMinutes(6); Handle(new DriverTick()); }
            else if (roll < 90 && _retryDue) { _retryDue = false; Handle(new RetryDue()); }
            else Handle(new DriverTick());
        }

        private void Calm()
        {
            if (_state.Excluded.Count > 0) Handle(new TrainersExcluded(new Dictionary<string, string>()));
            else if (!_trainers.Keys.Any(k => !_state.Trainers.TryGetValue(k, out var t) || !t.Leaving)) Start(Id(_random.Next(4)), newProcess: true);
            else if (Journal.Phase == RunPhase.Paused) Operator(new RunResumed());
            else if (_pending.Count > 0) Deliver(0);
            else if (_retryDue) { _retryDue = false; Handle(new RetryDue()); }
            else
            {
                _now += TimeSpan.FromSeconds(1);
                Handle(new DriverTick());
            }
        }

        /// <summary>A trainer process starts (or restarts: a new process under the id) holding <paramref name="held"/> steps (the model: 0) and registers.</summary>
        private void Start(string id, bool newProcess, int held = 0)
        {
            bool known = _state.Trainers.ContainsKey(id);
            var t = new SimTrainer(++_processes) { Held = held };
            _trainers[id] = t;
            Handle(new TrainerRegistration(id, $"127.0.0.1:{t.Process}", held, NewProcess: newProcess && known, $"process {t.Process}"));
            if (held == RegisterTrainer.NoState)
                _pending.Add(() =>
                {
                    if (!_trainers.TryGetValue(id, out var now) || now.Process != t.Process) return;
                    now.Held = 0;
                    Register(id, now);
                });
        }

        private void Register(string id, SimTrainer t) => Handle(new TrainerRegistration(id, $"127.0.0.1:{t.Process}", t.Held, NewProcess: false, $"process {t.Process}"));

        /// <summary>An event persisted outside the driver's commits; like the actor, a run whose every step is committed completes.</summary>
        private void Operator(IRunEvent e)
        {
            Journal = Journal.Apply(e);
            Handle(new RunEventApplied(e));
            if (Journal.Phase == RunPhase.Running && Journal.CommittedSteps == TotalSteps) Operator(new RunCompleted(TotalSteps));
        }

        /// <summary>A new coordinator incarnation: the driver starts empty, the trainers register again (their attempts were for the old one).</summary>
        private void RestartCoordinator()
        {
            Journal = Journal.Apply(new CoordinatorIncarnated(Journal.Incarnation + 1, "harness"));
            _state = StepDriverState.Empty with { MinTrainers = 1 + _random.Next(2) };
            _retryDue = false;
            _evaluationAsked = null; // a new incarnation waits for no evaluation the last one asked for
            foreach (var t in _trainers.Values) t.Attempt = null;
            Handle(new DriverReady());
            foreach (var (id, t) in _trainers.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList()) Register(id, t);
        }

        private void Deliver(int index)
        {
            Action a = _pending[index];
            _pending.RemoveAt(index);
            a();
        }

        private void Handle(IDriverInput input)
        {
            if (_violation is not null) return;
            StepDriverState before = _state;
            var (after, outputs) = StepDriver.Handle(_state, new StepDriverContext(Journal, _now), input);
            _state = after;
            Check(before, input, outputs);
            // As the actor does: every output is carried out in order; a persist's handler (which feeds the driver its
            // next input) runs after the whole batch, as Akka.Persistence runs it after the current command.
            var persisted = new List<Action>();
            foreach (IDriverOutput output in outputs)
            {
                if (_violation is not null) return;
                if (output is PersistCommit c) persisted.Add(() => Commit(c.Commit));
                else if (output is PersistRunEvent e) persisted.Add(() => Operator(e.Event));
                else Execute(output);
            }
            foreach (Action handler in persisted) handler();
        }

        private void Check(StepDriverState before, IDriverInput input, IReadOnlyList<IDriverOutput> outputs)
        {
            // A lost or left-out member's attempt is aborted at once (no time-out to wait for).
            string[] lost = input switch
            {
                TrainerGone g => [g.Id],
                TrainersExcluded e => [.. e.Reasons.Keys],
                _ => [],
            };
            foreach (string id in lost)
                if (_state.Round is { } r && r.Members.Contains(id) && !_state.Committing)
                    _violation ??= $"{input}: the attempt of step {r.Step} generation {r.Generation} still waits for {id}";
            foreach (StepStart s in outputs.OfType<SendToTrainer>().Select(o => o.Message).OfType<StepStart>())
            {
                if (s.Members.Any(m => !_state.Trainers.ContainsKey(m) || _state.Excluded.Contains(m)))
                    _violation ??= $"step {s.Step} generation {s.Generation} started with an unregistered or excluded member: {string.Join(",", s.Members)}";
                if (!Journal.AcceptsSteps && s.Step >= Journal.CommittedSteps)
                    _violation ??= $"step {s.Step} started while the run is {Journal.Phase} (not a replay)";
            }
        }

        private void Execute(IDriverOutput output)
        {
            switch (output)
            {
                case SendToTrainer s when _trainers.TryGetValue(s.TrainerId, out var t):
                    Receive(s.TrainerId, t, s.Message);
                    break;
                case FetchStateFrom f when _trainers.TryGetValue(f.TrainerId, out var t):
                    int process = t.Process;
                    _pending.Add(() =>
                    {
                        if (!_trainers.TryGetValue(f.TrainerId, out var now) || now.Process != process) return;
                        if (_trainers.TryGetValue(f.SourceId, out var source) && source.Held == f.Step) now.Held = f.Step;
                        Register(f.TrainerId, now);
                    });
                    break;
                case ForgetTrainer f when _state.Trainers.ContainsKey(f.TrainerId):
                    _violation ??= $"{f.TrainerId} forgotten while the driver still counts it";
                    break;
                case ScheduleRetry:
                    _retryDue = true;
                    break;
                case RunFinished f:
                    // The end waits for the newest evaluation asked of a live, reachable trainer within its deadline.
                    if (_evaluationAsked is { } asked && !_evaluationsRecorded.Contains(asked.Step) && _trainers.TryGetValue(asked.Id, out var evaluator)
                        && evaluator.Process == asked.Process && !_state.Excluded.Contains(asked.Id) && _now < asked.At + StepDriver.CatchUpTimeout)
                        _violation ??= $"the run finished while {asked.Id}'s evaluation of step {asked.Step} was still due";
                    Finished = true;
                    FinishedComplete = f.Complete;
                    if (f.Complete && (Journal.Phase != RunPhase.Completed || Journal.LatestCheckpoint?.Step != TotalSteps))
                        _violation ??= $"announced complete at {Journal.Phase} with checkpoint {Journal.LatestCheckpoint?.Step}";
                    break;
            }
        }

        /// <summary>A commit the driver asks to persist: only the next step, only while running, only with every member's matching report.</summary>
        private void Commit(StepCommitted c)
        {
            if (Journal.Phase != RunPhase.Running) _violation ??= $"step {c.Step} committed while the run is {Journal.Phase}";
            if (c.Step != Journal.CommittedSteps || Committed.Contains(c.Step)) _violation ??= $"step {c.Step} committed with {Journal.CommittedSteps} committed ({string.Join(",", Committed)})";
            if (!_generationsCommitted.Add(c.Generation)) _violation ??= $"generation {c.Generation} committed twice";
            var reports = _reported.GetValueOrDefault((c.Step, c.Generation)) ?? [];
            foreach (string m in c.Members)
                if (!reports.TryGetValue(m, out ulong sum) || sum != c.Checksum)
                    _violation ??= $"step {c.Step} generation {c.Generation} committed without {m}'s matching report";
            if (_violation is not null) return;
            Committed.Add(c.Step);
            Journal = Journal.Apply(c);
            Handle(new CommitPersisted());
            if (Journal.Phase == RunPhase.Running && Journal.CommittedSteps == TotalSteps) Operator(new RunCompleted(TotalSteps));
        }

        private void Receive(string id, SimTrainer t, INodeMessage message)
        {
            int process = t.Process;
            bool Alive(out SimTrainer now) => _trainers.TryGetValue(id, out now!) && now.Process == process;
            switch (message)
            {
                case StepStart s:
                    // No second attempt while one is in flight: every trainer still holding another was told to abort or apply it.
                    if (_trainers.FirstOrDefault(kv => kv.Value.Attempt is { } other && other.Generation != s.Generation) is { Key: { } busy, Value: var holder })
                        _violation ??= $"step {s.Step} generation {s.Generation} started while {busy} still runs generation {holder.Attempt!.Value.Generation}";
                    t.Attempt = (s.Step, s.Generation);
                    bool fails = t.Held != s.Step || (_chaos && _random.Next(20) == 0);
                    ulong checksum = _chaos && _random.Next(25) == 0 ? (ulong)_random.NextInt64() : Correct(s.Step);
                    _pending.Add(() =>
                    {
                        if (!Alive(out var now) || now.Attempt != (s.Step, s.Generation)) return;
                        if (fails)
                        {
                            Handle(new AttemptFailed(new StepFailed(id, s.Step, s.Generation, "ring broke")));
                            return;
                        }
                        if (!_reported.TryGetValue((s.Step, s.Generation), out var sums)) _reported[(s.Step, s.Generation)] = sums = new(StringComparer.Ordinal);
                        sums[id] = checksum;
                        Handle(new ReductionReported(new StepReduced(id, s.Step, s.Generation, checksum, MetricVector.From(StepMetrics.Zero), 1.0), 0.5));
                    });
                    break;
                case StepAbort a when t.Attempt == (a.Step, a.Generation):
                    t.Attempt = null;
                    break;
                case StepApply a when t.Attempt == (a.Step, a.Generation):
                    t.Attempt = null;
                    t.Held = a.Step + 1;
                    if (a.CheckpointDir is not null) WriteLater(id, process, a.Step + 1);
                    if (a.Evaluate)
                    {
                        _evaluationAsked = (a.Step + 1, id, process, _now);
                        _pending.Add(() =>
                        {
                            if (!Alive(out _)) return; // the answer dies with the process
                            Journal = Journal.Apply(new EvaluationRecorded(a.Step + 1, new Dictionary<string, double>()));
                            _evaluationsRecorded.Add(a.Step + 1);
                            Handle(new EvaluationArrived(a.Step + 1));
                        });
                    }
                    break;
                case WriteCheckpoint w:
                    WriteLater(id, process, w.Step);
                    break;
                case LoadCheckpoint l:
                    _pending.Add(() =>
                    {
                        if (!Alive(out var now)) return;
                        now.Held = l.Step;
                        Register(id, now);
                    });
                    break;
                case LeaveGranted:
                    _trainers.Remove(id); // the process stops
                    break;
            }
        }

        /// <summary>A checkpoint of <paramref name="step"/> written later (if the process still holds that step), failing now and then during the storm.</summary>
        private void WriteLater(string id, int process, int step) => _pending.Add(() =>
        {
            if (!_trainers.TryGetValue(id, out var now) || now.Process != process || now.Held != step) return;
            if (_chaos && _random.Next(6) == 0)
            {
                Handle(new CheckpointWriteFailed(id, step, _now + TimeSpan.FromSeconds(5)));
                return;
            }
            var saved = new CheckpointSaved(step, $"/out/checkpoint-{step}", "sha");
            try
            {
                Journal.Apply(saved);
            }
            catch (InvalidOperationException)
            {
                return; // the coordinator does not record it (an older one than the newest)
            }
            Operator(saved);
        });
    }
}
