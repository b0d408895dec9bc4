namespace Kto.Domain.Loss;

/// <summary>
/// Partial sums of the KL estimate over some KL pairs: Σ (log π_θ(y'|x) − log π_ref(y'|x)) and the pair count.
/// Shards of a batch each produce one; they are added (in any grouping) and only then turned into the
/// mean and clamped, so the result does not depend on how many processes share the batch.
/// </summary>
/// <param name="Sum">Sum over pairs of policy minus reference log-prob.</param>
/// <param name="Count">Number of pairs.</param>
public readonly record struct KlPartial(double Sum, long Count)
{
    /// <summary>No pairs.</summary>
    public static KlPartial Empty => default;

    /// <summary>Adds two partials.</summary>
    public static KlPartial operator +(KlPartial a, KlPartial b) => new(a.Sum + b.Sum, a.Count + b.Count);

    /// <summary>Adds two partials (named alternative to the operator).</summary>
    public static KlPartial Add(KlPartial a, KlPartial b) => a + b;

    /// <summary>The raw estimate, sum / count (0 for no pairs): logged as <c>kl_raw</c>.</summary>
    public double Raw => Count == 0 ? 0 : Sum / Count;

    /// <summary>The reference point the loss uses: max(0, raw), logged as <c>kl</c>.</summary>
    public double Clamped => Math.Max(0, Raw);
}
