using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to its dtype, shape and byte range, then the raw little-endian tensor bytes.
/// </summary>
public static class Safetensors
{
    private const string MetadataKey = "__metadata__";

    /// <summary>Headers above this size are refused (the format's own limit is 100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="stream"/> as the reference implementation lays them out:
    /// by descending element size, then by name (so every tensor starts aligned to its element size), after a header
    /// padded with spaces to a multiple of 8 bytes.
    /// </summary>
    public static void Write(Stream stream, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderByDescending(n => ElementSize(tensors[n].dtype)).ThenBy(n => n, StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 }) header[MetadataKey] = metadata;
        long offset = 0;
        foreach (string name in names)
        {
            Tensor t = tensors[name];
            long size = t.NumberOfElements * ElementSize(t.dtype);
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = DtypeName(t.dtype),
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + size },
            };
            offset += size;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8;
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
        stream.Write(len);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (string name in names)
        {
            using Tensor c = tensors[name].detach().cpu().contiguous();
            using Tensor flat = c.view(-1);
            long elements = flat.NumberOfElements, step = Math.Max(1, ChunkBytes / ElementSize(c.dtype));
            for (long at = 0; at < elements; at += step)
            {
                using Tensor part = flat.narrow(0, at, Math.Min(step, elements - at));
                stream.Write(part.bytes); // in chunks: a Span covers at most 2³¹−1 bytes
            }
        }
    }

    /// <summary>Writes to a file (not atomically; see <see cref="AtomicFile"/>).</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        Write(fs, tensors, metadata);
    }

    /// <summary>Bytes moved per read or write call (tensors above 2³¹−1 bytes cannot be one span).</summary>
    internal static long ChunkBytes { get; set; } = 64L << 20;

    /// <summary>A safetensors file's tensors (CPU, in their stored dtype) and metadata.</summary>
    public sealed record Contents(Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata);

    /// <summary>One tensor's entry in a header.</summary>
    /// <param name="Name">Its name.</param>
    /// <param name="Dtype">Its stored dtype.</param>
    /// <param name="Shape">Its shape.</param>
    /// <param name="Begin">Offset of its first byte from the start of the data section.</param>
    /// <param name="End">One past its last byte.</param>
    public sealed record Entry(string Name, ScalarType Dtype, long[] Shape, long Begin, long End);

    /// <summary>A parsed and checked header.</summary>
    /// <param name="Entries">Tensors in file order.</param>
    /// <param name="Metadata">The <c>__metadata__</c> strings.</param>
    /// <param name="DataStart">File offset of the data section (8 + header length).</param>
    public sealed record Header(IReadOnlyList<Entry> Entries, IReadOnlyDictionary<string, string> Metadata, long DataStart);

    /// <summary>
    /// Reads and checks the header of <paramref name="stream"/> (positioned at 0) as the reference reader does: each
    /// byte range matches its shape and dtype, the ranges are contiguous from 0 with no holes or overlaps, and the data
    /// section ends where the file ends.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is truncated or its header is inconsistent (names the file and tensor).</exception>
    public static Header ReadHeader(Stream stream, string path)
    {
        Span<byte> len = stackalloc byte[8];
        if (stream.Length < 8 || stream.ReadAtLeast(len, 8, throwOnEndOfStream: false) < 8) throw new InvalidDataException($"{path}: too short to be a safetensors file");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(len);
        if (headerLen > MaxHeaderBytes || 8 + headerLen > (ulong)stream.Length)
            throw new InvalidDataException($"{path}: header length {headerLen} does not fit the file ({stream.Length} bytes)");
        byte[] json = new byte[headerLen];
        stream.ReadExactly(json);
        long dataStart = 8 + (long)headerLen;
        var entries = new List<Entry>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            using JsonDocument doc = JsonDocument.Parse(json);
            foreach (JsonProperty p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == MetadataKey)
                {
                    foreach (JsonProperty m in p.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                    continue;
                }
                ScalarType dtype = ParseDtype(p.Value.GetProperty("dtype").GetString(), path, p.Name);
                long[] shape = [.. p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64())];
                long[] range = [.. p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64())];
                long expected = shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
                if (range.Length != 2 || range[0] < 0 || range[1] - range[0] != expected)
                    throw new InvalidDataException($"{path}: tensor \"{p.Name}\" has byte range [{string.Join(", ", range)}], which does not match its shape [{string.Join(", ", shape)}] and dtype {DtypeName(dtype)}");
                entries.Add(new Entry(p.Name, dtype, shape, range[0], range[1]));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{path}: malformed safetensors header: {e.Message}", e);
        }
        long at = 0;
        foreach (Entry e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin != at) throw new InvalidDataException($"{path}: tensor \"{e.Name}\" starts at byte {e.Begin} of the data, expected {at} (a hole or an overlap)");
            if (dataStart + e.End > stream.Length)
                throw new InvalidDataException($"{path}: tensor \"{e.Name}\" ends at byte {dataStart + e.End}, past the end of the file ({stream.Length} bytes): the file is truncated");
            at = e.End;
        }
        if (dataStart + at != stream.Length)
            throw new InvalidDataException($"{path}: the tensors end at byte {dataStart + at}, the file has {stream.Length} bytes (trailing data)");
        return new Header(entries, metadata, dataStart);
    }

    /// <summary>
    /// Reads tensor <paramref name="entry"/> into <paramref name="destination"/> (CPU, same shape; any floating dtype:
    /// the stored one is read straight in, another through one staging tensor of the stored dtype and converted by
    /// <c>copy_</c>, as torch rounds — BF16/F16 → F32 is exact).
    /// </summary>
    /// <exception cref="InvalidDataException">The shapes differ.</exception>
    public static void ReadInto(Stream stream, Header header, Entry entry, Tensor destination, string path)
    {
        if (!destination.shape.SequenceEqual(entry.Shape))
            throw new InvalidDataException($"{path}: tensor \"{entry.Name}\" has shape [{string.Join(", ", entry.Shape)}], expected [{string.Join(", ", destination.shape)}]");
        if (destination.dtype == entry.Dtype && destination.is_contiguous() && destination.device_type == DeviceType.CPU)
        {
            Fill(stream, header.DataStart + entry.Begin, destination);
            return;
        }
        using Tensor staging = empty(entry.Shape, entry.Dtype);
        Fill(stream, header.DataStart + entry.Begin, staging);
        using var noGrad = no_grad();
        destination.copy_(staging);
    }

    /// <summary>Reads the bytes of a contiguous CPU tensor from <paramref name="offset"/>, in chunks.</summary>
    private static void Fill(Stream stream, long offset, Tensor t)
    {
        stream.Position = offset;
        using Tensor flat = t.view(-1);
        long elements = flat.NumberOfElements, step = Math.Max(1, ChunkBytes / ElementSize(t.dtype));
        for (long at = 0; at < elements; at += step)
        {
            using Tensor part = flat.narrow(0, at, Math.Min(step, elements - at));
            stream.ReadExactly(part.bytes);
        }
    }

    /// <summary>Reads every tensor of the file at <paramref name="path"/> (one tensor in memory beside the result, never the whole file).</summary>
    /// <exception cref="InvalidDataException">The file is truncated or its header is inconsistent.</exception>
    public static Contents Read(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16);
        return Read(fs, path);
    }

    /// <summary>Reads every tensor of a safetensors image held in memory; <paramref name="path"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">The image is truncated or its header is inconsistent.</exception>
    public static Contents Read(byte[] all, string path)
    {
        using var ms = new MemoryStream(all, writable: false);
        return Read(ms, path);
    }

    private static Contents Read(Stream stream, string path)
    {
        Header header = ReadHeader(stream, path);
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (Entry e in header.Entries)
            {
                Tensor t = empty(e.Shape, e.Dtype);
                tensors[e.Name] = t;
                Fill(stream, header.DataStart + e.Begin, t);
            }
        }
        catch
        {
            foreach (Tensor t in tensors.Values) t.Dispose();
            throw;
        }
        return new Contents(tensors, new Dictionary<string, string>(header.Metadata, StringComparer.Ordinal));
    }

    /// <summary>The safetensors name of a dtype (F32, BF16, F16, …).</summary>
    public static string DtypeOf(ScalarType t) => DtypeName(t);

    /// <summary>Bytes per element of a dtype.</summary>
    public static long SizeOf(ScalarType t) => ElementSize(t);

    private static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"dtype {t} has no safetensors name"),
    };

    private static ScalarType ParseDtype(string? name, string path, string tensor) => name switch
    {
        "F32" => ScalarType.Float32,
        "F64" => ScalarType.Float64,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{path}: tensor \"{tensor}\" has unsupported dtype \"{name}\""),
    };

    private static long ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        _ => 1,
    };
}
