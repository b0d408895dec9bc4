using System.Text.Json;
using System.Text.Json.Nodes;
using Kto.Domain.Data;
using Kto.Domain.Tokenization;

namespace Kto.Domain.Tests.Tokenization;

/// <summary>
/// A checkpoint's own tokenizer.json against Hugging Face's reference binding: the ids of tricky texts (unicode, emoji,
/// CJK, digits, whitespace runs, special-token strings inside content, empty text) equal those make-fixtures.mjs wrote
/// with npm's <c>tokenizers</c>, for Qwen3, Llama 3.1 and Mistral files; special tokens come from tokenizer_config.json.
/// </summary>
public sealed class HfTokenizerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-hftok-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [HfFixturesTheory]
    [InlineData("qwen3")]
    [InlineData("llama3_1")]
    [InlineData("mistral")]
    public void IdsEqualTheReferenceBindingsWithAndWithoutSpecialTokens(string name)
    {
        HfTokenizer tok = HfTokenizer.Load(HfFixtures.Dir(name));
        int cases = 0;
        foreach (JsonElement c in HfFixtures.Expected.GetProperty("cases").GetProperty(name).EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            int[] expected = [.. c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32())];
            int[] withSpecials = [.. c.GetProperty("ids_with_special_tokens").EnumerateArray().Select(x => x.GetInt32())];
            Assert.True(expected.SequenceEqual(tok.Encode(text)), $"{name}: {JsonSerializer.Serialize(text)}: expected [{string.Join(",", expected)}], got [{string.Join(",", tok.Encode(text))}]");
            Assert.Equal(withSpecials, (int[])[.. tok.SpecialPrefix, .. tok.Encode(text)]);
            cases++;
        }
        Assert.Equal(18, cases);
    }

    [HfFixturesFact]
    public void SpecialTokensComeFromTokenizerConfig()
    {
        HfTokenizer qwen = HfTokenizer.Load(HfFixtures.Dir("qwen3"), configBos: 151643);
        Assert.Equal((151645, 151643, 151669), (qwen.EosTokenId, qwen.BosTokenId, qwen.VocabSize)); // eos <|im_end|>; no bos_token: config.json's
        Assert.Empty(qwen.SpecialPrefix);
        Assert.Contains("<|im_start|>", qwen.ChatTemplate);
        Assert.Equal("<|im_end|>", qwen.SpecialTokens["eos_token"]);
        Assert.Null(qwen.SpecialTokens["bos_token"]);
        Assert.Equal(151645, HfTokenizer.Load(HfFixtures.Dir("qwen3")).BosTokenId); // nothing names a BOS: EOS

        HfTokenizer llama = HfTokenizer.Load(HfFixtures.Dir("llama3_1"));
        Assert.Equal((128009, 128000, 128256), (llama.EosTokenId, llama.BosTokenId, llama.VocabSize)); // <|eot_id|>, <|begin_of_text|>
        Assert.Equal([128000], llama.SpecialPrefix);   // from the post-processor: tokenizer_config.json has no add_bos_token
        Assert.NotNull(llama.ChatTemplate);

        HfTokenizer mistral = HfTokenizer.Load(HfFixtures.Dir("mistral"));
        Assert.Equal((2, 1, 32000), (mistral.EosTokenId, mistral.BosTokenId, mistral.VocabSize));
        Assert.Equal([1], mistral.SpecialPrefix);        // add_bos_token: true
        Assert.Null(mistral.ChatTemplate);
        Assert.Equal("Hello world", mistral.Decode(mistral.Encode("Hello world")));
    }

    [HfFixturesFact]
    public void GenerationConfigAddsStopIdsAndASidecarTemplateWins()
    {
        string dir = Copy("llama3_1");
        File.WriteAllText(Path.Combine(dir, HfTokenizer.GenerationConfigFile), """{"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}""");
        File.WriteAllText(Path.Combine(dir, HfTokenizer.ChatTemplateFile), "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}");
        HfTokenizer tok = HfTokenizer.Load(dir);
        Assert.Equal([128009, 128001, 128008], tok.StopTokenIds);
        Assert.StartsWith("{{ bos_token }}", tok.ChatTemplate);
    }

    [HfFixturesFact]
    public void TextRowsGetBosOnceAndEosAtTheEndAsTrlTokenizesThem()
    {
        string data = Path.Combine(_dir, "data.jsonl");
        File.WriteAllLines(data,
        [
            """{"prompt": "What is 2+2?", "completion": " 4", "label": true}""",
            """{"prompt": "<|begin_of_text|>Already has BOS.", "completion": " ok<|eot_id|>", "label": false}""",
            """{"prompt": "", "completion": "Hi", "label": true}""",
        ]);
        HfTokenizer llama = HfTokenizer.Load(HfFixtures.Dir("llama3_1"));
        var rows = KtoDatasetLoader.Load(data, llama, new DatasetLoadOptions(512, 256, null)).Examples;
        Assert.Equal([128000, .. llama.Encode("What is 2+2?")], rows[0].PromptIds);
        Assert.Equal([.. llama.Encode(" 4"), 128009], rows[0].CompletionIds);
        Assert.Equal(1, rows[1].PromptIds.Count(id => id == 128000));
        Assert.Equal([.. llama.Encode(" ok"), 128009], rows[1].CompletionIds); // EOS once
        Assert.Equal([128000], rows[2].PromptIds);

        HfTokenizer qwen = HfTokenizer.Load(HfFixtures.Dir("qwen3"), configBos: 151643);
        var q = KtoDatasetLoader.Load(data, qwen, new DatasetLoadOptions(512, 256, null)).Examples;
        Assert.Equal(qwen.Encode("What is 2+2?"), q[0].PromptIds); // Qwen adds no BOS
        Assert.Equal([151643], q[2].PromptIds);                    // an empty prompt is config.json's bos_token_id
    }

    [HfFixturesFact]
    public void ASentencePieceCompletionIsTokenizedInItsPromptsContext()
    {
        // Mistral's normalizer prepends "▁" to a text: on its own " 4" would start with an extra "▁"; after its prompt it does not.
        string data = Path.Combine(_dir, "data.jsonl");
        File.WriteAllText(data, """{"prompt": "2+2=", "completion": "4", "label": true}""" + "\n");
        HfTokenizer mistral = HfTokenizer.Load(HfFixtures.Dir("mistral"));
        KtoExample row = KtoDatasetLoader.Load(data, mistral, new DatasetLoadOptions(64, 32, null)).Examples.Single();
        int[] whole = mistral.Encode("2+2=4"), prompt = mistral.Encode("2+2=");
        Assert.Equal([.. whole[prompt.Length..], 2], row.CompletionIds);
        Assert.NotEqual(mistral.Encode("4"), whole[prompt.Length..]);
    }

    [HfFixturesFact]
    public void BadTokenizerFilesAreRefusedNamingFileAndKey()
    {
        string dir = Copy("qwen3");
        string config = Path.Combine(dir, HfTokenizer.ConfigFile);
        JsonObject c = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        c["eos_token"] = "<|no such token|>";
        File.WriteAllText(config, c.ToJsonString());
        Assert.Contains("tokenizer_config.json: \"eos_token\" \"<|no such token|>\" is not a token of", Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(dir)).Message);

        c.Remove("eos_token");
        File.WriteAllText(config, c.ToJsonString());
        Assert.Contains("no \"eos_token\"", Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(dir)).Message);
        Assert.Equal(7, HfTokenizer.Load(dir, configEos: 7).EosTokenId);

        File.WriteAllText(Path.Combine(dir, HfTokenizer.TokenizerFile), "{\"model\": ");
        Assert.Contains("tokenizer.json: malformed JSON", Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(dir)).Message);
        File.WriteAllText(Path.Combine(dir, HfTokenizer.TokenizerFile), "{\"model\": {\"type\": \"BPE\"}}");
        Assert.Contains("\"model.vocab\" missing", Assert.Throws<InvalidDataException>(() => HfTokenizer.Load(dir)).Message);
    }

    private string Copy(string name)
    {
        string dir = Path.Combine(_dir, name);
        Directory.CreateDirectory(dir);
        foreach (string f in Directory.GetFiles(HfFixtures.Dir(name))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }
}
