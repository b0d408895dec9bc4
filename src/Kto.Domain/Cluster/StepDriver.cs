using System.Collections.Immutable;
using System.Globalization;

namespace Kto.Domain.Cluster;

/// <summary>
/// The step protocol's decisions as a pure function <c>(state, input) → (state, outputs)</c>: step membership, attempts
/// and their retries, commits (persisted before any replica hears of them), replay after a reload, catch-up by state
/// transfer or checkpoint, leaves, pause and stop, checkpoints and the final checkpoint's writer, and the end of the run.
/// The coordinator actor only turns Akka messages into <see cref="IDriverInput"/>s and carries out the
/// <see cref="IDriverOutput"/>s (sends, persists, timers, log lines); the invariants are property-tested on random
/// interleavings (StepDriverPropertyTests). The protocol: docs/cluster.md "The step protocol".
/// </summary>
public static class StepDriver
{
    /// <summary>How long a trainer may take to load a checkpoint or take over a peer's state before it is left out.</summary>
    public static readonly TimeSpan CatchUpTimeout = TimeSpan.FromMinutes(5);

    /// <summary>How long a new incarnation of a run under way waits for its minimum of trainers before it goes on with fewer.</summary>
    public static readonly TimeSpan MinTrainersGrace = TimeSpan.FromSeconds(15);

    /// <summary>Pause before retrying a step whose attempt failed without a member being reported lost.</summary>
    public static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(300);

    /// <summary>The state <paramref name="input"/> leads to from <paramref name="state"/>, and what to do, in order.</summary>
    public static (StepDriverState State, IReadOnlyList<IDriverOutput> Outputs) Handle(StepDriverState state, StepDriverContext context, IDriverInput input)
    {
        var turn = new Turn(state, context);
        turn.On(input);
        return (turn.State, turn.Outputs);
    }

    /// <summary>One transition: the state as it changes and the outputs so far (local to one <see cref="Handle"/> call).</summary>
    private sealed class Turn(StepDriverState state, StepDriverContext context)
    {
        public StepDriverState State { get; private set; } = state;

        public List<IDriverOutput> Outputs { get; } = [];

        private RunState Run => context.Run;

        private DateTime Now => context.Now;

        private DriverSettings Settings
        {
            get
            {
                if (State.Settings is { } known) return known;
                DriverSettings read = DriverSettings.Of(Run.Spec!);
                State = State with { Settings = read };
                return read;
            }
        }

        public void On(IDriverInput input)
        {
            switch (input)
            {
                case DriverReady: Ready(); break;
                case TrainerRegistration r: Register(r); break;
                case TrainerGone g: Gone(g); break;
                case TrainerLeave l: Leave(l.Id); break;
                case TrainersExcluded e: Exclude(e.Reasons); break;
                case ReductionReported r: Reduced(r.Report, r.Seconds); break;
                case AttemptFailed f: Failed(f.Failure); break;
                case RetryDue: State = State with { RetryPending = false }; break;
                case CommitPersisted: Committed(); break;
                case RunEventApplied { Event: RunStopped }: State = State with { CheckpointRequested = true, PauseAt = null }; break;
                case RunEventApplied { Event: RunPaused } when State.Pausing: Paused(); break;
                case RunEventApplied: break;
                case PausePointSet p: State = State with { PauseAt = p.At }; break;
                case CheckpointAsked: State = State with { CheckpointRequested = true }; break;
                case CheckpointWriteFailed f: CheckpointFailed(f); break;
                case EvaluationArrived a when State.PendingEvaluation?.Step == a.Step: State = State with { PendingEvaluation = null }; break;
                case EvaluationArrived: break;
                case ScoresArrived: break;
                case DriverTick: Tick(); break;
                default: throw new ArgumentException($"unknown driver input {input.GetType().Name}", nameof(input));
            }
            CheckFinished();
            Pump();
        }

        private void Info(string line) => Outputs.Add(new DriverLog(DriverLogLevel.Info, line));

        private void Warn(string line) => Outputs.Add(new DriverLog(DriverLogLevel.Warning, line));

        private void Error(string line) => Outputs.Add(new DriverLog(DriverLogLevel.Error, line));

