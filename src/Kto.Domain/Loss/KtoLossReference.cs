namespace Kto.Domain.Loss;

/// <summary>
/// A double-precision, loop-based implementation of <see cref="KtoLoss"/> and of the KL estimate, written
/// independently of the tensor code so tests can check one against the other.
/// </summary>
public static class KtoLossReference
{
    /// <summary>Per-example weighted losses.</summary>
    public static double[] Losses(double[] policy, double[] reference, bool[] desirable, double kl, KtoLossOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        var losses = new double[policy.Length];
        for (int i = 0; i < policy.Length; i++)
            losses[i] = Loss(policy[i] - reference[i], desirable[i], kl, o);
        return losses;
    }

    /// <summary>The weighted loss of one example with log-ratio <paramref name="r"/>.</summary>
    public static double Loss(double r, bool desirable, double kl, KtoLossOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        double b = o.Beta;
        double raw = (o.LossType, desirable) switch
        {
            (KtoLossType.Kto, true) => 1 - Sigmoid(b * (r - kl)),
            (KtoLossType.Kto, false) => 1 - Sigmoid(b * (kl - r)),
            (KtoLossType.ApoZeroUnpaired, true) => 1 - Sigmoid(b * r),
            (KtoLossType.ApoZeroUnpaired, false) => Sigmoid(b * r),
            _ => throw new ArgumentOutOfRangeException(nameof(o)),
        };
        return raw * (desirable ? o.DesirableWeight : o.UndesirableWeight);
    }

    /// <summary>dL/dr of one example's weighted loss, in closed form (kl held fixed: it is detached).</summary>
    public static double LossGradient(double r, bool desirable, double kl, KtoLossOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        double b = o.Beta;
        double w = desirable ? o.DesirableWeight : o.UndesirableWeight;
        double s = o.LossType == KtoLossType.Kto ? Sigmoid(b * (r - kl)) : Sigmoid(b * r);
        double dsig = b * s * (1 - s);
        // kto desirable: d/dr [1 − σ(β(r−z))] = −βσ(1−σ); undesirable: d/dr [1 − σ(β(z−r))] = +βσ'(…) with σ(β(z−r)) = 1 − σ(β(r−z)).
        // apo: desirable −βσ(1−σ), undesirable +βσ(1−σ).
        return w * (desirable ? -dsig : dsig);
    }

    /// <summary>The batch loss: plain mean of the weighted per-example losses.</summary>
    public static double MeanLoss(double[] policy, double[] reference, bool[] desirable, double kl, KtoLossOptions o)
        => policy.Length == 0 ? 0 : Losses(policy, reference, desirable, kl, o).Average();

    /// <summary>Raw KL estimate: mean over pairs of (policy − reference), not clamped.</summary>
    public static double RawKl(double[] policyKl, double[] referenceKl)
    {
        double sum = 0;
        for (int i = 0; i < policyKl.Length; i++) sum += policyKl[i] - referenceKl[i];
        return sum / policyKl.Length;
    }

    /// <summary>Numerically stable logistic sigmoid.</summary>
    public static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));
}
