using System.Text.Json;
using System.Text.Json.Nodes;
using Kto.Domain.Templating;
using Kto.Domain.Tests.Tokenization;

namespace Kto.Domain.Tests.Templating;

/// <summary>
/// The Jinja subset against Hugging Face's reference renderer: the real chat templates of Qwen 2.5/3, Llama 3/3.1,
/// Mistral v0.1/v0.3/Nemo, Gemma 3, Zephyr-Gemma, SmolLM3 and DeepSeek-R1 (tests/fixtures/hf/templates) rendered on
/// conversations with system prompts, several turns, unicode, whitespace and special-token strings give exactly the
/// text Python's jinja2 gave, set up as transformers sets it up (expected-templates.json, written by
/// make-template-fixtures.py; make-fixtures.mjs lists where @huggingface/jinja differs); plus the language rules one by one.
/// </summary>
public sealed class JinjaTemplateTests
{
    private static readonly DateTime FixtureNow = new(2025, 7, 10, 12, 0, 0);

    private static string Render(string source, object? context = null, DateTime? now = null)
    {
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (context is not null)
            foreach (var (k, v) in JsonNode.Parse(JsonSerializer.Serialize(context))!.AsObject()) vars[k] = v?.DeepClone();
        return JinjaTemplate.Parse(source).Render(vars, now);
    }

    public static TheoryData<string> TemplateNames() => [.. Directory.GetFiles(Path.Combine(HfFixtures.Root, "templates"), "*.jinja").Select(f => Path.GetFileNameWithoutExtension(f)!).Order()];

    [Theory]
    [MemberData(nameof(TemplateNames))]
    public void RealChatTemplatesRenderAsTheReferenceRenderer(string name)
    {
        JsonElement root = JsonDocument.Parse(File.ReadAllText(Path.Combine(HfFixtures.Root, "expected-templates.json"))).RootElement;
        JinjaTemplate template = JinjaTemplate.Parse(File.ReadAllText(Path.Combine(HfFixtures.Root, "templates", name + ".jinja")));
        JsonObject specials = JsonNode.Parse(root.GetProperty("specials").GetProperty(name).GetRawText())!.AsObject();
        var conversations = root.GetProperty("conversations").EnumerateArray().ToList();
        var cases = root.GetProperty("templates").GetProperty(name).EnumerateArray().ToList();
        Assert.Equal(conversations.Count, cases.Count);
        for (int i = 0; i < cases.Count; i++)
        {
            JsonArray prompt = JsonNode.Parse(conversations[i].GetProperty("prompt").GetRawText())!.AsArray();
            JsonArray whole = [.. prompt.Select(m => m!.DeepClone()), .. JsonNode.Parse(conversations[i].GetProperty("completion").GetRawText())!.AsArray().Select(m => m!.DeepClone())];
            Check(template, specials, prompt, true, cases[i].GetProperty("prompt"), $"{name}, {conversations[i].GetProperty("name")}, prompt");
            Check(template, specials, whole, false, cases[i].GetProperty("whole"), $"{name}, {conversations[i].GetProperty("name")}, prompt + completion");
        }
    }