        private void Note(string line) => Outputs.Add(new DriverNote(line));

        private void Send(string id, INodeMessage message) => Outputs.Add(new SendToTrainer(id, message));

        private void SetTrainer(string id, DriverTrainer t) => State = State with { Trainers = State.Trainers.SetItem(id, t) };

        private bool Reachable(string id) => State.Trainers.ContainsKey(id) && !State.Excluded.Contains(id);

        private void Ready()
        {
            State = State with { Ready = true, ReadyAt = Now, Generation = Math.Max(State.Generation, GenerationNumbers.First(Run.Incarnation)) };
            if (Run.Phase == RunPhase.Stopped && Run.LatestCheckpoint?.Step != Run.CommittedSteps) State = State with { CheckpointRequested = true };
        }

        private void Register(TrainerRegistration r)
        {
            bool changed = true;
            if (State.Trainers.TryGetValue(r.Id, out var known))
            {
                changed = r.NewProcess || known.Endpoint != r.Endpoint || known.HeldStep != r.HeldStep || known.CatchingUp;
                if (r.NewProcess)
                {
                    State = State with { Excluded = State.Excluded.Remove(r.Id) };
                    if (State.Round?.Needs(r.Id) == true && !State.Committing) Lost(r.Id); // a restarted process cannot finish the old attempt
                }
                SetTrainer(r.Id, (State.Trainers[r.Id]) with { Endpoint = r.Endpoint, HeldStep = r.HeldStep, CatchUpDeadline = null, FetchingFrom = null });
            }
            else
            {
                SetTrainer(r.Id, new DriverTrainer(r.Endpoint, r.HeldStep));
                Note($"trainer {r.Id} joined at {r.Address} ({State.Trainers.Count} trainers)");
            }
            // A trainer repeats its registration until answered: only a change is worth a line.
            if (changed) Info($"trainer {r.Id} registered at {r.Endpoint} holding step {r.HeldStep} ({State.Trainers.Count} trainers)");
            Send(r.Id, new TrainerRegistered(r.Id, Run.CommittedSteps, Run.Incarnation, State.Trainers.Count, Run.Spec));
        }

        private void Gone(TrainerGone g)
        {
            if (!State.Trainers.ContainsKey(g.Id)) return;
            State = State with { Trainers = State.Trainers.Remove(g.Id), Excluded = State.Excluded.Remove(g.Id) };
            if (!g.Refused)
            {
                Info($"trainer {g.Id} lost ({State.Trainers.Count} trainers)");
                Note($"trainer {g.Id} lost ({State.Trainers.Count} trainers)");
            }
            Lost(g.Id);
        }

        private void Leave(string id)
        {
            if (!State.Trainers.TryGetValue(id, out var t)) return;
            SetTrainer(id, t with { Leaving = true });
            Info($"trainer {id} is leaving{(State.Round?.Needs(id) == true ? " after the current step" : "")}");
            Note($"trainer {id} is leaving");
        }

        private void Exclude(IReadOnlyDictionary<string, string> reasons)
        {
            var excluded = reasons.Keys.Where(State.Trainers.ContainsKey).ToImmutableHashSet(StringComparer.Ordinal);
            var newlyOut = excluded.Where(id => !State.Excluded.Contains(id)).Order(StringComparer.Ordinal).ToList();
            var backIn = State.Excluded.Where(id => State.Trainers.ContainsKey(id) && !excluded.Contains(id)).Order(StringComparer.Ordinal).ToList();
            State = State with { Excluded = excluded };
            int usable = State.Trainers.Count - excluded.Count;
            foreach (string id in backIn)
            {
                Info($"trainer {id} reachable again ({usable} usable trainers)");
                Note($"trainer {id} reachable again");
            }
            foreach (string id in newlyOut)
            {
                Info($"trainer {id} {reasons[id]}: excluded from step membership ({usable} usable trainers)");
                Note($"trainer {id} {reasons[id]}: excluded from step membership");
                Lost(id);
            }
        }

