using System.Text.Encodings.Web;
using System.Text.Json;
using Kto.Domain.Checkpoints;

namespace Kto.Domain.Tasks;

/// <summary>
/// Writes the JSONL files of the task loop, one JSON object per line (UTF-8, LF), each file atomically. Strings
/// are escaped by System.Text.Json; non-ASCII text of the Basic Multilingual Plane is kept as is, characters beyond
/// it (emoji) and control characters are written as <c>\u</c> escapes.
/// </summary>
public static class TaskJsonlWriter
{
    private static readonly JsonWriterOptions LineOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    /// <summary>Prompt rows: <c>{"prompt": …}</c>.</summary>
    public static void WritePrompts(string path, IEnumerable<string> prompts)
        => Write(path, prompts, (w, p) => w.WriteString("prompt", p));

    /// <summary>Supervised rows: <c>{"prompt": …, "completion": …}</c>.</summary>
    public static void WriteSft(string path, IEnumerable<(string Prompt, string Completion)> rows)
        => Write(path, rows, (w, r) =>
        {
            w.WriteString("prompt", r.Prompt);
            w.WriteString("completion", r.Completion);
        });

    /// <summary>Generated samples: <c>{"prompt_index": i, "sample": k, "prompt": …, "completion": …}</c>.</summary>
    public static void WriteSamples(string path, IEnumerable<GeneratedSample> samples)
        => Write(path, samples, (w, s) =>
        {
            w.WriteNumber("prompt_index", s.PromptIndex);
            w.WriteNumber("sample", s.SampleIndex);
            w.WriteString("prompt", s.Prompt);
            w.WriteString("completion", s.Completion);
        });

    /// <summary>TRL's standard KTO rows: <c>{"prompt": …, "completion": …, "label": true|false}</c>.</summary>
    public static void WriteFeedback(string path, IEnumerable<LabelledSample> rows)
        => Write(path, rows, (w, r) =>
        {
            w.WriteString("prompt", r.Prompt);
            w.WriteString("completion", r.Completion);
            w.WriteBoolean("label", r.Label);
        });

    private static void Write<T>(string path, IEnumerable<T> rows, Action<Utf8JsonWriter, T> fields)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        AtomicFile.Write(path, stream =>
        {
            using var writer = new Utf8JsonWriter(stream, LineOptions);
            foreach (T row in rows)
            {
                writer.WriteStartObject();
                fields(writer, row);
                writer.WriteEndObject();
                writer.Flush();
                writer.Reset();
                stream.WriteByte((byte)'\n');
            }
        });
    }
}
