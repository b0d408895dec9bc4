using Kto.Domain.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Training;

/// <summary>Global L2-norm gradient clipping (as <c>torch.nn.utils.clip_grad_norm_</c>).</summary>
public static class GradientClipping
{
    /// <summary>Epsilon torch adds to the norm before dividing.</summary>
    public const double Epsilon = 1e-6;

    /// <summary>
    /// Returns the global L2 norm of all gradients and, when <paramref name="maxNorm"/> &gt; 0 and the norm exceeds it,
    /// scales every gradient by maxNorm / (norm + 1e-6).
    /// </summary>
    public static double ClipGlobalNorm(IEnumerable<TorchSharp.Modules.Parameter> parameters, double maxNorm)
    {
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        double norm = Norm(grads);
        if (maxNorm > 0)
        {
            double coef = maxNorm / (norm + Epsilon);
            if (coef < 1)
            {
                using Scalar factor = coef.ToScalar(); // held until the last gradient is scaled (see Scalars)
                foreach (Tensor g in grads) g.mul_(factor);
            }
        }
        return norm;
    }

    /// <summary>The global L2 norm of the gradients <see cref="ClipGlobalNorm"/> would clip, computed the same way (same bits).</summary>
    public static double Norm(IEnumerable<TorchSharp.Modules.Parameter> parameters)
    {
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0) return 0;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        return Norm(grads);
    }

    // Per-tensor norms on the device, one host read: sqrt(Σ ‖g‖²).
    private static double Norm(List<Tensor> grads) => torch.stack(grads.Select(g => g.norm())).to_type(ScalarType.Float64).norm().item<double>();
}