    private static void Check(JinjaTemplate template, JsonObject specials, JsonArray messages, bool addGenerationPrompt, JsonElement expected, string what)
    {
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal) { ["messages"] = messages, ["add_generation_prompt"] = addGenerationPrompt };
        foreach (var (k, v) in specials) vars[k] = v?.DeepClone();
        if (expected.TryGetProperty("error", out JsonElement error))
        {
            var e = Assert.Throws<JinjaException>(() => template.Render(vars, FixtureNow));
            Assert.Contains(error.GetString()!, e.Message);
            return;
        }
        string want = expected.GetProperty("text").GetString()!, got = template.Render(vars, FixtureNow);
        Assert.True(want == got, $"{what}:\nexpected {JsonSerializer.Serialize(want)}\n     got {JsonSerializer.Serialize(got)}");
    }

    [Fact]
    public void BlocksTrimTheirNewlineAndIndentAsTransformersConfiguresJinja()
    {
        // trim_blocks: the newline after a block tag goes; lstrip_blocks: spaces before a block tag on its line go.
        Assert.Equal("    a\nb\n", Render("{% if true %}\n    a\n{% endif %}\nb\n\n"));
        Assert.Equal("x\n  y\n", Render("{% for i in [1] %}\n  {% if true %}\nx\n  {% endif %}\n  y\n{% endfor %}"));
        // "-" strips on its side; variable tags keep their newline.
        Assert.Equal("ab", Render("a  {%- if true -%}  \n  b{% endif %}"));
        Assert.Equal("1\n2", Render("{{ 1 }}\n{{ 2 }}"));
        Assert.Equal("12", Render("{{- 1 -}}\n\n   {{- 2 }}"));
        Assert.Equal("x", Render("{# a comment #}\nx"));
        // keep_trailing_newline=False: one trailing newline of the source is dropped.
        Assert.Equal("a\n", Render("a\n\n"));
    }

    [Fact]
    public void LoopsExposeLoopVariablesElseFiltersAndScopes()
    {
        Assert.Equal("0:a:first 1:b 2:c:last ", Render("{% for x in xs %}{{ loop.index0 }}:{{ x }}{% if loop.first %}:first{% endif %}{% if loop.last %}:last{% endif %} {% endfor %}", new { xs = new[] { "a", "b", "c" } }));
        Assert.Equal("3 2 1 ", Render("{% for x in xs %}{{ loop.revindex }} {% endfor %}", new { xs = new[] { 1, 2, 3 } }));
        Assert.Equal("empty", Render("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}"));
        Assert.Equal("2 4 ", Render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }} {% endfor %}"));
        Assert.Equal("a=1 b=2 ", Render("{% for k, v in d | items %}{{ k }}={{ v }} {% endfor %}", new { d = new Dictionary<string, int> { ["a"] = 1, ["b"] = 2 } }));
        // A set inside a loop stays there; a namespace carries it out.
        Assert.Equal("0 3", Render("{% set n = 0 %}{% set ns = namespace(n=0) %}{% for x in [1, 2] %}{% set n = n + x %}{% set ns.n = ns.n + x %}{% endfor %}{{ n }} {{ ns.n }}"));
        Assert.Equal("1 2 ", Render("{% for x in [1, 2, 3, 4] %}{% if x == 3 %}{% break %}{% endif %}{{ x }} {% endfor %}"));
        Assert.Equal("1 3 ", Render("{% for x in [1, 2, 3] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }} {% endfor %}"));
    }

    [Fact]
    public void ExpressionsFollowPythonAndJinjaPrecedence()
    {
        Assert.Equal("2", Render("{{ xs | length - 1 }}", new { xs = new[] { 1, 2, 3 } }));
        Assert.Equal("True False True", Render("{{ not false and true }} {{ 1 in [2, 3] }} {{ 'ell' in 'hello' }}"));
        Assert.Equal("7 2.5 2 1 8 ab-ab-", Render("{{ 1 + 2 * 3 }} {{ 5 / 2 }} {{ 5 // 2 }} {{ 7 % 3 }} {{ 2 ** 3 }} {{ 'ab-' * 2 }}"));
        Assert.Equal("a1", Render("{{ 'a' ~ 1 }}"));
        Assert.Equal("yes no", Render("{{ 'yes' if x else 'no' }} {{ 'yes' if y else 'no' }}", new { x = true, y = false }));
        Assert.Equal("[3, 2, 1] [2, 3] c ['a', 'b']", Render("{{ xs[::-1] }} {{ xs[1:] }} {{ 'abc'[-1] }} {{ 'a b'.split() }}", new { xs = new[] { 1, 2, 3 } }));
        Assert.Equal("None True False", Render("{{ none }} {{ true }} {{ x }}", new { x = false }));
        Assert.Equal("", Render("{{ missing }}{{ missing.attr }}{{ d.nokey }}", new { d = new { } }));
    }

    [Fact]
    public void FiltersTestsAndMethodsChatTemplatesUse()
    {
        Assert.Equal("x | X | 3 | d | Ab Cd", Render("{{ '  x ' | trim }} | {{ 'x' | upper }} | {{ [1, 2, 3] | length }} | {{ missing | default('d') }} | {{ 'ab cd' | title }}"));
        Assert.Equal("""{"a": [1, "é\n"], "b": null}""", Render("{{ d | tojson }}", new { d = new Dictionary<string, object?> { ["a"] = new object[] { 1, "é\n" }, ["b"] = null } }));
        Assert.Equal("{\n    \"a\": 1\n}", Render("{{ d | tojson(indent=4) }}", new { d = new { a = 1 } }));
        Assert.Equal("a, b", Render("{{ xs | join(', ') }}", new { xs = new[] { "a", "b" } }));
        Assert.Equal("sys", Render("{{ (messages | selectattr('role', 'equalto', 'system') | first).content }}",
            new { messages = new[] { new { role = "user", content = "u" }, new { role = "system", content = "sys" } } }));
        Assert.Equal("True True False True", Render("{{ x is defined }} {{ y is none }} {{ x is string }} {{ x is number }}", new { x = 1, y = (string?)null }));
        Assert.Equal("True|b|x.|hi|2", Render("{{ 'abc'.startswith('a') }}|{{ 'a</think>b'.split('</think>')[-1] }}|{{ '\nx.\n'.strip('\n') }}|{{ '  hi'.lstrip() }}|{{ {'k': 2}.get('k') }}"));
        Assert.Equal("10 Jul 2025", Render("{{ strftime_now('%d %b %Y') }}", now: FixtureNow));
    }

    [Fact]
    public void ErrorsNameTheLineAndWhatIsWrong()
    {
        Assert.Equal("line 2: the template raised: roles must alternate",
            Assert.Throws<JinjaException>(() => Render("ok\n{{ raise_exception('roles must alternate') }}")).Message);
        Assert.Contains("line 1: filter \"frobnicate\" is not supported", Assert.Throws<JinjaException>(() => Render("{{ x | frobnicate }}")).Message);
        Assert.Equal("line 3: unexpected end of template: expected {% elif %} or {% else %} or {% endif %}", Assert.Throws<JinjaException>(() => Render("{% if x %}\n\nx")).Message);
        Assert.Contains("statement \"include\" is not supported", Assert.Throws<JinjaException>(() => Render("{% include 'x' %}")).Message);
        Assert.Contains("tag not closed", Assert.Throws<JinjaException>(() => Render("{{ x ")).Message);
        Assert.Contains("unsupported operand types for +: str and int", Assert.Throws<JinjaException>(() => Render("{{ 'a' + 1 }}")).Message);
    }
}
