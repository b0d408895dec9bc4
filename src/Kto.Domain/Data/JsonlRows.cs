using System.Text;
using System.Text.Json;

namespace Kto.Domain.Data;

/// <summary>
/// Reads a JSONL file as rows: one JSON object per line, blank lines skipped, each line decoded as strict UTF-8
/// (a byte-order mark on the first line is allowed). Lines end with LF or CRLF.
/// </summary>
internal static class JsonlRows
{
    /// <summary>Bytes read from the file at a time.</summary>
    public const int ReadBufferSize = 1 << 16;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private static readonly byte[] ByteOrderMark = [0xEF, 0xBB, 0xBF];

    /// <summary>The non-blank lines of <paramref name="path"/>, parsed; errors surface while enumerating.</summary>
    public static IEnumerable<SourceRecord> Read(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, ReadBufferSize);
        int number = 0;
        foreach (byte[] line in Lines(stream))
        {
            number++;
            var at = new RowRef(path, RowRef.Line, number);
            ReadOnlySpan<byte> bytes = line;
            if (number == 1 && bytes.StartsWith(ByteOrderMark)) bytes = bytes[ByteOrderMark.Length..];
            string text = Decode(bytes, at);
            if (string.IsNullOrWhiteSpace(text)) continue;
            yield return new SourceRecord(at, Parse(text, at));
        }
    }

    private static IEnumerable<byte[]> Lines(Stream stream)
    {
        var pending = new MemoryStream();
        var buffer = new byte[ReadBufferSize];
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            int start = 0;
            int newline;
            while ((newline = Array.IndexOf(buffer, (byte)'\n', start, read - start)) >= 0)
            {
                pending.Write(buffer, start, newline - start);
                yield return Take(pending);
                start = newline + 1;
            }
            pending.Write(buffer, start, read - start);
        }
        if (pending.Length > 0) yield return Take(pending);
    }

    private static byte[] Take(MemoryStream pending)
    {
        byte[] line = pending.ToArray();
        pending.SetLength(0);
        return line.Length > 0 && line[^1] == (byte)'\r' ? line[..^1] : line;
    }

    private static string Decode(ReadOnlySpan<byte> bytes, RowRef at)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            string where = e.Index >= 0 ? $" at byte {e.Index}" : "";
            throw DataErrors.Row(at, "UTF-8 text", $"an invalid UTF-8 byte sequence{where}", e);
        }
    }

    private static IReadOnlyDictionary<string, DataValue> Parse(string text, RowRef at)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            string reason = e.Message.Split(" LineNumber:", 2)[0].TrimEnd();
            string where = e.BytePositionInLine is long b ? $" at byte {b}" : "";
            throw DataErrors.Row(at, "a JSON object", $"malformed JSON{where} ({reason})", e);
        }
        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw DataErrors.Row(at, "a JSON object", $"a JSON {Convert(root).Describe()}");
            return ((ObjectValue)Convert(root)).Fields;
        }
    }

    private static DataValue Convert(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => new ObjectValue(Fields(e)),
        JsonValueKind.Array => new ListValue([.. e.EnumerateArray().Select(Convert)]),
        JsonValueKind.String => new StringValue(e.GetString()!),
        JsonValueKind.Number => e.TryGetInt64(out long n) ? new IntegerValue(n) : new NumberValue(e.GetRawText()),
        JsonValueKind.True => new BoolValue(true),
        JsonValueKind.False => new BoolValue(false),
        _ => NullValue.Instance,
    };

    /// <summary>The members of an object; of repeated names the last wins, as in most JSON readers.</summary>
    private static Dictionary<string, DataValue> Fields(JsonElement e)
    {
        var fields = new Dictionary<string, DataValue>(StringComparer.Ordinal);
        foreach (JsonProperty p in e.EnumerateObject()) fields[p.Name] = Convert(p.Value);
        return fields;
    }
}