        /// <summary>A trainer can no longer take part: an attempt that needs it is aborted (and retried with the others by the pump).</summary>
        private void Lost(string id)
        {
            if (State.Trainers.TryGetValue(id, out var t) && (t.CatchingUp || t.FetchingFrom is not null))
                SetTrainer(id, t with { CatchUpDeadline = null, FetchingFrom = null });
            foreach (string fetcher in State.Trainers.Where(kv => kv.Value.FetchingFrom?.Source == id).Select(kv => kv.Key).ToList()) Refetch(fetcher);
            if (State.Round is { } r && r.Needs(id) && !State.Committing)
            {
                Info($"step {r.Step} generation {r.Generation}: member {id} lost; retrying with the survivors");
                Abort(r);
            }
        }

        /// <summary>
        /// The source of <paramref name="fetcher"/>'s state transfer is lost: it fetches at once from another reachable
        /// trainer holding the same step (instead of waiting for its stall time-out while every step waits); with none
        /// left, the next pump decides (another source, or the latest checkpoint).
        /// </summary>
        private void Refetch(string fetcher)
        {
            DriverTrainer t = State.Trainers[fetcher];
            var (lost, step) = t.FetchingFrom!.Value;
            SetTrainer(fetcher, t = t with { CatchUpDeadline = null, FetchingFrom = null });
            string? next = State.Trainers.Where(kv => kv.Key != lost && kv.Key != fetcher && !State.Excluded.Contains(kv.Key) && !kv.Value.Leaving && kv.Value.HeldStep == step)
                .Select(kv => kv.Key).FirstOrDefault();
            if (next is null) return;
            Outputs.Add(new FetchStateFrom(fetcher, step, next));
            SetTrainer(fetcher, t with { CatchUpDeadline = Now + CatchUpTimeout, FetchingFrom = (next, step) });
            Info($"trainer {fetcher}: its state source {lost} is lost; fetching the state of step {step} from {next} instead");
        }

        private void Abort(StepRound r)
        {
            foreach (string m in r.Members)
                if (State.Trainers.ContainsKey(m)) Send(m, new StepAbort(r.Step, r.Generation));
            State = State with { Round = null, Ring = null }; // after any failure the members form a new ring
        }

        private void Failed(StepFailed f)
        {
            if (State.Round is not { } r || State.Committing || r.Step != f.Step || r.Generation != f.Generation) return;
            Info($"step {f.Step} generation {f.Generation}: {f.TrainerId} failed ({f.Reason}); retrying");
            Abort(r);
            RetryLater();
        }

        private void RetryLater()
        {
            State = State with { RetryPending = true };
            Outputs.Add(new ScheduleRetry(RetryDelay));
        }

        private void Reduced(StepReduced report, double seconds)
        {
            if (State.Round is not { } round || State.Committing) return;
            var (next, outcome) = round.Report(report.TrainerId, report.Step, report.Generation, report.Checksum);
            if (outcome == RoundOutcome.Stale) return;
            double waited = report.ExchangeSeconds;
            State = State with
            {
                Round = next,
                FirstReport = State.FirstReport ?? report,
                Reports = State.Reports.Add(report),
                ExchangeSpread = State.ExchangeSpread is var (lo, hi, slowest)
                    ? (Math.Min(lo, waited), Math.Max(hi, waited), waited < lo ? report.TrainerId : slowest)
                    : (waited, waited, report.TrainerId),
            };
            switch (outcome)
            {
                case RoundOutcome.Pending:
                    return;
                case RoundOutcome.Mismatch:
                    Error($"step {round.Step} generation {round.Generation}: members reduced different gradients ({string.Join(", ", next.Reports.Select(kv => $"{kv.Key} {kv.Value:x16}"))}); retrying");
                    Abort(next);
                    RetryLater();
                    return;
            }
            if (State.Replay)
            {
                Announce(next, checkpointDir: null, evaluate: false);
                Info($"step {next.Step + 1}/{Run.Spec!.TotalSteps} replayed (committed before; generation {next.Generation}, members {string.Join(",", next.Members)})");
                State = State with { Round = null };
                return;
            }
            if (!Run.AcceptsSteps)
            {
                // Paused or stopped while the attempt ran: it is not committed (a resume computes the step again).
                Info($"step {next.Step + 1} generation {next.Generation} not committed: the run is {Run.Phase}");
                Abort(next);
                return;
            }
            StepReduced first = State.FirstReport!;
            State = State with { Committing = true };
            Outputs.Add(new PersistCommit(next.ToCommit() with { Metrics = first.Metrics, GradNorm = first.GradNorm, Seconds = seconds }));
        }

