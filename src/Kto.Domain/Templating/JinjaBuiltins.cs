using System.Globalization;
using System.Text;

namespace Kto.Domain.Templating;

/// <summary>
/// The globals, filters, tests, operators, attribute rules and string/dict methods of Jinja that chat templates use, with
/// Python's semantics (the engine transformers renders them with). Anything else is an error naming it.
/// </summary>
internal static class Builtins
{
    /// <summary>Globals: Jinja's <c>range</c>, <c>namespace</c>, <c>dict</c>, and transformers' <c>raise_exception</c> (<c>strftime_now</c> is set per render).</summary>
    public static Dictionary<string, JinjaFunction> Globals { get; } = new(StringComparer.Ordinal)
    {
        ["range"] = new("range", (args, _, line) =>
        {
            long[] a = [.. args.Select(x => x is long l ? l : throw new JinjaException("range() takes integers", line))];
            var (start, stop, step) = a.Length switch
            {
                1 => (0L, a[0], 1L),
                2 => (a[0], a[1], 1L),
                3 => (a[0], a[1], a[2]),
                _ => throw new JinjaException("range() takes 1 to 3 arguments", line),
            };
            if (step == 0) throw new JinjaException("range() step must not be zero", line);
            var items = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step) items.Add(i);
            return items;
        }),
        ["namespace"] = new("namespace", (args, kwargs, _) =>
        {
            var ns = new Namespace();
            foreach (object? a in args)
                if (a is Dictionary<string, object?> d)
                    foreach (var (k, v) in d) ns.Attributes[k] = v;
            foreach (var (k, v) in kwargs) ns.Attributes[k] = v;
            return ns;
        }),
        ["dict"] = new("dict", (_, kwargs, _) => new Dictionary<string, object?>(kwargs, StringComparer.Ordinal)),
        ["raise_exception"] = new("raise_exception", (args, _, line) =>
            throw new JinjaException($"the template raised: {(args.Count > 0 ? Py.Str(args[0]) : "an error")}", line)),
    };

    /// <summary>The items a for loop visits: a list's items, a dict's keys, a string's characters; none for undefined.</summary>
    public static List<object?> Iterate(object? v, int line) => v switch
    {
        List<object?> list => list,
        Dictionary<string, object?> d => [.. d.Keys],
        string s => [.. s.Select(c => (object?)c.ToString())],
        Undefined => [],
        _ => throw new JinjaException($"{Py.TypeName(v)} is not iterable", line),
    };

    /// <summary><c>x.name</c>: a dict's key, a namespace's or loop's attribute, or a method of strings and dicts; undefined otherwise.</summary>
    public static object? Attribute(object? target, string name, int line) => target switch
    {
        Dictionary<string, object?> d when d.TryGetValue(name, out object? v) => v,
        Dictionary<string, object?> d => DictMethod(d, name) ?? (object)Undefined.Instance,
        Namespace ns => ns.Attributes.TryGetValue(name, out object? v) ? v : Undefined.Instance,
        LoopInfo loop => loop.Attribute(name),
        string s => StringMethod(s, name, line) ?? (object)Undefined.Instance,
        _ => Undefined.Instance,
    };

    /// <summary><c>x[key]</c> (Jinja gives undefined for a missing key or an index out of range).</summary>
    public static object? Item(object? target, object? key, int line) => (target, key) switch
    {
        (Dictionary<string, object?> d, string k) => d.TryGetValue(k, out object? v) ? v : DictMethod(d, k) ?? (object)Undefined.Instance,
        (List<object?> list, long i) => (i < 0 ? list.Count + i : i) is var j && j >= 0 && j < list.Count ? list[(int)j] : Undefined.Instance,
        (string s, long i) => (i < 0 ? s.Length + i : i) is var j && j >= 0 && j < s.Length ? s[(int)j].ToString() : Undefined.Instance,
        (Namespace or LoopInfo, string k) => Attribute(target, k, line),
        (string s, string k) => StringMethod(s, k, line) ?? (object)Undefined.Instance,
        _ => Undefined.Instance,
    };

    /// <summary><c>x[start:stop:step]</c> of a list or string, Python's rules.</summary>
    public static object? Slice(object? target, object? start, object? stop, object? step, int line)
    {
        long? Num(object? v, string what) => v switch
        {
            null or Undefined => null,
            long l => l,
            _ => throw new JinjaException($"slice {what} must be an integer, not {Py.TypeName(v)}", line),
        };
        int length = target switch
        {
            List<object?> l => l.Count,
            string s => s.Length,
            _ => throw new JinjaException($"{Py.TypeName(target)} cannot be sliced", line),
        };
        long st = Num(step, "step") ?? 1;
        if (st == 0) throw new JinjaException("slice step cannot be zero", line);
        long Clamp(long? v, long fallback)
        {
            if (v is not long x) return fallback;
            if (x < 0) x += length;
            return st > 0 ? Math.Clamp(x, 0, length) : Math.Clamp(x, -1, length - 1);
        }
        long from = Clamp(Num(start, "start"), st > 0 ? 0 : length - 1), to = Clamp(Num(stop, "stop"), st > 0 ? length : -1);
        var indices = new List<int>();
        for (long i = from; st > 0 ? i < to : i > to; i += st) indices.Add((int)i);
        return target is string str
            ? string.Concat(indices.Select(i => str[i]))
            : indices.Select(i => ((List<object?>)target)[i]).ToList();
    }

    private static JinjaFunction? DictMethod(Dictionary<string, object?> d, string name) => name switch
    {
        "items" => new("items", (_, _, _) => d.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()),
        "keys" => new("keys", (_, _, _) => d.Keys.Select(k => (object?)k).ToList()),
        "values" => new("values", (_, _, _) => d.Values.ToList()),
        "get" => new("get", (args, _, line) => args.Count is 1 or 2
            ? args[0] is string k && d.TryGetValue(k, out object? v) ? v : args.Count == 2 ? args[1] : null
            : throw new JinjaException("get() takes a key and an optional default", line)),
        _ => null,
    };

    private static JinjaFunction? StringMethod(string s, string name, int line)
    {
        string Arg(List<object?> args, int i, string fallback) => args.Count > i && args[i] is not (null or Undefined)
            ? args[i] as string ?? throw new JinjaException($"{name}() takes strings", line)
            : fallback;
        return name switch
        {
            "startswith" => new(name, (a, _, _) => a.Count > 0 && a[0] is List<object?> options ? options.Any(o => s.StartsWith(Py.Str(o), StringComparison.Ordinal)) : s.StartsWith(Arg(a, 0, ""), StringComparison.Ordinal)),
            "endswith" => new(name, (a, _, _) => a.Count > 0 && a[0] is List<object?> options ? options.Any(o => s.EndsWith(Py.Str(o), StringComparison.Ordinal)) : s.EndsWith(Arg(a, 0, ""), StringComparison.Ordinal)),
            "strip" => new(name, (a, _, _) => a.Count > 0 && a[0] is string chars ? s.Trim(chars.ToCharArray()) : s.Trim(PyWhitespace)),
            "lstrip" => new(name, (a, _, _) => a.Count > 0 && a[0] is string chars ? s.TrimStart(chars.ToCharArray()) : s.TrimStart(PyWhitespace)),
            "rstrip" => new(name, (a, _, _) => a.Count > 0 && a[0] is string chars ? s.TrimEnd(chars.ToCharArray()) : s.TrimEnd(PyWhitespace)),
            "upper" => new(name, (_, _, _) => s.ToUpperInvariant()),
            "lower" => new(name, (_, _, _) => s.ToLowerInvariant()),
            "title" => new(name, (_, _, _) => Title(s)),
            "capitalize" => new(name, (_, _, _) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant()),
            "replace" => new(name, (a, _, l) => a.Count >= 2 && a[0] is string from && a[1] is string to
                ? (from.Length == 0 ? s : s.Replace(from, to, StringComparison.Ordinal))
                : throw new JinjaException("replace() takes two strings", l)),
            "split" => new(name, (a, kw, _) =>
            {
                string? sep = a.Count > 0 && a[0] is string x ? x : kw.TryGetValue("sep", out object? k) ? k as string : null;
                long max = a.Count > 1 && a[1] is long m ? m : kw.TryGetValue("maxsplit", out object? km) && km is long mm ? mm : -1;
                if (sep is null)
                    return s.Split(PyWhitespace, max < 0 ? int.MaxValue : (int)max + 1, StringSplitOptions.RemoveEmptyEntries).Select(p => (object?)p).ToList();
                if (sep.Length == 0) throw new JinjaException("split(): empty separator", line);
                return s.Split(sep, max < 0 ? int.MaxValue : (int)max + 1).Select(p => (object?)p).ToList();
            }),
            "find" => new(name, (a, _, _) => (long)s.IndexOf(Arg(a, 0, ""), StringComparison.Ordinal)),
            "count" => new(name, (a, _, l) => Arg(a, 0, "") is { Length: > 0 } sub ? (long)((s.Length - s.Replace(sub, "", StringComparison.Ordinal).Length) / sub.Length) : throw new JinjaException("count() takes a non-empty string", l)),
            "join" => new(name, (a, _, l) => string.Join(s, (a.Count > 0 ? Iterate(a[0], l) : []).Select(Py.Str))),
            "isdigit" => new(name, (_, _, _) => s.Length > 0 && s.All(char.IsDigit)),
            "format" => new(name, (a, _, l) => FormatBraces(s, a, l)),
            _ => null,
        };
    }

    private static readonly char[] PyWhitespace = [' ', '\t', '\n', '\r', '\v', '\f'];

    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool start = true;
        foreach (char c in s)
        {
            sb.Append(start ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            start = !char.IsLetter(c);
        }
        return sb.ToString();
    }

    private static string FormatBraces(string s, List<object?> args, int line)
    {
        var sb = new StringBuilder();
        int next = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '{' && i + 1 < s.Length && s[i + 1] == '}')
            {
                if (next >= args.Count) throw new JinjaException("format(): not enough arguments", line);
                sb.Append(Py.Str(args[next++]));
                i++;
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    /// <summary>Applies filter <paramref name="name"/>.</summary>
    public static object? Filter(string name, object? v, List<object?> args, Dictionary<string, object?> kwargs, int line)
    {
        object? Arg(int i, string key, object? fallback) => args.Count > i ? args[i] : kwargs.TryGetValue(key, out object? k) ? k : fallback;
        switch (name)
        {
            case "trim":
                return Py.Str(v).Trim(PyWhitespace);
            case "tojson":
                long? indent = Arg(0, "indent", null) switch { null or Undefined => null, long l => l, var o => throw new JinjaException($"tojson: indent must be an integer, not {Py.TypeName(o)}", line) };
                return Py.Json(v, indent is long n ? (int)n : null, Py.Truthy(Arg(1, "sort_keys", false)), line);
            case "length" or "count":
                return v switch
                {
                    string s => (long)s.Length,
                    List<object?> l => (long)l.Count,
                    Dictionary<string, object?> d => (long)d.Count,
                    Undefined => 0L,
                    _ => throw new JinjaException($"{Py.TypeName(v)} has no length", line),
                };
            case "lower":
                return Py.Str(v).ToLowerInvariant();
            case "upper":
                return Py.Str(v).ToUpperInvariant();
            case "title":
                return Title(Py.Str(v));
            case "capitalize":
                string c = Py.Str(v);
                return c.Length == 0 ? c : char.ToUpperInvariant(c[0]) + c[1..].ToLowerInvariant();
            case "default" or "d":
                object? fallback = Arg(0, "default_value", "");
                bool boolean = Py.Truthy(Arg(1, "boolean", false));
                return v is Undefined || (boolean && !Py.Truthy(v)) ? fallback : v;
            case "first":
                return v switch { List<object?> l => l.Count > 0 ? l[0] : Undefined.Instance, string s => s.Length > 0 ? s[..1] : Undefined.Instance, _ => Iterate(v, line).FirstOrDefault(Undefined.Instance) };
            case "last":
                return v switch { List<object?> l => l.Count > 0 ? l[^1] : Undefined.Instance, string s => s.Length > 0 ? s[^1..] : Undefined.Instance, _ => Iterate(v, line).LastOrDefault(Undefined.Instance) };
            case "join":
                string sep = Arg(0, "d", "") as string ?? "";
                object? attribute = Arg(1, "attribute", null);
                return string.Join(sep, Iterate(v, line).Select(x => Py.Str(attribute is string a ? Attribute(x, a, line) : x)));
            case "replace":
                return args.Count >= 2 && args[0] is string from && args[1] is string to
                    ? from.Length == 0 ? Py.Str(v) : Py.Str(v).Replace(from, to, StringComparison.Ordinal)
                    : throw new JinjaException("replace takes two strings", line);
            case "list":
                return Iterate(v, line).ToList();
            case "string":
                return Py.Str(v);
            case "int":
                return v switch
                {
                    long l => l,
                    double d => (long)Math.Truncate(d),
                    bool b => b ? 1L : 0L,
                    string s when long.TryParse(s.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long p) => p,
                    _ => Arg(0, "default", 0L),
                };
            case "float":
                return v switch
                {
                    long l => (double)l,
                    double d => d,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double p) => p,
                    _ => Arg(0, "default", 0.0),
                };
            case "abs":
                return v switch { long l => Math.Abs(l), double d => Math.Abs(d), _ => throw new JinjaException($"abs of {Py.TypeName(v)}", line) };
            case "items":
                return v is Dictionary<string, object?> dict ? dict.Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()
                    : v is Undefined ? new List<object?>() : throw new JinjaException($"items of {Py.TypeName(v)}", line);
            case "dictsort":
                return v is Dictionary<string, object?> ds
                    ? ds.OrderBy(kv => kv.Key, StringComparer.OrdinalIgnoreCase).Select(kv => (object?)new List<object?> { kv.Key, kv.Value }).ToList()
                    : throw new JinjaException($"dictsort of {Py.TypeName(v)}", line);
            case "reverse":
                return v is string rs ? new string(rs.Reverse().ToArray()) : Enumerable.Reverse(Iterate(v, line)).ToList();
            case "unique":
                var seen = new List<object?>();
                foreach (object? x in Iterate(v, line)) if (!seen.Any(y => Py.Eq(x, y))) seen.Add(x);
                return seen;
            case "selectattr" or "rejectattr":
            {
                bool keep = name == "selectattr";
                string attr = args.Count > 0 ? Py.Str(args[0]) : throw new JinjaException($"{name} needs an attribute name", line);
                return Iterate(v, line).Where(x =>
                {
                    object? value = Attribute(x, attr, line);
                    bool pass = args.Count > 1 ? Test(Py.Str(args[1]), value, args.Skip(2).ToList(), line) : Py.Truthy(value);
                    return pass == keep;
                }).ToList();
            }
            case "select" or "reject":
            {
                bool keep = name == "select";
                return Iterate(v, line).Where(x => (args.Count > 0 ? Test(Py.Str(args[0]), x, args.Skip(1).ToList(), line) : Py.Truthy(x)) == keep).ToList();
            }
            case "map":
                if (kwargs.TryGetValue("attribute", out object? mapAttr)) return Iterate(v, line).Select(x => Attribute(x, Py.Str(mapAttr), line)).ToList();
                if (args.Count > 0) return Iterate(v, line).Select(x => Filter(Py.Str(args[0]), x, args.Skip(1).ToList(), [], line)).ToList();
                throw new JinjaException("map needs a filter name or attribute=", line);
            case "indent":
                long width = Arg(0, "width", 4L) is long w ? w : 4;
                bool first = Py.Truthy(Arg(1, "first", false));
                string pad = new(' ', (int)width);
                string[] lines = Py.Str(v).Split('\n');
                return string.Join("\n", lines.Select((l, i) => (i == 0 && !first) || l.Length == 0 ? l : pad + l));
            case "safe":
                return v;
            case "round":
                double r = Py.Number(v);
                long places = Arg(0, "precision", 0L) is long p0 ? p0 : 0;
                return Math.Round(r, (int)places, MidpointRounding.ToEven);
            case "wordcount":
                return (long)Py.Str(v).Split(PyWhitespace, StringSplitOptions.RemoveEmptyEntries).Length;
            default:
                throw new JinjaException($"filter \"{name}\" is not supported", line);
        }
    }

    /// <summary>Applies test <paramref name="name"/> (<c>x is name</c>).</summary>
    public static bool Test(string name, object? v, List<object?> args, int line) => name switch
    {
        "defined" => v is not Undefined,
        "undefined" => v is Undefined,
        "none" => v is null,
        "string" => v is string,
        "number" => v is long or double,
        "integer" => v is long,
        "float" => v is double,
        "boolean" => v is bool,
        "true" => v is true,
        "false" => v is false,
        "mapping" => v is Dictionary<string, object?>,
        "sequence" => v is List<object?> or string or Dictionary<string, object?>,
        "iterable" => v is List<object?> or string or Dictionary<string, object?>,
        "callable" => v is JinjaFunction,
        "odd" => v is long o && o % 2 != 0,
        "even" => v is long e && e % 2 == 0,
        "divisibleby" => v is long n && args.Count > 0 && args[0] is long m && m != 0 && n % m == 0,
        "equalto" or "eq" or "==" or "sameas" => args.Count > 0 && Py.Eq(v, args[0]),
        "ne" or "!=" => args.Count > 0 && !Py.Eq(v, args[0]),
        "lower" => v is string ls && ls == ls.ToLowerInvariant(),
        "upper" => v is string us && us == us.ToUpperInvariant(),
        "in" => args.Count > 0 && Contains(args[0], v, line),
        _ => throw new JinjaException($"test \"{name}\" is not supported", line),
    };

    /// <summary><c>needle in haystack</c>: substring, list item or dict key.</summary>
    public static bool Contains(object? haystack, object? needle, int line) => haystack switch
    {
        string s => needle is string n ? s.Contains(n, StringComparison.Ordinal) : throw new JinjaException($"'in <string>' needs a string, not {Py.TypeName(needle)}", line),
        List<object?> list => list.Any(x => Py.Eq(x, needle)),
        Dictionary<string, object?> d => needle is string k && d.ContainsKey(k),
        Undefined => false,
        _ => throw new JinjaException($"{Py.TypeName(haystack)} does not support 'in'", line),
    };

    /// <summary>A binary operator with Python's semantics.</summary>
    public static object? Binary(string op, object? a, object? b, int line)
    {
        switch (op)
        {
            case "==": return Py.Eq(a, b);
            case "!=": return !Py.Eq(a, b);
            case "<": return Py.Compare(a, b, line) < 0;
            case "<=": return Py.Compare(a, b, line) <= 0;
            case ">": return Py.Compare(a, b, line) > 0;
            case ">=": return Py.Compare(a, b, line) >= 0;
            case "in": return Contains(b, a, line);
            case "not in": return !Contains(b, a, line);
            case "~": return Py.Str(a) + Py.Str(b);
        }
        switch (op, a, b)
        {
            case ("+", string x, string y): return x + y;
            case ("+", List<object?> x, List<object?> y): return x.Concat(y).ToList();
            case ("*", string x, long n): return n <= 0 ? "" : string.Concat(Enumerable.Repeat(x, (int)n));
            case ("*", List<object?> x, long n): return n <= 0 ? new List<object?>() : Enumerable.Repeat(x, (int)n).SelectMany(l => l).ToList();
        }
        if (!Py.IsNumber(a) || !Py.IsNumber(b))
            throw new JinjaException($"unsupported operand types for {op}: {Py.TypeName(a)} and {Py.TypeName(b)}", line);
        bool ints = a is long or bool && b is long or bool;
        if (ints)
        {
            long x = (long)Py.Number(a), y = (long)Py.Number(b);
            switch (op)
            {
                case "+": return x + y;
                case "-": return x - y;
                case "*": return x * y;
                case "//": return y == 0 ? throw new JinjaException("integer division by zero", line) : (long)Math.Floor((double)x / y);
                case "%": return y == 0 ? throw new JinjaException("modulo by zero", line) : ((x % y) + y) % y;
                case "**": return y >= 0 ? (object)(long)Math.Pow(x, y) : Math.Pow(x, y);
            }
        }
        double p = Py.Number(a), q = Py.Number(b);
        return op switch
        {
            "+" => p + q,
            "-" => p - q,
            "*" => p * q,
            "/" => q == 0 ? throw new JinjaException("division by zero", line) : p / q,
            "//" => q == 0 ? throw new JinjaException("division by zero", line) : Math.Floor(p / q),
            "%" => q == 0 ? throw new JinjaException("modulo by zero", line) : p - (q * Math.Floor(p / q)),
            "**" => Math.Pow(p, q),
            _ => throw new JinjaException($"unknown operator {op}", line),
        };
    }

    /// <summary>transformers' <c>strftime_now(format)</c> with the clock fixed at <paramref name="now"/>.</summary>
    public static JinjaFunction StrftimeNow(DateTime now) => new("strftime_now", (args, _, line) =>
        Strftime(now, args.Count > 0 && args[0] is string f ? f : throw new JinjaException("strftime_now() takes a format string", line), line));

    /// <summary>Python's <c>strftime</c> for the directives chat templates use (Llama 3.1/3.2: <c>"%d %b %Y"</c>).</summary>
    public static string Strftime(DateTime t, string format, int line)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            char d = format[++i];
            sb.Append(d switch
            {
                'd' => t.Day.ToString("00", CultureInfo.InvariantCulture),
                'm' => t.Month.ToString("00", CultureInfo.InvariantCulture),
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'y' => (t.Year % 100).ToString("00", CultureInfo.InvariantCulture),
                'b' => CultureInfo.InvariantCulture.DateTimeFormat.GetAbbreviatedMonthName(t.Month),
                'B' => CultureInfo.InvariantCulture.DateTimeFormat.GetMonthName(t.Month),
                'a' => CultureInfo.InvariantCulture.DateTimeFormat.GetAbbreviatedDayName(t.DayOfWeek),
                'A' => CultureInfo.InvariantCulture.DateTimeFormat.GetDayName(t.DayOfWeek),
                'H' => t.Hour.ToString("00", CultureInfo.InvariantCulture),
                'M' => t.Minute.ToString("00", CultureInfo.InvariantCulture),
                'S' => t.Second.ToString("00", CultureInfo.InvariantCulture),
                'j' => t.DayOfYear.ToString("000", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => throw new JinjaException($"strftime directive %{d} is not supported", line),
            });
        }
        return sb.ToString();
    }
}
