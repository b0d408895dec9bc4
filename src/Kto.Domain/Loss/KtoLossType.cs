namespace Kto.Domain.Loss;

/// <summary>The per-example loss, named as in TRL's <c>KTOConfig.loss_type</c>.</summary>
public enum KtoLossType
{
    /// <summary><c>"kto"</c>: desirable 1 − σ(β(r − kl)), undesirable 1 − σ(β(kl − r)).</summary>
    Kto,

    /// <summary><c>"apo_zero_unpaired"</c>: desirable 1 − σ(βr), undesirable σ(βr); no KL term.</summary>
    ApoZeroUnpaired,
}

/// <summary>Names of <see cref="KtoLossType"/> values in run configs.</summary>
public static class KtoLossTypeNames
{
    /// <summary>Config name of <see cref="KtoLossType.Kto"/>.</summary>
    public const string Kto = "kto";

    /// <summary>Config name of <see cref="KtoLossType.ApoZeroUnpaired"/>.</summary>
    public const string ApoZeroUnpaired = "apo_zero_unpaired";

    /// <summary>The config name of a loss type.</summary>
    public static string ToName(this KtoLossType type) => type switch
    {
        KtoLossType.Kto => Kto,
        KtoLossType.ApoZeroUnpaired => ApoZeroUnpaired,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>Parses a config name; null when the name is not a loss type.</summary>
    public static KtoLossType? Parse(string name) => name switch
    {
        Kto => KtoLossType.Kto,
        ApoZeroUnpaired => KtoLossType.ApoZeroUnpaired,
        _ => null,
    };

    /// <summary>True when the loss uses the KL reference point (and so needs the KL forward pass).</summary>
    public static bool UsesKl(this KtoLossType type) => type == KtoLossType.Kto;
}
