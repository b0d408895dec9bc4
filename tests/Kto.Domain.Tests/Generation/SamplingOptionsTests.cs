using Kto.Domain.Generation;

namespace Kto.Domain.Tests.Generation;

public class SamplingOptionsTests
{
    [Theory]
    [InlineData(0, 1.0, 0, 1.0, 1, "max_new_tokens")]
    [InlineData(4, -0.1, 0, 1.0, 1, "temperature")]
    [InlineData(4, double.NaN, 0, 1.0, 1, "temperature")]
    [InlineData(4, double.PositiveInfinity, 0, 1.0, 1, "temperature")]
    [InlineData(4, 1.0, -1, 1.0, 1, "top_k")]
    [InlineData(4, 1.0, 0, 0.0, 1, "top_p")]
    [InlineData(4, 1.0, 0, 1.5, 1, "top_p")]
    [InlineData(4, 1.0, 0, double.NaN, 1, "top_p")]
    [InlineData(4, 1.0, 0, 1.0, 0, "num_samples")]
    public void InvalidSettingsNameTheSetting(int maxNew, double temperature, int topK, double topP, int samples, string name)
    {
        var e = Assert.Throws<ArgumentException>(() => new SamplingOptions(maxNew, temperature, topK, topP, 0, samples).Validate());
        Assert.StartsWith(name, e.Message);
    }

    [Fact]
    public void DefaultsAreValidAndGreedyMeansTemperatureZero()
    {
        var o = new SamplingOptions(SamplingDefaults.MaxNewTokens, SamplingDefaults.Temperature, SamplingDefaults.TopK, SamplingDefaults.TopP, SamplingDefaults.Seed);
        o.Validate();
        Assert.False(o.IsGreedy);
        Assert.True((o with { Temperature = 0 }).IsGreedy);
        Assert.Equal(1, o.NumSamples);
    }
}
