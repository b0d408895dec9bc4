using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Loss;

/// <summary>The outputs of <see cref="KtoLoss.Compute"/>.</summary>
/// <param name="Losses">(B) per-example loss, each already multiplied by its class weight. Differentiable.</param>
/// <param name="Rewards">(B) β·r per example, detached: the logged rewards.</param>
public sealed record KtoLossOutput(Tensor Losses, Tensor Rewards);

/// <summary>
/// The KTO loss for one batch of examples, as a pure function (TRL's <c>kto_loss</c>, HALOs' <c>KTOTrainer.loss</c>).
/// </summary>
/// <remarks>
/// With r = log π_θ(y|x) − log π_ref(y|x) (summed completion log-probs) and z = <c>kl</c>
/// (the detached, clamped global KL estimate):
/// <code>
/// kto:                desirable  w_D · (1 − σ(β (r − z)))    undesirable  w_U · (1 − σ(β (z − r)))
/// apo_zero_unpaired:  desirable  w_D · (1 − σ(β r))          undesirable  w_U · σ(β r)
/// </code>
/// The batch loss is the plain mean of the returned per-example losses (not divided by the weight sum);
/// callers that split a batch across shards sum the losses and divide by the global example count.
/// A batch with one class, or with no examples of either class, needs no special case: nothing here
/// reduces over a class.
/// </remarks>
public static class KtoLoss
{
    /// <summary>Computes per-example weighted losses and the logged rewards.</summary>
    /// <param name="policyLogps">(B) summed completion log-probs under the policy; carries the gradient.</param>
    /// <param name="referenceLogps">(B) summed completion log-probs under the reference; no gradient.</param>
    /// <param name="desirable">(B) bool, true for thumbs-up examples.</param>
    /// <param name="kl">The KL reference point z ≥ 0 (ignored by <c>apo_zero_unpaired</c>).</param>
    /// <param name="options">β, the loss type and the class weights.</param>
    public static KtoLossOutput Compute(Tensor policyLogps, Tensor referenceLogps, Tensor desirable, double kl, KtoLossOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Tensor r = policyLogps - referenceLogps.detach();                       // (B)
        double beta = options.Beta;
        Tensor losses = options.LossType switch
        {
            KtoLossType.Kto => torch.where(desirable,
                torch.sigmoid(r.Minus(kl).Times(beta)).SubtractedFrom(1),           // 1 − σ(β (r − z))
                torch.sigmoid(r.SubtractedFrom(kl).Times(beta)).SubtractedFrom(1)), // 1 − σ(β (z − r))
            KtoLossType.ApoZeroUnpaired => torch.where(desirable,
                torch.sigmoid(r.Times(beta)).SubtractedFrom(1),                     // 1 − σ(β r)
                torch.sigmoid(r.Times(beta))),                                      // σ(β r)
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.LossType, "unknown loss type"),
        };
        Tensor weights = torch.where(desirable,
            Scalars.FullLike(r, options.DesirableWeight),
            Scalars.FullLike(r, options.UndesirableWeight));
        return new KtoLossOutput(losses * weights, r.Times(beta).detach());
    }
}

/// <summary>The hyper-parameters the loss reads.</summary>
/// <param name="Beta">β, the temperature of the sigmoid (TRL default 0.1).</param>
/// <param name="LossType">Which loss.</param>
/// <param name="DesirableWeight">Weight of each desirable example's loss (TRL default 1.0).</param>
/// <param name="UndesirableWeight">Weight of each undesirable example's loss (TRL default 1.0).</param>
public sealed record KtoLossOptions(double Beta, KtoLossType LossType, double DesirableWeight, double UndesirableWeight);
