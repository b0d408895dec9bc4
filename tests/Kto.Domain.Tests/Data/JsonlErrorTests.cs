using Kto.Domain.Data;
using Kto.Domain.Tokenization;
using static Kto.Domain.Tests.Data.DataAssert;

namespace Kto.Domain.Tests.Data;

/// <summary>Every bad JSONL input names the file, the line and (where there is one) the field.</summary>
public sealed class JsonlErrorTests : IDisposable
{
    private const string Good = """{"prompt": "a", "completion": "b", "label": true}""";
    private const string GoodTokenized = """{"prompt_ids": [1], "completion_ids": [2], "label": true}""";
    private static readonly DatasetLoadOptions Roomy = new(1024, 512, null);
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private void FailsOn(string[] lines, params string[] fragments)
    {
        string path = _dir.Jsonl("bad.jsonl", lines);
        Fails(() => KtoDatasetLoader.Load(path, ByteTokenizer.Instance, Roomy), ["bad.jsonl", .. fragments]);
    }

    [Fact]
    public void MalformedJson() => FailsOn([Good, """{"prompt": "a", "completion": """], "bad.jsonl:line 2:", "expected a JSON object, found malformed JSON at byte");

    [Fact]
    public void TrailingGarbageAfterTheObject() => FailsOn([Good, Good + " x"], "line 2:", "malformed JSON");

    [Theory]
    [InlineData("[1, 2]", "found a JSON list of 2 items")]
    [InlineData("\"text\"", "found a JSON string \"text\"")]
    [InlineData("42", "found a JSON integer 42")]
    [InlineData("null", "found a JSON null")]
    public void LineThatIsNotAnObject(string line, string found) => FailsOn([Good, Good, line], "line 3:", "expected a JSON object", found);

    [Fact]
    public void MissingField() =>
        FailsOn([Good, """{"prompt": "a", "label": true}"""], "line 2:", "field \"completion\"", "no such field");

    [Fact]
    public void MissingFieldOnTheFirstLine() =>
        FailsOn(["""{"prompt": "a", "completion": "b"}"""], "bad.jsonl:line 1: field \"label\": expected a boolean (true or false), found no such field");

    [Fact]
    public void PromptOfTheWrongType() =>
        FailsOn(["""{"prompt": 5, "completion": "b", "label": true}"""], "bad.jsonl:line 1: field \"prompt\": expected a string, found integer 5");

    [Fact]
    public void CompletionOfTheWrongType() =>
        FailsOn([Good, """{"prompt": "a", "completion": {"text": "b"}, "label": true}"""], "line 2:", "field \"completion\"", "found object");

    [Theory]
    [InlineData("\"true\"", "found string \"true\"")]
    [InlineData("1", "found integer 1")]
    [InlineData("0.0", "found number 0.0")]
    [InlineData("null", "found null")]
    [InlineData("[true]", "found list of 1 items")]
    public void LabelThatIsNotABoolean(string label, string found) =>
        FailsOn([Good, $$"""{"prompt": "a", "completion": "b", "label": {{label}}}"""], "line 2:", "field \"label\"", "expected a boolean", found);

    [Fact]
    public void EmptyCompletion() =>
        FailsOn([Good, Good, """{"prompt": "a", "completion": "", "label": false}"""], "line 3:", "field \"completion\"", "expected a non-empty string", "found empty string");

    [Fact]
    public void EmptyPairedCompletion() =>
        FailsOn(["""{"prompt": "a", "chosen": "b", "rejected": ""}"""], "line 1:", "field \"rejected\"", "found empty string");

    [Fact]
    public void EmptyConversationalCompletionList() =>
        FailsOn(["""{"prompt": [], "completion": [], "label": true}"""], "line 1:", "field \"completion\"", "expected a non-empty list of messages", "found empty list");

    [Fact]
    public void ConversationalCompletionWithEmptyContent() =>
        FailsOn(["""{"prompt": [], "completion": [{"role": "assistant", "content": ""}], "label": true}"""], "line 1:", "field \"completion\"", "renders to empty text");

    [Fact]
    public void ConversationalCompletionNotStartingWithTheAssistant() =>
        FailsOn(["""{"prompt": [], "completion": [{"role": "user", "content": "x"}], "label": true}"""], "line 1:", "field \"completion[0].role\"", "found string \"user\"");

    [Fact]
    public void MessageWithoutContent() =>
        FailsOn(["""{"prompt": [{"role": "user", "content": "x"}, {"role": "user"}], "completion": [{"role": "assistant", "content": "y"}], "label": true}"""],
            "line 1:", "field \"prompt[1].content\"", "found no such field");

