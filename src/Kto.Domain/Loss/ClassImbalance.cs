using System.Globalization;
using System.Numerics;

namespace Kto.Domain.Loss;

/// <summary>
/// TRL's class-imbalance rule (KTO paper, Eq. 8): with n_D desirable and n_U undesirable examples the weighted
/// ratio <c>w_D·n_D / (w_U·n_U)</c> should lie in [1, 4/3].
/// </summary>
public static class ClassImbalance
{
    /// <summary>Upper end of the recommended ratio, 4/3 as TRL writes it (1.33).</summary>
    public const double UpperRatio = 1.33;

    /// <summary>The recommended ranges for both weights, rounded to 2 decimals as TRL prints them.</summary>
    /// <param name="DesirableMin">Lowest recommended desirable_weight given undesirable_weight.</param>
    /// <param name="DesirableMax">Highest recommended desirable_weight given undesirable_weight.</param>
    /// <param name="UndesirableMin">Lowest recommended undesirable_weight given desirable_weight.</param>
    /// <param name="UndesirableMax">Highest recommended undesirable_weight given desirable_weight.</param>
    public sealed record Ranges(double DesirableMin, double DesirableMax, double UndesirableMin, double UndesirableMax);

    /// <summary>The recommended weight ranges for the given counts and weights.</summary>
    public static Ranges Recommend(long desirable, long undesirable, double desirableWeight, double undesirableWeight)
    {
        double dMin = undesirable * undesirableWeight / desirable;
        double uMax = desirable * desirableWeight / undesirable;
        return new Ranges(
            RoundHalfEven(dMin, 2), RoundHalfEven(UpperRatio * dMin, 2),
            RoundHalfEven(uMax / UpperRatio, 2), RoundHalfEven(uMax, 2));
    }

    /// <summary>
    /// Python's <c>round(value, digits)</c>, which TRL uses for the bounds: the exact binary value of
    /// <paramref name="value"/> rounded to the nearest multiple of 10^−digits, ties to even.
    /// </summary>
    /// <remarks>
    /// <see cref="Math.Round(double, int)"/> differs: it rounds the already-rounded product value·10^digits, so
    /// 0.665 (stored as 0.66500000000000004) gives 0.66 where Python gives 0.67, and 0.995 (stored as
    /// 0.99499999999999999) gives 1.0 where Python gives 0.99. At a range boundary that flips the warning.
    /// </remarks>
    internal static double RoundHalfEven(double value, int digits)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(digits);
        if (!double.IsFinite(value) || value == 0) return value;
        long bits = BitConverter.DoubleToInt64Bits(value);
        int biased = (int)((bits >> 52) & 0x7FF);
        long fraction = bits & 0xF_FFFF_FFFF_FFFF;
        long mantissa = biased == 0 ? fraction : fraction | (1L << 52);
        int exponent = (biased == 0 ? 1 : biased) - 1075;    // |value| = mantissa · 2^exponent exactly
        if (exponent >= 0) return value;                      // already an integer
        // |value|·10^digits = numerator / denominator exactly; round that quotient half to even.
        BigInteger numerator = mantissa * BigInteger.Pow(10, digits);
        BigInteger denominator = BigInteger.One << -exponent;
        BigInteger quotient = BigInteger.DivRem(numerator, denominator, out BigInteger remainder);
        int half = (remainder * 2).CompareTo(denominator);
        if (half > 0 || (half == 0 && !quotient.IsEven)) quotient += 1;
        double magnitude = (double)quotient / Math.Pow(10, digits);  // correctly rounded division: the nearest double
        return bits < 0 ? -magnitude : magnitude;
    }

    /// <summary>
    /// TRL's warning text when neither weight lies in its recommended range; null when the weights are fine,
    /// when the classes are equal in size, or when one class is empty (nothing to balance).
    /// </summary>
    public static string? Check(long desirable, long undesirable, double desirableWeight, double undesirableWeight)
    {
        if (desirable == 0 || undesirable == 0 || desirable == undesirable) return null;
        Ranges r = Recommend(desirable, undesirable, desirableWeight, undesirableWeight);
        bool desirableOk = r.DesirableMin <= desirableWeight && desirableWeight <= r.DesirableMax;
        bool undesirableOk = r.UndesirableMin <= undesirableWeight && undesirableWeight <= r.UndesirableMax;
        if (desirableOk || undesirableOk) return null;
        return string.Format(CultureInfo.InvariantCulture,
            "You have different amounts of desirable/positive and undesirable/negative examples ({0} vs {1}) but the " +
            "weights on these examples do not balance them: desirable_weight * n_desirable / (undesirable_weight * " +
            "n_undesirable) should lie in [1, 4/3]. Recommended: desirable_weight in [{2}, {3}] or undesirable_weight " +
            "in [{4}, {5}] (see the KTO paper, Eq. 8).",
            desirable, undesirable,
            PythonFloat(r.DesirableMin), PythonFloat(r.DesirableMax), PythonFloat(r.UndesirableMin), PythonFloat(r.UndesirableMax));
    }

    /// <summary>A bound as Python prints a float rounded to 2 decimals: 4.0, 0.3, 0.33 (never a bare "4").</summary>
    private static string PythonFloat(double value) => value.ToString("0.0#", CultureInfo.InvariantCulture);

    /// <summary>
    /// Weights that satisfy the rule with room on both sides: the minority class's weight at the middle of its
    /// recommended range (1.165 × the balancing ratio), the majority's at 1.0. Equal classes get (1, 1).
    /// </summary>
    public static (double Desirable, double Undesirable) RecommendedWeights(long desirable, long undesirable)
    {
        if (desirable <= 0 || undesirable <= 0 || desirable == undesirable) return (1.0, 1.0);
        if (desirable < undesirable)
        {
            double r = (double)undesirable / desirable;                     // desirable_weight range [r, 1.33 r]
            return (RoundHalfEven(r * (1 + UpperRatio) / 2, 2), 1.0);
        }
        double q = (double)desirable / undesirable;                         // undesirable_weight range [q / 1.33, q]
        return (1.0, RoundHalfEven(q * (1 / UpperRatio + 1) / 2, 2));
    }
}
