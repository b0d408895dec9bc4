using System.Globalization;
using Kto.Domain.Training;

namespace Kto.Domain.Tasks;

/// <summary>
/// Addition of two non-negative integers with exactly <see cref="Digits"/> digits each (10..99 for 2 digits; 0..9
/// for 1), prompted as <c>"37+45="</c> and answered with the decimal sum, <c>"82"</c>. See docs/tasks.md.
/// </summary>
/// <remarks>
/// The problems (ordered operand pairs) are split into train and eval by a fixed hash of the pair, independent of
/// any seed: about one pair in <see cref="EvalOneIn"/> is held out for evaluation and never appears in training data.
/// </remarks>
public sealed class AdditionTask : IVerifiableTask
{
    /// <summary>The name <see cref="TaskRegistry"/> knows this task by.</summary>
    public const string TaskName = "addition";

    /// <summary>Operand digits when none are asked for.</summary>
    public const int DefaultDigits = 2;

    /// <summary>Most operand digits: the sum of two 9-digit numbers still fits an <see cref="int"/>.</summary>
    public const int MaxDigits = 9;

    /// <summary>About one operand pair in this many belongs to the eval split.</summary>
    public const int EvalOneIn = 10;

    /// <summary>Most digits an operand of a prompt may have for <see cref="IsCorrect"/> to judge it.</summary>
    public const int MaxPromptOperandDigits = 18;

    /// <summary>Splits with at most this many operand pairs in all are listed exactly; larger ones are sampled.</summary>
    private const long EnumerationLimit = 10_000_000;

    /// <summary>Separates the train/eval hash from other hashes of the same numbers.</summary>
    private const ulong SplitDomain = 0x4B544F5F53504C54UL; // "KTO_SPLT"

    /// <summary>Separates the problem-drawing streams.</summary>
    private const ulong ProblemDomain = 0x4B544F5F50524F42UL; // "KTO_PROB"

    /// <summary>Separates the streams that pick which SFT answers are wrong.</summary>
    private const ulong MistakeDomain = 0x4B544F5F4D495354UL; // "KTO_MIST"

    /// <summary>Creates the task for operands of exactly <paramref name="digits"/> digits.</summary>
    /// <exception cref="ArgumentException"><paramref name="digits"/> is not in [1, <see cref="MaxDigits"/>].</exception>
    public AdditionTask(int digits = DefaultDigits)
    {
        if (digits is < 1 or > MaxDigits)
            throw new ArgumentException($"addition operands need 1 to {MaxDigits} digits, got {digits}");
        Digits = digits;
        Highest = (int)Math.Pow(10, digits) - 1;
        Lowest = digits == 1 ? 0 : (Highest + 1) / 10;
    }

    /// <inheritdoc />
    public string Name => TaskName;

    /// <summary>Digits of each operand.</summary>
    public int Digits { get; }

    /// <summary>Smallest operand.</summary>
    public int Lowest { get; }

    /// <summary>Largest operand.</summary>
    public int Highest { get; }

    /// <summary>Number of operand pairs (train and eval together).</summary>
    public long PairCount => (long)(Highest - Lowest + 1) * (Highest - Lowest + 1);

    /// <summary>The prompt of a + b: <c>"37+45="</c>.</summary>
    public string Prompt(int a, int b)
    {
        CheckOperands(a, b);
        return string.Create(CultureInfo.InvariantCulture, $"{a}+{b}=");
    }