        /// <summary>The commit is in the journal: the members apply it (the first writes the checkpoint and evaluates, if due).</summary>
        private void Committed()
        {
            if (!State.Committing || State.Round is not { } round) return;
            RunSpec spec = Run.Spec!;
            int done = round.Step + 1;
            DriverSettings s = Settings;
            bool save = done % s.SaveSteps == 0 || done == spec.TotalSteps;
            bool evaluate = s.EvaluateAfter(done, spec.TotalSteps);
            State = State with { Committing = false };
            Announce(round, save ? s.OutputDir : null, evaluate);
            if (evaluate) State = State with { PendingEvaluation = new DriverRequest(done, round.Members[0], Now + CatchUpTimeout) };
            if (done == spec.TotalSteps) State = State with { FinalCheckpoint = new DriverRequest(done, round.Members[0], Now + CatchUpTimeout) };
            var config = s.Config;
            int units = config.FullDeterminism ? Math.Min(config.DeterminismSlices, spec.GlobalBatchSize) : spec.GlobalBatchSize;
            if (config.BalanceShards)
            {
                var (balance, change) = State.Balance.Observe(round.Members, State.AttemptShares, State.Reports, units);
                State = State with { Balance = balance };
                if (change is not null) Info(change);
            }
            Outputs.Add(State.ExchangeSpread is var (lo, hi, slowest) && Run.LastCommit!.Members.Count > 1
                ? new CommitAnnounced(Run.LastCommit!, State.FirstReport!, hi - lo, slowest)
                : new CommitAnnounced(Run.LastCommit!, State.FirstReport!));
            State = State with { Round = null };
            if (State.PauseAt is { } at && Run.CommittedSteps >= at && Run.AcceptsSteps)
            {
                State = State with { PauseAt = null, Pausing = true };
                Outputs.Add(new PersistRunEvent(new RunPaused()));
            }
        }

        private void Paused()
        {
            State = State with { Pausing = false };
            Info($"run paused at {Run.CommittedSteps} committed steps, as run pause --at asked");
            Note($"run paused at {Run.CommittedSteps} committed steps, as run pause --at asked");
        }

        /// <summary>Tells the members to apply an attempt (the first member writes the checkpoint and evaluates, if asked).</summary>
        private void Announce(StepRound round, string? checkpointDir, bool evaluate)
        {
            for (int i = 0; i < round.Members.Length; i++)
            {
                string m = round.Members[i];
                if (!State.Trainers.TryGetValue(m, out var t)) continue;
                Send(m, new StepApply(round.Step, round.Generation, i == 0 ? checkpointDir : null, Settings.SaveTotalLimit, Evaluate: i == 0 && evaluate));
                SetTrainer(m, t with { HeldStep = round.Step + 1 });
            }
        }

        private void CheckpointFailed(CheckpointWriteFailed f)
        {
            State = State with { CheckpointRetryAt = f.RetryAt };
            if (Run.Spec is { } spec && f.Step == spec.TotalSteps) State = State with { FinalCheckpoint = new DriverRequest(f.Step, f.TrainerId, f.RetryAt) };
            else State = State with { CheckpointRequested = true };
        }

        private void Tick()
        {
            foreach (var (id, t) in State.Trainers.Where(kv => kv.Value.CatchUpDeadline < Now).ToList())
            {
                Warn($"trainer {id} did not catch up within {CatchUpTimeout}; left out until it registers again");
                SetTrainer(id, t with { CatchUpDeadline = null, FetchingFrom = null, HeldStep = RegisterTrainer.NoState });
            }
        }

