using System.Globalization;
using System.Text;

namespace Kto.Domain.Templating;

/// <summary>A name or attribute that does not exist: prints as nothing, is false, and fails <c>is defined</c>.</summary>
public sealed class Undefined
{
    private Undefined()
    {
    }

    /// <summary>The one undefined value.</summary>
    public static Undefined Instance { get; } = new();

    /// <inheritdoc />
    public override string ToString() => "";
}

/// <summary>Jinja's <c>namespace(...)</c>: an object whose attributes <c>{% set ns.x = … %}</c> may change from inside loops.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>A callable value: globals (<c>range</c>, <c>namespace</c>, <c>raise_exception</c>, …), bound string/dict methods and macros.</summary>
internal sealed class JinjaFunction(string name, Func<List<object?>, Dictionary<string, object?>, int, object?> call)
{
    public string Name { get; } = name;

    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs, int line) => call(args, kwargs, line);
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class LoopInfo(IReadOnlyList<object?> items, int index0)
{
    public object? Attribute(string name) => name switch
    {
        "index0" => (long)index0,
        "index" => (long)index0 + 1,
        "revindex0" => (long)(items.Count - index0 - 1),
        "revindex" => (long)(items.Count - index0),
        "first" => index0 == 0,
        "last" => index0 == items.Count - 1,
        "length" => (long)items.Count,
        "previtem" => index0 > 0 ? items[index0 - 1] : Undefined.Instance,
        "nextitem" => index0 + 1 < items.Count ? items[index0 + 1] : Undefined.Instance,
        "cycle" => new JinjaFunction("loop.cycle", (args, _, line) => args.Count == 0
            ? throw new JinjaException("loop.cycle() needs at least one value", line)
            : args[index0 % args.Count]),
        _ => Undefined.Instance,
    };
}