    /// <summary>The right answer to a + b: <c>"82"</c>.</summary>
    public string Answer(int a, int b)
    {
        CheckOperands(a, b);
        return ((long)a + b).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The classic mistake: each digit of the answer is the sum of the operands' digits in that place, mod 10, with
    /// every carry dropped (<c>37+45</c> → <c>"72"</c>; leading zeros removed). Equals <see cref="Answer"/> when
    /// no carry occurs.
    /// </summary>
    public string CarryDroppedAnswer(int a, int b)
    {
        CheckOperands(a, b);
        long result = 0, place = 1;
        for (int x = a, y = b; x > 0 || y > 0; x /= 10, y /= 10, place *= 10)
            result += (x % 10 + y % 10) % 10 * place;
        return result.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>Whether a + b carries in some place (some pair of digits sums to 10 or more).</summary>
    public bool HasCarry(int a, int b)
    {
        CheckOperands(a, b);
        for (int x = a, y = b; x > 0 || y > 0; x /= 10, y /= 10)
            if (x % 10 + y % 10 >= 10) return true;
        return false;
    }

    /// <summary>
    /// True when <paramref name="prompt"/> is <c>"a+b="</c> (operands in plain decimal: ASCII digits, no sign, no
    /// leading zeros, at most <see cref="MaxPromptOperandDigits"/> digits; any size, not only this task's) and
    /// <paramref name="completion"/>, with surrounding whitespace trimmed, is exactly the decimal sum: ASCII digits,
    /// no sign, no leading zeros. Anything else, null included, is false; never throws.
    /// </summary>
    public bool IsCorrect(string prompt, string completion)
    {
        if (completion is null || !TryParsePrompt(prompt, out long a, out long b)) return false;
        return string.Equals(completion.Trim(), (a + b).ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);
    }

    /// <summary>Reads the operands of a prompt <c>"a+b="</c> (see <see cref="IsCorrect"/> for the form); false if malformed.</summary>
    public static bool TryParsePrompt(string? prompt, out long a, out long b)
    {
        a = b = 0;
        if (prompt is null || !prompt.EndsWith('=')) return false;
        int plus = prompt.IndexOf('+', StringComparison.Ordinal);
        if (plus < 0) return false;
        return TryParseOperand(prompt.AsSpan(0, plus), out a) && TryParseOperand(prompt.AsSpan(plus + 1, prompt.Length - plus - 2), out b);
    }

    /// <summary>Which split the pair (a, b) belongs to: a fixed hash, the same for every seed.</summary>
    public TaskSplit SplitOf(int a, int b)
    {
        CheckOperands(a, b);
        ulong key = ((ulong)(uint)a << 32) | (uint)b;
        return new SplitMix64(key ^ SplitDomain).Next() % EvalOneIn == 0 ? TaskSplit.Eval : TaskSplit.Train;
    }

    /// <summary>
    /// <paramref name="count"/> distinct problems of <paramref name="split"/>, in a random order fixed by
    /// <paramref name="seed"/>. With up to <c>EnumerationLimit</c> (10 million) operand pairs (up to 3 digits) the
    /// split is listed and any count up to its size can be drawn; beyond that, problems are drawn by rejection and
    /// at most half the split's expected size can be asked for.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="count"/> is negative or exceeds what the split holds.</exception>
    public IReadOnlyList<(int A, int B)> Problems(TaskSplit split, int count, long seed)
    {
        if (count < 0) throw new ArgumentException($"the number of problems must be ≥ 0, got {count}");
        var rng = new SplitMix64(new SplitMix64((ulong)seed ^ ProblemDomain ^ ((ulong)split << 8) ^ (ulong)Digits).Next());
        return PairCount <= EnumerationLimit ? Listed(split, count, ref rng) : Drawn(split, count, ref rng);
    }

    /// <summary>
    /// Supervised rows (prompt, completion) for <paramref name="count"/> train problems with a controlled share of wrong
    /// answers: among the rows with a carry, round(<paramref name="wrongShare"/> × their number), picked by
    /// <paramref name="seed"/>, are answered with <see cref="CarryDroppedAnswer"/>; every other row gets the right answer.
    /// Problems are distinct until the split is used up; beyond that they repeat in fresh orders (pass k draws with
    /// seed + k), so a problem seen twice may be answered right once and wrong once, as in noisy real data. A systematic mistake, so a model trained with <paramref name="wrongShare"/> above 0.5 learns
    /// to drop carries under greedy decoding.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="wrongShare"/> is not in [0, 1], or <paramref name="count"/> is out of range.</exception>
    public IReadOnlyList<(string Prompt, string Completion)> SftRows(int count, double wrongShare, long seed)
    {
        if (!(wrongShare >= 0 && wrongShare <= 1))
            throw new ArgumentException($"the share of wrong answers must lie in [0, 1], got {wrongShare}");
        if (count < 0) throw new ArgumentException($"the number of rows must be ≥ 0, got {count}");
        int available = SplitCapacity(TaskSplit.Train);
        var problems = new List<(int A, int B)>(count);
        for (long pass = 0; problems.Count < count; pass++)
            problems.AddRange(Problems(TaskSplit.Train, Math.Min(count - problems.Count, available), seed + pass));
        int[] carrying = [.. Enumerable.Range(0, problems.Count).Where(i => HasCarry(problems[i].A, problems[i].B))];
        int wrong = (int)Math.Round(wrongShare * carrying.Length, MidpointRounding.AwayFromZero);
        var rng = new SplitMix64(new SplitMix64((ulong)seed ^ MistakeDomain ^ (ulong)Digits).Next());
        PartialShuffle(carrying, wrong, ref rng);
        var mistaken = new HashSet<int>(carrying.Take(wrong));
        return [.. problems.Select((p, i) => (Prompt(p.A, p.B), mistaken.Contains(i) ? CarryDroppedAnswer(p.A, p.B) : Answer(p.A, p.B)))];
    }

    /// <summary>How many distinct problems <see cref="Problems"/> can return for <paramref name="split"/>.</summary>
    public int SplitCapacity(TaskSplit split)
    {
        if (PairCount > EnumerationLimit)
            return (int)Math.Min(int.MaxValue, (split == TaskSplit.Eval ? PairCount / EvalOneIn : PairCount - PairCount / EvalOneIn) / 2);
        int n = 0;
        for (int a = Lowest; a <= Highest; a++)
            for (int b = Lowest; b <= Highest; b++)
                if (SplitOf(a, b) == split) n++;
        return n;
    }

    private List<(int A, int B)> Listed(TaskSplit split, int count, ref SplitMix64 rng)
    {
        var all = new List<(int A, int B)>();
        for (int a = Lowest; a <= Highest; a++)
            for (int b = Lowest; b <= Highest; b++)
                if (SplitOf(a, b) == split) all.Add((a, b));
        if (count > all.Count)
            throw new ArgumentException($"{count} problems asked for, but the {Describe(split)} split of {Digits}-digit addition holds only {all.Count}");
        var picked = all.ToArray();
        PartialShuffle(picked, count, ref rng);
        return picked[..count].ToList();
    }

    private List<(int A, int B)> Drawn(TaskSplit split, int count, ref SplitMix64 rng)
    {
        long expected = split == TaskSplit.Eval ? PairCount / EvalOneIn : PairCount - PairCount / EvalOneIn;
        if (count > expected / 2)
            throw new ArgumentException($"{count} problems asked for, but at most {expected / 2} can be drawn from the {Describe(split)} split of {Digits}-digit addition");
        ulong span = (ulong)(Highest - Lowest + 1);
        var seen = new HashSet<(int, int)>();
        var result = new List<(int A, int B)>(count);
        while (result.Count < count)
        {
            int a = Lowest + (int)rng.NextBelow(span), b = Lowest + (int)rng.NextBelow(span);
            if (SplitOf(a, b) == split && seen.Add((a, b))) result.Add((a, b));
        }
        return result;
    }

    /// <summary>Moves a uniformly random choice of <paramref name="take"/> items to the front (Fisher–Yates, cut short).</summary>
    private static void PartialShuffle<T>(T[] items, int take, ref SplitMix64 rng)
    {
        for (int i = 0; i < take; i++)
        {
            int j = i + (int)rng.NextBelow((ulong)(items.Length - i));
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static string Describe(TaskSplit split) => split == TaskSplit.Eval ? "eval" : "train";

    private static bool TryParseOperand(ReadOnlySpan<char> text, out long value)
    {
        value = 0;
        if (text.Length is 0 or > MaxPromptOperandDigits || (text.Length > 1 && text[0] == '0')) return false;
        foreach (char c in text)
        {
            if (!char.IsAsciiDigit(c)) return false;
            value = value * 10 + (c - '0');
        }
        return true;
    }

    private void CheckOperands(int a, int b)
    {
        if (a < Lowest || a > Highest)
            throw new ArgumentOutOfRangeException(nameof(a), a, $"operands of {Digits}-digit addition lie in [{Lowest}, {Highest}]");
        if (b < Lowest || b > Highest)
            throw new ArgumentOutOfRangeException(nameof(b), b, $"operands of {Digits}-digit addition lie in [{Lowest}, {Highest}]");
    }
}
