using Kto.Domain.Data;
using Kto.Domain.Tokenization;
using static Kto.Domain.Tests.Data.DataAssert;

namespace Kto.Domain.Tests.Data;

/// <summary>Every bad Parquet input names the file, the row and the column.</summary>
public sealed class ParquetErrorTests : IDisposable
{
    private static readonly DatasetLoadOptions Roomy = new(1024, 512, null);
    private readonly TempDataDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static void FailsOn(string path, params string[] fragments) =>
        Fails(() => KtoDatasetLoader.Load(path, ByteTokenizer.Instance, Roomy), [Path.GetFileName(path), .. fragments]);

    [Fact]
    public void LabelColumnOfStrings() =>
        FailsOn(_dir.Parquet("labels.parquet", new[] { new StringLabelRow { Prompt = "a", Completion = "b", Label = "true" } }),
            "labels.parquet:row 1: field \"label\": expected a boolean (true or false), found string \"true\"");

    [Fact]
    public void PromptColumnOfIntegers() =>
        FailsOn(_dir.Parquet("prompt.parquet", new[] { new NumericPromptRow { Prompt = 3, Completion = "b", Label = true } }),
            "prompt.parquet:row 1: field \"prompt\": expected a string, found integer 3");

    [Fact]
    public void NullLabelReportsItsRow() =>
        FailsOn(_dir.Parquet("null-label.parquet", new[]
            {
                new StandardRow { Prompt = "a", Completion = "b", Label = true },
                new StandardRow { Prompt = "a", Completion = "b", Label = false },
                new StandardRow { Prompt = "a", Completion = "b", Label = null },
            }),
            "null-label.parquet:row 3:", "field \"label\"", "found null");

    [Fact]
    public void MissingColumn() =>
        FailsOn(_dir.Parquet("nolabel.parquet", new[] { new NoLabelRow { Prompt = "a", Completion = "b" } }),
            "nolabel.parquet:row 1:", "field \"label\"", "no such field");

    [Fact]
    public void EmptyCompletion() =>
        FailsOn(_dir.Parquet("empty.parquet", new[]
            {
                new StandardRow { Prompt = "a", Completion = "b", Label = true },
                new StandardRow { Prompt = "a", Completion = "", Label = false },
            }),
            "empty.parquet:row 2:", "field \"completion\"", "found empty string");

    [Fact]
    public void NullCompletionInALaterRowGroup() =>
        FailsOn(_dir.Parquet("groups.parquet", new[]
            {
                new StandardRow { Prompt = "a", Completion = "b", Label = true },
                new StandardRow { Prompt = "a", Completion = "b", Label = false },
                new StandardRow { Prompt = "a", Completion = "b", Label = true },
                new StandardRow { Prompt = "a", Completion = null, Label = false },
            }, rowGroupSize: 2),
            "groups.parquet:row 4:", "field \"completion\"", "the standard format, as detected on row 1", "found null");

    [Fact]
    public void UnknownTokenId() =>
        FailsOn(_dir.Parquet("ids.parquet", new[]
            {
                new TokenizedRow { PromptIds = [1], CompletionIds = [2], Label = true },
                new TokenizedRow { PromptIds = [1], CompletionIds = [2, 3, 300], Label = false },
            }),
            "ids.parquet:row 2:", "field \"completion_ids\"", "expected token ids in [0, 257)", "found integer 300 at index 2");

    [Fact]
    public void NullTokenId() =>
        FailsOn(_dir.Parquet("null-id.parquet", new[]
            {
                new NullableIdsRow { PromptIds = [1], CompletionIds = [2, 3], Label = true },
                new NullableIdsRow { PromptIds = [1], CompletionIds = [2, null, 4], Label = false },
            }),
            "null-id.parquet:row 2:", "field \"completion_ids\"", "found null at index 1");

    [Fact]
    public void NullFirstTokenId() =>
        FailsOn(_dir.Parquet("null-first-id.parquet", new[] { new NullableIdsRow { PromptIds = [1], CompletionIds = [null, 4], Label = false } }),
            "null-first-id.parquet:row 1:", "field \"completion_ids\"", "found null at index 0");

    [Fact]
    public void NullMessages()
    {
        foreach ((int index, List<MessageCell> prompt) in new[] { (0, new List<MessageCell> { null!, MessageCell.Of("user", "x") }), (1, [MessageCell.Of("user", "x"), null!]) })
        {
            string path = _dir.Parquet($"null-message-{index}.parquet", new[]
            {
                new ConversationalRow { Prompt = prompt, Completion = [MessageCell.Of("assistant", "y")], Label = true },
            });
            FailsOn(path, $"null-message-{index}.parquet:row 1:", $"field \"prompt[{index}]\"", "expected a message object", "found null");
        }
    }

    [Fact]
    public void NullTokenIdList() =>
        FailsOn(_dir.Parquet("null-ids.parquet", new[] { new TokenizedRow { PromptIds = null, CompletionIds = [2], Label = true } }),
            "null-ids.parquet:row 1:", "field \"prompt_ids\"", "expected a list of token ids", "found null");

    [Fact]
    public void EmptyCompletionIds() =>
        FailsOn(_dir.Parquet("noids.parquet", new[] { new TokenizedRow { PromptIds = [1], CompletionIds = [], Label = true } }),
            "noids.parquet:row 1:", "field \"completion_ids\"", "expected a non-empty list of token ids");

    [Fact]
    public void MessageWithNullContent() =>
        FailsOn(_dir.Parquet("chat.parquet", new[]
            {
                new ConversationalRow { Prompt = [MessageCell.Of("user", "x")], Completion = [MessageCell.Of("assistant", "y")], Label = true },
                new ConversationalRow { Prompt = [MessageCell.Of("user", "x"), MessageCell.Of("user", null)], Completion = [MessageCell.Of("assistant", "y")], Label = false },
            }),
            "chat.parquet:row 2:", "field \"prompt[1].content\"", "expected a string", "found null");

    [Fact]
    public void NullConversationalPrompt() =>
        FailsOn(_dir.Parquet("chat-null.parquet", new[]
            {
                new ConversationalRow { Prompt = [MessageCell.Of("user", "x")], Completion = [MessageCell.Of("assistant", "y")], Label = true },
                new ConversationalRow { Prompt = null, Completion = [MessageCell.Of("assistant", "y")], Label = false },
            }),
            "chat-null.parquet:row 2:", "field \"prompt\"", "expected a list of messages (the conversational format, as detected on row 1)", "found null");

    [Fact]
    public void NoRows() =>
        FailsOn(_dir.Parquet("zero.parquet", Array.Empty<StandardRow>()), "zero.parquet: no examples");

    [Fact]
    public void NotAParquetFile() =>
        FailsOn(_dir.Text("junk.parquet", "this is not parquet"), "junk.parquet: not a readable Parquet file");
}