        private void GrantLeaves()
        {
            foreach (string id in State.Trainers.Where(kv => kv.Value.Leaving && State.Round?.Needs(kv.Key) != true).Select(kv => kv.Key).ToList())
            {
                Send(id, new LeaveGranted(id));
                Outputs.Add(new ForgetTrainer(id));
                State = State with { Trainers = State.Trainers.Remove(id), Excluded = State.Excluded.Remove(id) };
                Info($"trainer {id} left ({State.Trainers.Count} trainers)");
                Note($"trainer {id} left ({State.Trainers.Count} trainers)");
            }
        }

        /// <summary>Starts whatever can start now: grants leaves, catches trainers up, or starts the next step attempt.</summary>
        private void Pump()
        {
            if (!State.Ready || State.Committing || State.Pausing) return;
            GrantLeaves();
            if (State.Round is not null || State.RetryPending || State.Trainers.Values.Any(t => t.CatchingUp)) return;
            if (Run.Spec is not { } spec) return;
            var usable = State.Usable.ToList();
            // The first step of a new run waits for its minimum of trainers. A run under way waits for them at most
            // MinTrainersGrace after a new incarnation (the trainers of the last one come back within seconds, and a step run
            // by fewer would send the others through a state transfer), then goes on with whoever is there: a trainer that
            // died for good must not hold up a restarted coordinator.
            bool waiting = usable.Count < State.MinTrainers && (Run.CommittedSteps == 0 || Now - State.ReadyAt < MinTrainersGrace);
            if (usable.Count == 0 || waiting) return;
            State = State with { MinTrainers = 0 };
            int committed = Run.CommittedSteps;
            int Held(string id) => State.Trainers[id].HeldStep;
            foreach (string id in usable.Where(id => Held(id) > committed))
                Error($"trainer {id} claims {Held(id)} steps, more than the journal's {committed}: its weights cannot be trusted; it will be re-synced");
            var trusted = usable.Where(id => Held(id) <= committed).ToList();
            if (trusted.Count == 0)
            {
                // No trainer holds a state the journal vouches for (the journal lost steps they applied): they load the
                // latest checkpoint, and the steps after it are replayed. Without one they wait for a trainer that does.
                if (Run.LatestCheckpoint is { } latest)
                {
                    foreach (string id in usable)
                    {
                        Send(id, new LoadCheckpoint(latest.Path, latest.Step));
                        SetTrainer(id, State.Trainers[id] with { CatchUpDeadline = Now + CatchUpTimeout });
                    }
                    Info($"no trainer holds a state of the journal's {committed} steps: loading checkpoint {latest.Path} on {usable.Count} trainers");
                }
                return;
            }
            int frontier = trusted.Max(Held);

            if (Run.LatestCheckpoint is { } checkpoint && frontier < checkpoint.Step)
            {
                // No replica holds the run's newest state: every trainer loads the latest checkpoint, then the steps after
                // it are replayed (the plan is a pure function, so the replay reaches the same weights).
                foreach (string id in usable)
                {
                    Send(id, new LoadCheckpoint(checkpoint.Path, checkpoint.Step));
                    SetTrainer(id, State.Trainers[id] with { CatchUpDeadline = Now + CatchUpTimeout });
                }
                Info($"no trainer holds step {checkpoint.Step} or later: loading checkpoint {checkpoint.Path} on {usable.Count} trainers");
                return;
            }
            var synced = trusted.Where(id => Held(id) == frontier).ToList();
            var behind = usable.Where(id => Held(id) != frontier).ToList();
            if (State.CheckpointRequested && behind.Count == 0 && frontier == committed && Now >= State.CheckpointRetryAt) WriteRequestedCheckpoint(synced[0], frontier);
            if (behind.Count > 0)
            {
                for (int i = 0; i < behind.Count; i++)
                {
                    string source = synced[i % synced.Count];
                    Outputs.Add(new FetchStateFrom(behind[i], frontier, source));
                    SetTrainer(behind[i], State.Trainers[behind[i]] with { CatchUpDeadline = Now + CatchUpTimeout, FetchingFrom = (source, frontier) });
                    Info($"trainer {behind[i]} holds step {Held(behind[i])}: fetching the state of step {frontier} from {source}");
                }
                return;
            }

            bool replay = frontier < committed;
            State = State with { Replay = replay };
            if (!replay && !Run.AcceptsSteps)
            {
                RequestFinalCheckpoint(synced[0], frontier);
                return;
            }
            if (context.ScoresReady is { } ready && !ready(frontier)) return;
            long generation = GenerationNumbers.Next(Math.Max(State.Generation, Run.LastCommit?.Generation ?? 0));
            var round = StepRound.Start(frontier, generation, synced);
            string[] ids = [.. synced], endpoints = [.. synced.Select(id => State.Trainers[id].Endpoint)];
            string layout = string.Join(",", ids.Zip(endpoints, (id, e) => id + "@" + e));
            (long Generation, string Layout) ring = State.Ring is { } known && known.Layout == layout ? known : (generation, layout);
            State = State with { Generation = generation, Round = round, FirstReport = null, ExchangeSpread = null, Ring = ring };
            int[]? shares = State.Balance.SharesFor(ids);
            State = State with { Reports = [], AttemptShares = shares };
            var start = new StepStart(frontier, generation, ids, endpoints, ring.Generation, shares);
            foreach (string id in synced)
            {
                Outputs.Add(new SendScores(id, frontier));
                Send(id, start);
            }
        }

