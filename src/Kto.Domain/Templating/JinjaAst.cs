using System.Text;

namespace Kto.Domain.Templating;

/// <summary>Variables visible while rendering: a for loop or macro call opens a child scope, so what it sets stays inside (hence <c>namespace</c>).</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

    public object? Lookup(string name)
    {
        for (Scope? s = this; s is not null; s = s.Parent)
            if (s._vars.TryGetValue(name, out object? v)) return v;
        return Undefined.Instance;
    }

    public void Set(string name, object? value) => _vars[name] = value;

    public Scope? Parent { get; } = parent;
}

/// <summary>How a statement list ended: normally, or by <c>{% break %}</c> / <c>{% continue %}</c>.</summary>
internal enum Flow
{
    Normal,
    Break,
    Continue,
}

/// <summary>A statement: renders into the output.</summary>
internal abstract record Stmt(int Line)
{
    public abstract Flow Render(StringBuilder output, Scope scope);

    public static Flow RenderAll(IReadOnlyList<Stmt> body, StringBuilder output, Scope scope)
    {
        foreach (Stmt s in body)
        {
            Flow f = s.Render(output, scope);
            if (f != Flow.Normal) return f;
        }
        return Flow.Normal;
    }
}

internal sealed record TextStmt(string Text, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope)
    {
        output.Append(Text);
        return Flow.Normal;
    }
}

internal sealed record OutputStmt(Expr Value, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope)
    {
        output.Append(Py.Str(Value.Eval(scope)));
        return Flow.Normal;
    }
}

internal sealed record IfStmt(IReadOnlyList<(Expr Condition, IReadOnlyList<Stmt> Body)> Branches, IReadOnlyList<Stmt> Else, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope)
    {
        foreach (var (condition, body) in Branches)
            if (Py.Truthy(condition.Eval(scope))) return RenderAll(body, output, scope);
        return RenderAll(Else, output, scope);
    }
}

internal sealed record ForStmt(IReadOnlyList<string> Targets, Expr Iterable, Expr? Filter, IReadOnlyList<Stmt> Body, IReadOnlyList<Stmt> Else, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope)
    {
        object? source = Iterable.Eval(scope);
        List<object?> items = Builtins.Iterate(source, Line);
        if (Filter is not null)
            items = [.. items.Where(item =>
            {
                var test = new Scope(scope);
                Bind(test, item);
                return Py.Truthy(Filter.Eval(test));
            })];
        if (items.Count == 0) return RenderAll(Else, output, scope);
        for (int i = 0; i < items.Count; i++)
        {
            var inner = new Scope(scope);
            Bind(inner, items[i]);
            inner.Set("loop", new LoopInfo(items, i));
            if (RenderAll(Body, output, inner) == Flow.Break) break;
        }
        return Flow.Normal;
    }

    private void Bind(Scope scope, object? item)
    {
        if (Targets.Count == 1)
        {
            scope.Set(Targets[0], item);
            return;
        }
        List<object?> parts = item as List<object?> ?? throw new JinjaException($"cannot unpack {Py.TypeName(item)} into {Targets.Count} names", Line);
        if (parts.Count != Targets.Count) throw new JinjaException($"cannot unpack {parts.Count} values into {Targets.Count} names", Line);
        for (int i = 0; i < parts.Count; i++) scope.Set(Targets[i], parts[i]);
    }
}

/// <summary><c>{% set name = … %}</c>, <c>{% set a, b = … %}</c> or <c>{% set ns.attr = … %}</c>.</summary>
internal sealed record SetStmt(IReadOnlyList<string> Names, Expr? Namespace, Expr Value, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope)
    {
        object? value = Value.Eval(scope);
        if (Namespace is not null)
        {
            if (Namespace.Eval(scope) is not Namespace ns) throw new JinjaException($"cannot set attribute \"{Names[0]}\" on a value that is not a namespace", Line);
            ns.Attributes[Names[0]] = value;
        }
        else if (Names.Count == 1) scope.Set(Names[0], value);
        else
        {
            List<object?> parts = value as List<object?> ?? throw new JinjaException($"cannot unpack {Py.TypeName(value)} into {Names.Count} names", Line);
            if (parts.Count != Names.Count) throw new JinjaException($"cannot unpack {parts.Count} values into {Names.Count} names", Line);
            for (int i = 0; i < Names.Count; i++) scope.Set(Names[i], parts[i]);
        }
        return Flow.Normal;
    }
}

/// <summary><c>{% set name %}…{% endset %}</c>: the rendered body as a string.</summary>
internal sealed record SetBlockStmt(string Name, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope)
    {
        var captured = new StringBuilder();
        RenderAll(Body, captured, scope);
        scope.Set(Name, captured.ToString());
        return Flow.Normal;
    }
}