/// <summary>Python semantics of the values templates handle: truth, str(), ==, ordering, and json.dumps as transformers' <c>tojson</c>.</summary>
internal static class Py
{
    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> list => list.Count > 0,
        Dictionary<string, object?> dict => dict.Count > 0,
        _ => true,
    };

    /// <summary>Python's <c>str()</c> (what <c>{{ x }}</c> prints): None → "None", True → "True", lists and dicts as their repr.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => "'" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "\\'", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal) + "'",
        List<object?> list => "[" + string.Join(", ", list.Select(Repr)) + "]",
        Dictionary<string, object?> dict => "{" + string.Join(", ", dict.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}",
        Namespace => "<Namespace>",
        JinjaFunction f => $"<function {f.Name}>",
        _ => v.ToString() ?? "",
    };

    /// <summary>Python's float repr: the shortest round-trip digits, with ".0" on integral values.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        string r = d.ToString("R", CultureInfo.InvariantCulture);
        if (r.Contains('E', StringComparison.Ordinal))
        {
            // Python: 1e-05, 1e+16.
            var parts = r.Split('E');
            int exp = int.Parse(parts[1], CultureInfo.InvariantCulture);
            return $"{parts[0]}e{(exp < 0 ? "-" : "+")}{Math.Abs(exp):00}";
        }
        return r.Contains('.', StringComparison.Ordinal) ? r : r + ".0";
    }

    public static bool Eq(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (Undefined, Undefined) => true,
        (long x, long y) => x == y,
        (long or double or bool, long or double or bool) => Number(a) == Number(b),
        (string x, string y) => x == y,
        (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => Eq(p.First, p.Second)),
        (Dictionary<string, object?> x, Dictionary<string, object?> y) => x.Count == y.Count && x.All(kv => y.TryGetValue(kv.Key, out object? o) && Eq(kv.Value, o)),
        _ => ReferenceEquals(a, b),
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double Number(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new InvalidCastException($"{TypeName(v)} is not a number"),
    };

    public static int Compare(object? a, object? b, int line) => (a, b) switch
    {
        (string x, string y) => string.CompareOrdinal(x, y),
        _ when IsNumber(a) && IsNumber(b) => Number(a).CompareTo(Number(b)),
        _ => throw new JinjaException($"cannot compare {TypeName(a)} with {TypeName(b)}", line),
    };

    public static string TypeName(object? v) => v switch
    {
        null => "None",
        Undefined => "undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        Dictionary<string, object?> => "dict",
        Namespace => "namespace",
        JinjaFunction => "function",
        _ => v.GetType().Name,
    };

    /// <summary>
    /// <c>json.dumps(v, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sortKeys)</c>, as transformers'
    /// chat-template <c>tojson</c> filter calls it: <c>", "</c> and <c>": "</c> without indent, <c>","</c> and <c>": "</c> with.
    /// </summary>
    public static string Json(object? v, int? indent, bool sortKeys, int line)
    {
        var sb = new StringBuilder();
        WriteJson(sb, v, indent, sortKeys, 0, line);
        return sb.ToString();
    }

    private static void WriteJson(StringBuilder sb, object? v, int? indent, bool sortKeys, int depth, int line)
    {
        string itemSep = indent is null ? ", " : ",";
        switch (v)
        {
            case null or Undefined: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d)); break;
            case string s: JsonString(sb, s); break;
            case List<object?> list:
                if (list.Count == 0)
                {
                    sb.Append("[]");
                    break;
                }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, depth + 1);
                    WriteJson(sb, list[i], indent, sortKeys, depth + 1, line);
                }
                NewLine(sb, indent, depth);
                sb.Append(']');
                break;
            case Dictionary<string, object?> dict:
                if (dict.Count == 0)
                {
                    sb.Append("{}");
                    break;
                }
                sb.Append('{');
                IEnumerable<KeyValuePair<string, object?>> entries = sortKeys ? dict.OrderBy(kv => kv.Key, StringComparer.Ordinal) : dict;
                bool first = true;
                foreach (var (key, value) in entries)
                {
                    if (!first) sb.Append(itemSep);
                    first = false;
                    NewLine(sb, indent, depth + 1);
                    JsonString(sb, key);
                    sb.Append(": ");
                    WriteJson(sb, value, indent, sortKeys, depth + 1, line);
                }
                NewLine(sb, indent, depth);
                sb.Append('}');
                break;
            default: throw new JinjaException($"tojson: {TypeName(v)} is not JSON serializable", line);
        }
    }

    private static void NewLine(StringBuilder sb, int? indent, int depth)
    {
        if (indent is int n) sb.Append('\n').Append(' ', n * depth);
    }

    /// <summary>A JSON string as Python writes it with ensure_ascii=False: only quotes, backslashes and control characters escaped.</summary>
    private static void JsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    /// <summary>A .NET value (from JSON rows or the caller) as a template value: integers → long, numbers → double, lists, string-keyed dicts.</summary>
    public static object? From(object? v) => v switch
    {
        null or string or bool or long or double or Undefined or Namespace or JinjaFunction => v,
        int i => (long)i,
        float f => (double)f,
        decimal m => (double)m,
        System.Text.Json.Nodes.JsonNode node => FromJson(node),
        IReadOnlyDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => From(kv.Value), StringComparer.Ordinal),
        IDictionary<string, object?> d => d.ToDictionary(kv => kv.Key, kv => From(kv.Value), StringComparer.Ordinal),
        System.Collections.IEnumerable e => e.Cast<object?>().Select(From).ToList(),
        _ => v,
    };

    private static object? FromJson(System.Text.Json.Nodes.JsonNode node) => node switch
    {
        System.Text.Json.Nodes.JsonObject o => o.ToDictionary(kv => kv.Key, kv => kv.Value is null ? null : FromJson(kv.Value), StringComparer.Ordinal),
        System.Text.Json.Nodes.JsonArray a => a.Select(x => x is null ? null : FromJson(x)).ToList(),
        System.Text.Json.Nodes.JsonValue v when v.TryGetValue(out string? s) => s,
        System.Text.Json.Nodes.JsonValue v when v.TryGetValue(out bool b) => b,
        System.Text.Json.Nodes.JsonValue v when v.TryGetValue(out long l) => l,
        System.Text.Json.Nodes.JsonValue v when v.TryGetValue(out double d) => d,
        _ => node.ToJsonString(),
    };
}