    [Fact]
    public void MessageThatIsNotAnObject() =>
        FailsOn(["""{"prompt": ["hi"], "completion": [{"role": "assistant", "content": "y"}], "label": true}"""],
            "line 1:", "field \"prompt[0]\"", "expected a message object", "found string \"hi\"");

    [Fact]
    public void InvalidUtf8() =>
        FailsOnBytes([.. System.Text.Encoding.UTF8.GetBytes(Good + "\n{\"prompt\": \"a"), 0xC3, 0x28, .. System.Text.Encoding.UTF8.GetBytes("\", \"completion\": \"b\", \"label\": true}\n")],
            "bad.jsonl:line 2:", "expected UTF-8 text", "invalid UTF-8");

    [Theory]
    [InlineData("[1, 300]", "found integer 300 at index 1")]
    [InlineData("[-1]", "found integer -1 at index 0")]
    [InlineData("[257]", "found integer 257 at index 0")]
    [InlineData("[1, 2.5]", "found number 2.5 at index 1")]
    [InlineData("[1, \"2\"]", "found string \"2\" at index 1")]
    public void UnknownTokenId(string ids, string found) =>
        FailsOn([GoodTokenized, $$"""{"prompt_ids": [1], "completion_ids": {{ids}}, "label": true}"""],
            "line 2:", "field \"completion_ids\"", "expected token ids in [0, 257)", found);

    [Fact]
    public void UnknownPromptTokenId() =>
        FailsOn(["""{"prompt_ids": [5, 9999], "completion_ids": [1], "label": true}"""], "line 1:", "field \"prompt_ids\"", "found integer 9999 at index 1");

    [Fact]
    public void EmptyCompletionIds() =>
        FailsOn(["""{"prompt_ids": [5], "completion_ids": [], "label": true}"""], "line 1:", "field \"completion_ids\"", "expected a non-empty list of token ids", "found empty list");

    [Fact]
    public void RowOfAnotherFormatThanTheFirst() =>
        FailsOn([Good, GoodTokenized], "bad.jsonl:line 2:", "field \"prompt\"", "the standard format, as detected on line 1", "no such field (the row has the fields of the tokenized format)");

    [Fact]
    public void ConversationalRowInAStandardFile() =>
        FailsOn([Good, """{"prompt": [{"role": "user", "content": "x"}], "completion": [{"role": "assistant", "content": "y"}], "label": true}"""],
            "line 2:", "field \"prompt\"", "expected a string (the standard format, as detected on line 1)", "found list of 1 items");

    [Fact]
    public void StandardRowInAConversationalFile() =>
        FailsOn(["""{"prompt": [], "completion": [{"role": "assistant", "content": "y"}], "label": true}""", Good],
            "line 2:", "field \"prompt\"", "the conversational format, as detected on line 1", "found string \"a\"");

    [Fact]
    public void PairedRowMissingRejected() =>
        FailsOn(["""{"prompt": "a", "chosen": "b", "rejected": "c"}""", """{"prompt": "a", "chosen": "b"}"""],
            "line 2:", "field \"rejected\"", "the paired format", "no such field");

    [Fact]
    public void FirstRowWithNoFormatFields() =>
        FailsOn(["""{"question": "a", "answer": "b"}"""], "bad.jsonl:line 1:", "expected the fields of a KTO format", "answer, question");

    [Fact]
    public void EmptyFile() => FailsOn([], "bad.jsonl: no examples");

    [Fact]
    public void OnlyBlankLines() => FailsOn(["", "   ", "\t"], "bad.jsonl: no examples");

    [Fact]
    public void UnsupportedExtension()
    {
        string path = _dir.Text("data.csv", "prompt,completion,label\n");
        Fails(() => KtoDatasetLoader.Load(path, ByteTokenizer.Instance, Roomy), "data.csv", "unsupported file extension \".csv\"", ".jsonl", ".parquet");
    }

    [Fact]
    public void FileNotFound()
    {
        string path = _dir.PathOf("nowhere.jsonl");
        Fails(() => KtoDatasetLoader.Load(path, ByteTokenizer.Instance, Roomy), "nowhere.jsonl: file not found");
    }

    private void FailsOnBytes(byte[] content, params string[] fragments)
    {
        string path = _dir.Bytes("bad.jsonl", content);
        Fails(() => KtoDatasetLoader.Load(path, ByteTokenizer.Instance, Roomy), ["bad.jsonl", .. fragments]);
    }
}