        /// <summary>An operator's checkpoint (<c>run checkpoint</c>), or a stopped run's, at a step boundary, by a synced trainer.</summary>
        private void WriteRequestedCheckpoint(string trainerId, int step)
        {
            State = State with { CheckpointRequested = false };
            if (Run.LatestCheckpoint?.Step == step)
            {
                Note($"checkpoint of step {step} exists already: {Run.LatestCheckpoint.Path}");
                return;
            }
            Info($"checkpoint of step {step} requested: trainer {trainerId} writes it");
            Send(trainerId, new WriteCheckpoint(step, Settings.OutputDir, Settings.SaveTotalLimit));
        }

        /// <summary>
        /// All steps are committed but the final checkpoint is not recorded (its writer was lost right after the commit):
        /// a synced trainer writes it. Asked again of the next synced trainer if no answer comes within the catch-up timeout.
        /// </summary>
        private void RequestFinalCheckpoint(string trainerId, int held)
        {
            if (Run.Spec is not { } spec || Run.Phase != RunPhase.Completed || held != spec.TotalSteps || Run.LatestCheckpoint?.Step == spec.TotalSteps) return;
            if (State.FinalCheckpoint is { } pending && Reachable(pending.TrainerId) && pending.Deadline > Now) return;
            State = State with { FinalCheckpoint = new DriverRequest(held, trainerId, Now + CatchUpTimeout) };
            Info($"the final checkpoint is missing: trainer {trainerId} writes it");
            Send(trainerId, new WriteCheckpoint(held, Settings.OutputDir, Settings.SaveTotalLimit));
        }

        /// <summary>Announces the end of the run once: complete with its final checkpoint recorded, or stopped.</summary>
        private void CheckFinished()
        {
            if (State.FinishedAnnounced || !State.Ready || Run.Spec is not { } spec) return;
            if (State.PendingEvaluation is { } pe)
            {
                if (pe.Deadline > Now && Reachable(pe.TrainerId)) return;
                Warn($"the evaluation of step {pe.Step} asked of {pe.TrainerId} did not arrive; metrics.jsonl has no eval line for it");
                State = State with { PendingEvaluation = null };
            }
            bool complete = Run.Phase == RunPhase.Completed && Run.LatestCheckpoint?.Step == spec.TotalSteps;
            if (!complete && Run.Phase != RunPhase.Stopped) return;
            // A stopped run first saves the state it stopped at, if a reachable trainer holds it.
            if (!complete && Run.LatestCheckpoint?.Step != Run.CommittedSteps
                && State.Trainers.Any(kv => kv.Value.HeldStep == Run.CommittedSteps && !State.Excluded.Contains(kv.Key))) return;
            State = State with { FinishedAnnounced = true };
            string end = complete
                ? $"run {spec.RunId} complete: {spec.TotalSteps} steps; final checkpoint {Run.LatestCheckpoint!.Path}"
                : $"run {spec.RunId} stopped after {Run.CommittedSteps} steps";
            Outputs.Add(new RunFinished(complete, end));
        }
    }
}
