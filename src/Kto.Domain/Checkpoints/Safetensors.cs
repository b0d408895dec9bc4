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

    /// <summary>Writes <paramref name="tensors"/> (in name order) to <paramref name="stream"/>.</summary>
    public static void Write(Stream stream, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var header = new Dictionary<string, object>(StringComparer.Ordinal);
        if (metadata is { Count: > 0 }) header[MetadataKey] = metadata;
        long offset = 0;
        foreach (string name in names)
        {
            Tensor t = tensors[name];
            long size = t.NumberOfElements * t.ElementSize;
            header[name] = new Dictionary<string, object>
            {
                ["dtype"] = DtypeName(t.dtype),
                ["shape"] = t.shape,
                ["data_offsets"] = new[] { offset, offset + size },
            };
            offset += size;
        }
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(header);
        int padded = (json.Length + 7) / 8 * 8; // align the data section to 8 bytes, padding with spaces
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
        stream.Write(len);
        stream.Write(json);
        for (int i = json.Length; i < padded; i++) stream.WriteByte((byte)' ');
        foreach (string name in names)
        {
            using Tensor c = tensors[name].detach().cpu().contiguous();
            stream.Write(c.bytes);
        }
    }

    /// <summary>Writes to a file (not atomically; see <see cref="AtomicFile"/>).</summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        Write(fs, tensors, metadata);
    }

    /// <summary>A safetensors file's tensors (CPU, in their stored dtype) and metadata.</summary>
    public sealed record Contents(Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata);

    /// <summary>Reads every tensor of the file at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file is truncated or its header is inconsistent.</exception>
    public static Contents Read(string path) => Read(File.ReadAllBytes(path), path);

    /// <summary>Reads every tensor of a safetensors image held in memory; <paramref name="path"/> names it in errors.</summary>
    /// <exception cref="InvalidDataException">The image is truncated or its header is inconsistent.</exception>
    public static Contents Read(byte[] all, string path)
    {
        if (all.Length < 8) throw new InvalidDataException($"{path}: too short to be a safetensors file");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(all);
        if (headerLen > MaxHeaderBytes || 8 + headerLen > (ulong)all.Length)
            throw new InvalidDataException($"{path}: header length {headerLen} does not fit the file ({all.Length} bytes)");
        int dataStart = 8 + (int)headerLen;
        using JsonDocument doc = JsonDocument.Parse(all.AsMemory(8, (int)headerLen));
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (JsonProperty p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == MetadataKey)
            {
                foreach (JsonProperty m in p.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                continue;
            }
            ScalarType dtype = ParseDtype(p.Value.GetProperty("dtype").GetString(), path, p.Name);
            long[] shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            long[] range = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            long expected = shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
            if (range.Length != 2 || range[1] - range[0] != expected || dataStart + range[1] > all.Length || range[0] < 0)
                throw new InvalidDataException($"{path}: tensor \"{p.Name}\" has byte range [{string.Join(", ", range)}], which does not match its shape or the file size");
            Tensor t = empty(shape, dtype);
            all.AsSpan(dataStart + (int)range[0], (int)expected).CopyTo(t.bytes);
            tensors[p.Name] = t;
        }
        return new Contents(tensors, metadata);
    }

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
