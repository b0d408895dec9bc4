using Kto.Domain.Training;

namespace Kto.Domain.Generation;

/// <summary>
/// Picks the next token of one sequence from its logits, on the host: argmax when greedy; otherwise temperature,
/// then top-k, then top-p (nucleus), then one draw from the sequence's own stream. Holds scratch buffers, so one
/// instance serves one thread.
/// </summary>
internal sealed class TokenChooser
{
    /// <summary>
    /// The nucleus search first looks only at tokens at least this many times less likely than the best one,
    /// widening the net by this factor until the kept mass reaches top_p, so it rarely sorts the whole vocabulary.
    /// </summary>
    private const double NucleusWidening = 16;

    private readonly SamplingOptions _options;
    private readonly int[] _index;
    private readonly double[] _prob;
    private readonly PriorityQueue<int, (float Logit, int Index)> _heap;

    /// <summary>Creates a chooser for a vocabulary of <paramref name="vocabSize"/> tokens.</summary>
    public TokenChooser(SamplingOptions options, int vocabSize)
    {
        _options = options;
        _index = new int[vocabSize];
        _prob = new double[vocabSize];
        _heap = new PriorityQueue<int, (float, int)>(Comparer<(float Logit, int Index)>.Create((a, b) => Rank(b.Logit, b.Index, a.Logit, a.Index)));
    }

    /// <summary>The next token given the last position's <paramref name="logits"/>.</summary>
    public int Choose(ReadOnlySpan<float> logits, ref SplitMix64 rng)
        => _options.IsGreedy ? ArgMax(logits) : Sample(logits, ref rng);

    /// <summary>The index of the largest logit; the lowest index among equals.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            if (Rank(logits[i], i, logits[best], best) < 0) best = i;
        return best;
    }

    private int Sample(ReadOnlySpan<float> logits, ref SplitMix64 rng)
    {
        int v = logits.Length;
        int n;
        bool sorted;
        if (_options.TopK > 0 && _options.TopK < v)
        {
            n = TopK(logits, _options.TopK);
            sorted = true;
        }
        else
        {
            for (int i = 0; i < v; i++) _index[i] = i;
            n = v;
            sorted = false;
        }

        // Softmax over the candidates at the temperature, in double precision.
        double max = double.NegativeInfinity;
        for (int j = 0; j < n; j++) max = Math.Max(max, logits[_index[j]]);
        double z = 0;
        for (int j = 0; j < n; j++)
        {
            _prob[j] = Math.Exp((logits[_index[j]] - max) / _options.Temperature);
            z += _prob[j];
        }
        for (int j = 0; j < n; j++) _prob[j] /= z;

        if (_options.TopP < 1)
        {
            if (!sorted) n = SortLikeliest(n);
            double mass = 0;
            int kept = 0;
            while (kept < n)
            {
                mass += _prob[kept++];
                if (mass >= _options.TopP) break;
            }
            n = kept;
        }
        return Draw(n, SampleStream.NextUnit(ref rng));
    }

    /// <summary>Walks the first <paramref name="n"/> candidates' probabilities to the one <paramref name="u"/> lands in.</summary>
    private int Draw(int n, double u)
    {
        double total = 0;
        for (int j = 0; j < n; j++) total += _prob[j];
        double target = u * total;
        double acc = 0;
        int last = 0;
        for (int j = 0; j < n; j++)
        {
            if (_prob[j] <= 0) continue;
            acc += _prob[j];
            last = j;
            if (target < acc) return _index[j];
        }
        return _index[last];
    }

    /// <summary>Puts the <paramref name="k"/> best tokens into <c>_index</c>, best first; returns k.</summary>
    private int TopK(ReadOnlySpan<float> logits, int k)
    {
        _heap.Clear();
        for (int i = 0; i < logits.Length; i++)
        {
            if (_heap.Count < k)
            {
                _heap.Enqueue(i, (logits[i], i));
            }
            else
            {
                _heap.TryPeek(out _, out var worst);
                if (Rank(logits[i], i, worst.Logit, worst.Index) < 0) _heap.DequeueEnqueue(i, (logits[i], i));
            }
        }
        for (int j = k - 1; j >= 0; j--) _index[j] = _heap.Dequeue();
        return k;
    }

    /// <summary>
    /// Sorts candidates best first, keeping only a prefix certain to contain the nucleus: the tokens whose
    /// probability is at least a cut-off c, for the largest c of the widening sequence whose tokens hold top_p
    /// of the mass (that set is a prefix of the sorted order, so the nucleus lies inside it). Returns its size.
    /// </summary>
    private int SortLikeliest(int n)
    {
        double best = 0;
        for (int j = 0; j < n; j++) best = Math.Max(best, _prob[j]);
        double cut = best;
        int count;
        while (true)
        {
            cut /= NucleusWidening;
            double mass = 0;
            count = 0;
            for (int j = 0; j < n; j++)
            {
                if (_prob[j] < cut) continue;
                mass += _prob[j];
                count++;
            }
            if (mass >= _options.TopP || count == n || cut == 0) break;
        }
        var keep = new (double P, int Index)[count];
        int m = 0;
        for (int j = 0; j < n; j++)
            if (_prob[j] >= cut) keep[m++] = (_prob[j], _index[j]);
        Array.Sort(keep, static (a, b) => a.P != b.P ? b.P.CompareTo(a.P) : a.Index.CompareTo(b.Index));
        for (int j = 0; j < count; j++) (_prob[j], _index[j]) = keep[j];
        return count;
    }

    /// <summary>Negative when token (a, ia) ranks before token (b, ib): higher logit first, then lower index.</summary>
    private static int Rank(float a, int ia, float b, int ib)
    {
        int byValue = b.CompareTo(a);
        return byValue != 0 ? byValue : ia.CompareTo(ib);
    }
}
