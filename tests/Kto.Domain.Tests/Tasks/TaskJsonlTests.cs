using System.Text.Json;
using Kto.Domain.Data;
using Kto.Domain.Tasks;

namespace Kto.Domain.Tests.Tasks;

public sealed class TaskJsonlTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kto-tasks-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string File(string name, string text)
    {
        string path = Path.Combine(_dir, name);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void PromptsKeepTheirLinesAndIgnoreOtherFields()
    {
        string path = File("p.jsonl", "{\"prompt\":\"1+2=\",\"answer\":\"3\"}\n\n{\"prompt\":\"\\u00e9\"}\r\n");
        var rows = TaskJsonlReader.ReadPrompts(path);
        Assert.Equal([new PromptRow("1+2=", 1), new PromptRow("é", 3)], rows);
    }

    [Theory]
    [InlineData("{\"prompt\":5}\n", "p.jsonl:line 1: field \"prompt\": expected a string, found integer 5")]
    [InlineData("{\"prompt\":\"a\"}\n{\"text\":\"b\"}\n", "p.jsonl:line 2: field \"prompt\": expected a string, found no such field")]
    [InlineData("{\"prompt\":\"a\"}\n{oops\n", "p.jsonl:line 2: expected a JSON object, found malformed JSON")]
    [InlineData("\n\n", "p.jsonl: no prompts")]
    public void BadPromptFilesNameTheFileAndLine(string text, string message)
    {
        string path = File("p.jsonl", text);
        var e = Assert.Throws<DataException>(() => TaskJsonlReader.ReadPrompts(path));
        Assert.StartsWith(message, e.Message.Replace(_dir + Path.DirectorySeparatorChar, "", StringComparison.Ordinal));
    }

    [Fact]
    public void AMissingFileIsADataError()
    {
        Assert.EndsWith("file not found", Assert.Throws<DataException>(() => TaskJsonlReader.ReadSamples(Path.Combine(_dir, "none.jsonl"))).Message);
    }

    [Fact]
    public void WrittenRowsReadBackWithEscapesIntact()
    {
        string tricky = "say \"hi\"\n\\ \u0001 é 🙂 <&> +";
        string samples = Path.Combine(_dir, "sub", "s.jsonl");
        TaskJsonlWriter.WriteSamples(samples, [new GeneratedSample(0, 1, "1+2=", tricky), new GeneratedSample(1, 0, tricky, "")]);
        Assert.Equal([new Sample("1+2=", tricky), new Sample(tricky, "")], TaskJsonlReader.ReadSamples(samples));
        string[] lines = System.IO.File.ReadAllLines(samples);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("{\"prompt_index\":0,\"sample\":1,\"prompt\":\"1+2=\",", lines[0]);
        Assert.Contains("é \\uD83D\\uDE42 <&> +", lines[0]);   // BMP text as is; an emoji as a surrogate-pair escape

        string feedback = Path.Combine(_dir, "f.jsonl");
        TaskJsonlWriter.WriteFeedback(feedback, [new LabelledSample("1+2=", "3", true), new LabelledSample("1+2=", "4", false)]);
        var parsed = System.IO.File.ReadAllLines(feedback).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.True(parsed[0].GetProperty("label").GetBoolean());
        Assert.False(parsed[1].GetProperty("label").GetBoolean());
        Assert.Equal("4", parsed[1].GetProperty("completion").GetString());

        string prompts = Path.Combine(_dir, "p.jsonl");
        TaskJsonlWriter.WritePrompts(prompts, ["1+2=", tricky]);
        Assert.Equal(["1+2=", tricky], TaskJsonlReader.ReadPrompts(prompts).Select(p => p.Prompt));

        string sft = Path.Combine(_dir, "sft.jsonl");
        TaskJsonlWriter.WriteSft(sft, [("1+2=", "3")]);
        Assert.Equal("{\"prompt\":\"1+2=\",\"completion\":\"3\"}", System.IO.File.ReadAllText(sft).TrimEnd('\n'));
    }
}
