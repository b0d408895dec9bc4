using Kto.Domain.Data;
using Kto.Domain.Tests.Tokenization;
using Kto.Domain.Tokenization;

namespace Kto.Domain.Tests.Data;

/// <summary>
/// Conversational rows under a model's own chat template, as TRL's KTOTrainer tokenizes them: prompt =
/// render(prompt, add_generation_prompt=True), completion = render(prompt + completion) after it, both without added
/// special tokens (BOS comes from the template, once), no EOS appended (the template ends the turn).
/// </summary>
public sealed class ModelChatTemplateTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-chat-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Data(params string[] rows)
    {
        string path = Path.Combine(_dir, "data.jsonl");
        File.WriteAllLines(path, rows);
        return path;
    }

    private const string Row = """{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello!"}], "label": true}""";

    [HfFixturesFact]
    public void Qwen3RowsAreTheTemplatesTextWithoutBosOrAnAddedEos()
    {
        HfTokenizer qwen = HfTokenizer.Load(HfFixtures.Dir("qwen3"), configBos: 151643);
        KtoExample e = KtoDatasetLoader.Load(Data(Row), qwen, new DatasetLoadOptions(512, 256, null)).Examples.Single();
        const string Prompt = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
        Assert.Equal(qwen.Encode(Prompt), e.PromptIds);
        // Qwen3's template writes an empty thinking block before the last reply, and ends the turn with <|im_end|>\n.
        Assert.Equal(qwen.Encode("<think>\n\n</think>\n\nHello!<|im_end|>\n"), e.CompletionIds);
        Assert.Equal(198, e.CompletionIds[^1]); // "\n" after <|im_end|>: no EOS appended
    }

    [HfFixturesFact]
    public void LlamaRowsGetTheTemplatesBosOnce()
    {
        HfTokenizer llama = HfTokenizer.Load(HfFixtures.Dir("llama3_1"));
        KtoExample e = KtoDatasetLoader.Load(Data(Row), llama, new DatasetLoadOptions(512, 256, null)).Examples.Single();
        Assert.Equal(128000, e.PromptIds[0]);
        Assert.Equal(1, e.PromptIds.Count(id => id == 128000));
        Assert.Equal([.. llama.Encode("Hello!"), 128009], e.CompletionIds); // <|eot_id|> from the template
    }

    [Fact]
    public void ARunConfigTemplateOverridesAndAPromptThatIsNoPrefixIsRefusedNamingTheRow()
    {
        const string Plain = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
        var options = new DatasetLoadOptions(512, 256, null, ChatTemplate: Plain);
        KtoExample e = KtoDatasetLoader.Load(Data(Row), ByteTokenizer.Instance, options).Examples.Single();
        Assert.Equal(ByteTokenizer.Instance.Encode("<system>Be brief.<user>Hi<assistant>"), e.PromptIds);
        Assert.Equal(ByteTokenizer.Instance.Encode("Hello!"), e.CompletionIds);

        const string Broken = "{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}[reply]{% endif %}";
        var error = Assert.Throws<DataException>(() => KtoDatasetLoader.Load(Data(Row), ByteTokenizer.Instance, options with { ChatTemplate = Broken }));
        Assert.Contains("data.jsonl:line 1: field \"completion\": expected a conversation whose rendering by the run config's chat_template starts with the prompt's rendering", error.Message);

        var raised = Assert.Throws<DataException>(() => KtoDatasetLoader.Load(Data(Row), ByteTokenizer.Instance,
            options with { ChatTemplate = "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" }));
        Assert.Contains("line 1: field \"prompt\": the run config's chat_template failed: line 1: the template raised: System role not supported", raised.Message);

        var syntax = Assert.Throws<InvalidDataException>(() => KtoDatasetLoader.Load(Data(Row), ByteTokenizer.Instance, options with { ChatTemplate = "{% if %}" }));
        Assert.StartsWith("the run config's chat_template: line 1:", syntax.Message);
    }

    [Fact]
    public void WithoutATemplateConversationsKeepTheTranscript()
    {
        KtoExample e = KtoDatasetLoader.Load(Data(Row), ByteTokenizer.Instance, new DatasetLoadOptions(512, 256, null)).Examples.Single();
        Assert.Equal(ByteTokenizer.Instance.Encode("system: Be brief.\nuser: Hi\nassistant: "), e.PromptIds);
        Assert.Equal([.. ByteTokenizer.Instance.Encode("Hello!"), ByteTokenizer.Eos], e.CompletionIds);
    }
}
