using System.Text;

namespace Kto.Domain.Templating;

/// <summary>
/// A Jinja template of the subset Hugging Face chat templates use, rendered as transformers renders them (Jinja with
/// <c>trim_blocks</c> and <c>lstrip_blocks</c>, no autoescaping, Python's semantics for values; the globals
/// <c>raise_exception</c> and <c>strftime_now</c>). Statements: <c>if/elif/else</c>, <c>for</c> (with <c>else</c>, an
/// <c>if</c> filter, tuple targets, <c>loop.*</c>, <c>break</c>/<c>continue</c>), <c>set</c> (names, tuples, namespace
/// attributes, blocks), <c>macro</c>, <c>generation</c>. Filters: trim, tojson, length, lower, upper, title,
/// capitalize, default, first, last, join, replace, list, string, int, float, abs, items, dictsort, reverse, unique,
/// select/reject(attr), map, indent, safe, round, wordcount. Tests: defined, undefined, none, string, number, integer,
/// float, boolean, true, false, mapping, sequence, iterable, callable, odd, even, divisibleby, equalto, in. String
/// methods: startswith, endswith, strip, lstrip, rstrip, split, upper, lower, title, capitalize, replace, find, count,
/// join, isdigit, format; dict methods: items, keys, values, get. Anything else is a <see cref="JinjaException"/>
/// naming it and its line.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly List<Stmt> _body;

    private JinjaTemplate(List<Stmt> body) => _body = body;

    /// <summary>Parses <paramref name="source"/>.</summary>
    /// <exception cref="JinjaException">A syntax error or an unsupported statement (line named).</exception>
    public static JinjaTemplate Parse(string source) => new(JinjaParser.Parse(source));

    /// <summary>
    /// Renders with the variables <paramref name="context"/>: strings, booleans, integers (int or long), doubles, null,
    /// lists, string-keyed dictionaries and JsonNode values are understood.
    /// </summary>
    /// <param name="context">The template's variables.</param>
    /// <param name="now">The local time <c>strftime_now</c> formats (default: the clock's); templates such as Llama 3.2's print today's date.</param>
    /// <exception cref="JinjaException">A runtime error or <c>raise_exception</c> (line named).</exception>
    public string Render(IReadOnlyDictionary<string, object?> context, DateTime? now = null)
    {
        var scope = new Scope(null);
        scope.Set("strftime_now", Builtins.StrftimeNow(now ?? DateTime.Now));
        foreach (var (name, value) in context) scope.Set(name, Py.From(value));
        var output = new StringBuilder();
        Stmt.RenderAll(_body, output, scope);
        return output.ToString();
    }
}
