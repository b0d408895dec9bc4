using Kto.Domain.Training;

namespace Kto.Domain.Generation;

/// <summary>
/// Samples the next token of one sequence on the host, from the probabilities at the temperature (computed on the
/// device): top-k, then top-p (nucleus), then one draw from the sequence's own stream. Neither cut sorts the
/// vocabulary: top-k is one pass with a heap of k, top-p a linear-time selection. Holds scratch buffers, so one
/// instance serves one thread.
/// </summary>
internal sealed class TokenChooser
{
    private readonly SamplingOptions _options;
    private readonly int[] _index;
    private readonly double[] _prob;

    /// <summary>Creates a chooser for a vocabulary of <paramref name="vocabSize"/> tokens.</summary>
    public TokenChooser(SamplingOptions options, int vocabSize)
    {
        _options = options;
        _index = new int[vocabSize];
        _prob = new double[vocabSize];
    }

    /// <summary>The next token given the last position's probabilities, softmax(logits / temperature).</summary>
    public int Choose(ReadOnlySpan<float> probabilities, ref SplitMix64 rng)
    {
        double u = SampleStream.NextUnit(ref rng);
        int v = probabilities.Length;
        bool cutK = _options.TopK > 0 && _options.TopK < v, cutP = _options.TopP < 1;
        if (!cutK && !cutP) return DrawFrom(probabilities, u);

        int n;
        double total;
        if (cutK)
        {
            n = TopK(probabilities, _options.TopK, out total);
        }
        else
        {
            total = 0;
            for (int i = 0; i < v; i++)
            {
                _index[i] = i;
                _prob[i] = Usable(probabilities[i]);
                total += _prob[i];
            }
            n = v;
        }
        if (cutP) n = Nucleus(n, _options.TopP * total, out total);

        double target = u * total, acc = 0;
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

    /// <summary>A draw from the whole distribution, straight from the device's probabilities.</summary>
    private static int DrawFrom(ReadOnlySpan<float> probabilities, double u)
    {
        double total = 0;
        foreach (float p in probabilities) total += Usable(p);
        double target = u * total, acc = 0;
        int last = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            double p = Usable(probabilities[i]);
            if (p <= 0) continue;
            acc += p;
            last = i;
            if (target < acc) return i;
        }
        return last;
    }

    /// <summary>A probability as drawn: NaN and negatives count as 0.</summary>
    private static double Usable(float p) => p > 0 ? p : 0;

    /// <summary>
    /// Puts the <paramref name="k"/> likeliest tokens (the lower id among equals) into the first k slots, in heap
    /// order, in one pass: a min-heap of the best so far whose root, the worst kept, is the bar a newcomer must
    /// beat. Returns k and their mass.
    /// </summary>
    private int TopK(ReadOnlySpan<float> probabilities, int k, out double mass)
    {
        int size = 0;
        for (int i = 0; i < probabilities.Length; i++)
        {
            double p = Usable(probabilities[i]);
            if (size < k)
            {
                _prob[size] = p;
                _index[size] = i;
                for (int j = size++; j > 0 && Worse(j, (j - 1) / 2); j = (j - 1) / 2) Swap(j, (j - 1) / 2);
            }
            else if (p > _prob[0]) // ids rise as we scan, so an equal newcomer never beats a kept token
            {
                _prob[0] = p;
                _index[0] = i;
                for (int j = 0; ;)
                {
                    int worst = j, left = 2 * j + 1, right = left + 1;
                    if (left < k && Worse(left, worst)) worst = left;
                    if (right < k && Worse(right, worst)) worst = right;
                    if (worst == j) break;
                    Swap(j, worst);
                    j = worst;
                }
            }
        }
        mass = Sum(0, k);
        return k;
    }

    /// <summary>Whether the token in slot <paramref name="a"/> ranks below the one in slot <paramref name="b"/>.</summary>
    private bool Worse(int a, int b) => _prob[a] < _prob[b] || (_prob[a] == _prob[b] && _index[a] > _index[b]);

    /// <summary>
    /// Rearranges the first <paramref name="n"/> candidates so that the first c of them are the nucleus: the
    /// shortest best-first run (higher probability first, lower id among equals) whose mass reaches
    /// <paramref name="target"/>. Returns c (at least 1, so the likeliest token always stays) and the run's mass.
    /// Quickselect-style: each round splits the undecided range around a pivot into more likely, equally likely
    /// and less likely candidates, keeps or drops whole parts, and resolves the part the boundary falls in; expected
    /// time linear in n.
    /// </summary>
    private int Nucleus(int n, double target, out double mass)
    {
        // [0, lo) is in, with mass `mass`; [hi, n) is out; the boundary lies in [lo, hi).
        int lo = 0, hi = n;
        mass = 0;
        while (lo < hi)
        {
            double pivot = MedianOfThree(_prob[lo], _prob[lo + (hi - lo) / 2], _prob[hi - 1]);
            var (greaterEnd, equalEnd) = Partition(lo, hi, pivot);
            double greater = Sum(lo, greaterEnd), equal = Sum(greaterEnd, equalEnd);
            if (mass + greater >= target && greaterEnd > lo)
            {
                hi = greaterEnd;
                continue;
            }
            if (mass + greater + equal >= target)
            {
                // The boundary is among equals: take them by increasing id until the target is reached.
                Array.Sort(_index, greaterEnd, equalEnd - greaterEnd);
                mass += greater;
                int end = greaterEnd;
                while (end < equalEnd && (end == 0 || mass < target))
                {
                    mass += pivot;
                    end++;
                }
                return Math.Max(end, 1);
            }
            mass += greater + equal;
            lo = equalEnd;
        }
        return Math.Max(lo, 1); // rounding left the target out of reach: everything undecided is out
    }

    /// <summary>Three-way partition of [lo, hi) by probability: &gt; pivot, = pivot, &lt; pivot. Returns the ends of the first two parts.</summary>
    private (int GreaterEnd, int EqualEnd) Partition(int lo, int hi, double pivot)
    {
        int lt = lo, i = lo, gt = hi;
        while (i < gt)
        {
            if (_prob[i] > pivot) Swap(lt++, i++);
            else if (_prob[i] < pivot) Swap(i, --gt);
            else i++;
        }
        return (lt, gt);
    }

    private void Swap(int a, int b)
    {
        (_prob[a], _prob[b]) = (_prob[b], _prob[a]);
        (_index[a], _index[b]) = (_index[b], _index[a]);
    }

    private double Sum(int from, int to)
    {
        double s = 0;
        for (int j = from; j < to; j++) s += _prob[j];
        return s;
    }

    private static double MedianOfThree(double a, double b, double c) => Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));
}