internal sealed record MacroStmt(string Name, IReadOnlyList<(string Name, Expr? Default)> Parameters, IReadOnlyList<Stmt> Body, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope)
    {
        scope.Set(Name, new JinjaFunction(Name, (args, kwargs, line) =>
        {
            var inner = new Scope(scope);
            if (args.Count > Parameters.Count) throw new JinjaException($"macro {Name} takes {Parameters.Count} arguments, got {args.Count}", line);
            for (int i = 0; i < Parameters.Count; i++)
            {
                var (name, fallback) = Parameters[i];
                object? v = i < args.Count ? args[i] : kwargs.TryGetValue(name, out object? k) ? k : fallback is null ? Undefined.Instance : fallback.Eval(scope);
                inner.Set(name, v);
            }
            var result = new StringBuilder();
            RenderAll(Body, result, inner);
            return result.ToString();
        }));
        return Flow.Normal;
    }
}

internal sealed record LoopControlStmt(Flow Kind, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope) => Kind;
}

/// <summary>A block rendered as is: <c>{% generation %}</c> (transformers' assistant-mask marker).</summary>
internal sealed record BlockStmt(IReadOnlyList<Stmt> Body, int Line) : Stmt(Line)
{
    public override Flow Render(StringBuilder output, Scope scope) => RenderAll(Body, output, scope);
}

/// <summary>An expression.</summary>
internal abstract record Expr(int Line)
{
    public abstract object? Eval(Scope scope);
}

internal sealed record LiteralExpr(object? Value, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Value;
}

internal sealed record NameExpr(string Name, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope)
    {
        object? v = scope.Lookup(Name);
        return v is Undefined && Builtins.Globals.TryGetValue(Name, out JinjaFunction? f) ? f : v;
    }
}

internal sealed record ListExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Items.Select(i => i.Eval(scope)).ToList();
}

internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Items, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope)
    {
        var d = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (k, v) in Items)
            d[k.Eval(scope) as string ?? throw new JinjaException("dict keys must be strings", Line)] = v.Eval(scope);
        return d;
    }
}

internal sealed record AttrExpr(Expr Target, string Name, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Builtins.Attribute(Target.Eval(scope), Name, Line);
}

internal sealed record IndexExpr(Expr Target, Expr Index, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Builtins.Item(Target.Eval(scope), Index.Eval(scope), Line);
}

internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) =>
        Builtins.Slice(Target.Eval(scope), Start?.Eval(scope), Stop?.Eval(scope), Step?.Eval(scope), Line);
}

internal sealed record CallExpr(Expr Callee, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope)
    {
        object? callee = Callee.Eval(scope);
        if (callee is not JinjaFunction f)
            throw new JinjaException($"{(Callee is NameExpr n ? n.Name : Callee is AttrExpr a ? a.Name : "value")} is not callable ({Py.TypeName(callee)})", Line);
        return f.Invoke([.. Args.Select(a => a.Eval(scope))], Kwargs.ToDictionary(k => k.Name, k => k.Value.Eval(scope), StringComparer.Ordinal), Line);
    }
}

internal sealed record FilterExpr(Expr Value, string Name, IReadOnlyList<Expr> Args, IReadOnlyList<(string Name, Expr Value)> Kwargs, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Builtins.Filter(Name, Value.Eval(scope), [.. Args.Select(a => a.Eval(scope))],
        Kwargs.ToDictionary(k => k.Name, k => k.Value.Eval(scope), StringComparer.Ordinal), Line);
}

internal sealed record TestExpr(Expr Value, string Name, IReadOnlyList<Expr> Args, bool Negated, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Builtins.Test(Name, Value.Eval(scope), [.. Args.Select(a => a.Eval(scope))], Line) != Negated;
}

internal sealed record NotExpr(Expr Value, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => !Py.Truthy(Value.Eval(scope));
}

internal sealed record NegExpr(Expr Value, bool Minus, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Value.Eval(scope) switch
    {
        long l => (object)(Minus ? -l : l),
        double d => Minus ? -d : d,
        bool b => Minus ? -(b ? 1L : 0L) : (b ? 1L : 0L),
        var other => throw new JinjaException($"bad operand for unary {(Minus ? "-" : "+")}: {Py.TypeName(other)}", Line),
    };
}

internal sealed record AndExpr(Expr Left, Expr Right, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope)
    {
        object? l = Left.Eval(scope);
        return Py.Truthy(l) ? Right.Eval(scope) : l;
    }
}

internal sealed record OrExpr(Expr Left, Expr Right, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope)
    {
        object? l = Left.Eval(scope);
        return Py.Truthy(l) ? l : Right.Eval(scope);
    }
}

internal sealed record CondExpr(Expr Then, Expr Condition, Expr? Else, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Py.Truthy(Condition.Eval(scope)) ? Then.Eval(scope) : Else?.Eval(scope) ?? Undefined.Instance;
}

internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line) : Expr(Line)
{
    public override object? Eval(Scope scope) => Builtins.Binary(Op, Left.Eval(scope), Right.Eval(scope), Line);
}
