using System.Globalization;

namespace Kto.Domain.Templating;

/// <summary>
/// A recursive-descent parser of the Jinja subset chat templates use, with Jinja's operator precedence (lowest first):
/// <c>a if c else b</c>, <c>or</c>, <c>and</c>, <c>not</c>, comparisons and <c>in</c>, <c>+ -</c>, <c>~</c>,
/// <c>* / // %</c>, <c>**</c>, unary <c>- +</c>, then primaries with <c>.attr</c>, <c>[index]</c>, <c>[a:b:c]</c>,
/// <c>(call)</c>, <c>| filter</c> and <c>is test</c>.
/// </summary>
internal sealed class JinjaParser
{
    private readonly List<JinjaToken> _tokens;
    private int _pos;

    private JinjaParser(List<JinjaToken> tokens) => _tokens = tokens;

    /// <summary>The statements of <paramref name="source"/>.</summary>
    /// <exception cref="JinjaException">A syntax error, with its line.</exception>
    public static List<Stmt> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        List<Stmt> body = parser.ParseBody([], out string? end);
        if (end is not null) throw new JinjaException($"unexpected {{% {end} %}}", parser.Peek.Line);
        return body;
    }

    private JinjaToken Peek => _tokens[_pos];

    private JinjaToken Next() => _tokens[_pos++];

    private bool IsOp(string op) => Peek.Kind == TokenKind.Operator && Peek.Value == op;

    private bool IsName(string name) => Peek.Kind == TokenKind.Name && Peek.Value == name;

    private JinjaToken Expect(TokenKind kind, string? value = null)
    {
        JinjaToken t = Next();
        if (t.Kind != kind || (value is not null && t.Value != value))
            throw new JinjaException($"expected {(value is null ? kind.ToString().ToLowerInvariant() : $"\"{value}\"")}, found {Describe(t)}", t.Line);
        return t;
    }

    private static string Describe(JinjaToken t) => t.Kind switch
    {
        TokenKind.End => "the end of the template",
        TokenKind.BlockEnd => "\"%}\"",
        TokenKind.VariableEnd => "\"}}\"",
        _ => $"\"{t.Value}\"",
    };

    /// <summary>Statements until a block tag whose keyword is in <paramref name="ends"/> (consumed up to the keyword; returned in <paramref name="end"/>) or the end.</summary>
    private List<Stmt> ParseBody(string[] ends, out string? end)
    {
        var body = new List<Stmt>();
        while (true)
        {
            JinjaToken t = Next();
            switch (t.Kind)
            {
                case TokenKind.End:
                    if (ends.Length > 0) throw new JinjaException($"unexpected end of template: expected {string.Join(" or ", ends.Select(e => $"{{% {e} %}}"))}", t.Line);
                    _pos--;
                    end = null;
                    return body;
                case TokenKind.Text:
                    body.Add(new TextStmt(t.Value, t.Line));
                    break;
                case TokenKind.VariableStart:
                    Expr e = ParseExpression();
                    Expect(TokenKind.VariableEnd);
                    body.Add(new OutputStmt(e, t.Line));
                    break;
                case TokenKind.BlockStart:
                    JinjaToken keyword = Expect(TokenKind.Name);
                    if (ends.Contains(keyword.Value))
                    {
                        end = keyword.Value;
                        return body;
                    }
                    body.Add(ParseStatement(keyword));
                    break;
                default:
                    throw new JinjaException($"unexpected {Describe(t)}", t.Line);
            }
        }
    }

    private Stmt ParseStatement(JinjaToken keyword)
    {
        int line = keyword.Line;
        switch (keyword.Value)
        {
            case "if":
            {
                var branches = new List<(Expr, IReadOnlyList<Stmt>)>();
                Expr condition = ParseExpression();
                Expect(TokenKind.BlockEnd);
                List<Stmt> elseBody = [];
                while (true)
                {
                    List<Stmt> body = ParseBody(["elif", "else", "endif"], out string? end);
                    branches.Add((condition, body));
                    if (end == "elif")
                    {
                        condition = ParseExpression();
                        Expect(TokenKind.BlockEnd);
                        continue;
                    }
                    Expect(TokenKind.BlockEnd);
                    if (end == "else")
                    {
                        elseBody = ParseBody(["endif"], out _);
                        Expect(TokenKind.BlockEnd);
                    }
                    return new IfStmt(branches, elseBody, line);
                }
            }
            case "for":
            {
                var targets = new List<string> { Expect(TokenKind.Name).Value };
                while (IsOp(","))
                {
                    Next();
                    targets.Add(Expect(TokenKind.Name).Value);
                }
                Expect(TokenKind.Name, "in");
                Expr iterable = ParseOr(allowCondExpr: false);
                Expr? filter = null;
                if (IsName("if"))
                {
                    Next();
                    filter = ParseOr(allowCondExpr: false);
                }
                if (IsName("recursive")) throw new JinjaException("recursive loops are not supported", line);
                Expect(TokenKind.BlockEnd);
                List<Stmt> body = ParseBody(["else", "endfor"], out string? end);
                List<Stmt> elseBody = [];
                Expect(TokenKind.BlockEnd);
                if (end == "else")
                {
                    elseBody = ParseBody(["endfor"], out _);
                    Expect(TokenKind.BlockEnd);
                }
                return new ForStmt(targets, iterable, filter, body, elseBody, line);
            }
            case "set":
            {
                string first = Expect(TokenKind.Name).Value;
                if (IsOp("."))
                {
                    Next();
                    string attr = Expect(TokenKind.Name).Value;
                    Expect(TokenKind.Operator, "=");
                    Expr value = ParseExpression();
                    Expect(TokenKind.BlockEnd);
                    return new SetStmt([attr], new NameExpr(first, line), value, line);
                }
                var names = new List<string> { first };
                while (IsOp(","))
                {
                    Next();
                    names.Add(Expect(TokenKind.Name).Value);
                }
                if (Peek.Kind == TokenKind.BlockEnd && names.Count == 1)
                {
                    Next();
                    List<Stmt> captured = ParseBody(["endset"], out _);
                    Expect(TokenKind.BlockEnd);
                    return new SetBlockStmt(first, captured, line);
                }
                Expect(TokenKind.Operator, "=");
                Expr v = ParseExpression();
                Expect(TokenKind.BlockEnd);
                return new SetStmt(names, null, v, line);
            }
            case "macro":
            {
                string name = Expect(TokenKind.Name).Value;
                Expect(TokenKind.Operator, "(");
                var parameters = new List<(string, Expr?)>();
                while (!IsOp(")"))
                {
                    string p = Expect(TokenKind.Name).Value;
                    Expr? fallback = null;
                    if (IsOp("="))
                    {
                        Next();
                        fallback = ParseExpression();
                    }
                    parameters.Add((p, fallback));
                    if (!IsOp(")")) Expect(TokenKind.Operator, ",");
                }
                Next();
                Expect(TokenKind.BlockEnd);
                List<Stmt> body = ParseBody(["endmacro"], out _);
                Expect(TokenKind.BlockEnd);
                return new MacroStmt(name, parameters, body, line);
            }
            case "break" or "continue":
                Expect(TokenKind.BlockEnd);
                return new LoopControlStmt(keyword.Value == "break" ? Flow.Break : Flow.Continue, line);
            case "generation":
            {
                Expect(TokenKind.BlockEnd);
                List<Stmt> body = ParseBody(["endgeneration"], out _);
                Expect(TokenKind.BlockEnd);
                return new BlockStmt(body, line);
            }
            default:
                throw new JinjaException($"statement \"{keyword.Value}\" is not supported", line);
        }
    }

    private Expr ParseExpression() => ParseOr(allowCondExpr: true);

    private Expr ParseOr(bool allowCondExpr)
    {
        Expr left = ParseAnd();
        while (IsName("or"))
        {
            int line = Next().Line;
            left = new OrExpr(left, ParseAnd(), line);
        }
        if (allowCondExpr && IsName("if"))
        {
            int line = Next().Line;
            Expr condition = ParseOr(allowCondExpr: false);
            Expr? otherwise = null;
            if (IsName("else"))
            {
                Next();
                otherwise = ParseOr(allowCondExpr: true);
            }
            return new CondExpr(left, condition, otherwise, line);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        Expr left = ParseNot();
        while (IsName("and"))
        {
            int line = Next().Line;
            left = new AndExpr(left, ParseNot(), line);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (IsName("not"))
        {
            int line = Next().Line;
            return new NotExpr(ParseNot(), line);
        }
        return ParseCompare();
    }

    private static readonly string[] CompareOps = ["==", "!=", "<", "<=", ">", ">="];

    private Expr ParseCompare()
    {
        Expr left = ParseMath1();
        while (true)
        {
            int line = Peek.Line;
            string op;
            if (Peek.Kind == TokenKind.Operator && CompareOps.Contains(Peek.Value)) op = Next().Value;
            else if (IsName("in"))
            {
                Next();
                op = "in";
            }
            else if (IsName("not") && _tokens[_pos + 1].Kind == TokenKind.Name && _tokens[_pos + 1].Value == "in")
            {
                _pos += 2;
                op = "not in";
            }
            else return left;
            left = new BinaryExpr(op, left, ParseMath1(), line);
        }
    }

    private Expr ParseMath1()
    {
        Expr left = ParseConcat();
        while (IsOp("+") || IsOp("-"))
        {
            JinjaToken op = Next();
            left = new BinaryExpr(op.Value, left, ParseConcat(), op.Line);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        Expr left = ParseMath2();
        while (IsOp("~"))
        {
            JinjaToken op = Next();
            left = new BinaryExpr("~", left, ParseMath2(), op.Line);
        }
        return left;
    }

    private Expr ParseMath2()
    {
        Expr left = ParsePow();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))
        {
            JinjaToken op = Next();
            left = new BinaryExpr(op.Value, left, ParsePow(), op.Line);
        }
        return left;
    }

    private Expr ParsePow()
    {
        Expr left = ParseUnary();
        while (IsOp("**"))
        {
            JinjaToken op = Next();
            left = new BinaryExpr("**", left, ParseUnary(), op.Line);
        }
        return left;
    }

    private Expr ParseUnary()
    {
        if (IsOp("-") || IsOp("+"))
        {
            JinjaToken op = Next();
            return ParseFilters(new NegExpr(ParseUnary(), op.Value == "-", op.Line));
        }
        return ParseFilters(ParsePostfix(ParsePrimary()));
    }

    private Expr ParsePrimary()
    {
        JinjaToken t = Next();
        switch (t.Kind)
        {
            case TokenKind.String:
                string s = t.Value;
                while (Peek.Kind == TokenKind.String) s += Next().Value; // adjacent literals concatenate
                return new LiteralExpr(s, t.Line);
            case TokenKind.Integer:
                return new LiteralExpr(long.Parse(t.Value, CultureInfo.InvariantCulture), t.Line);
            case TokenKind.Float:
                return new LiteralExpr(double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line);
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new LiteralExpr(true, t.Line),
                    "false" or "False" => new LiteralExpr(false, t.Line),
                    "none" or "None" => new LiteralExpr(null, t.Line),
                    _ => new NameExpr(t.Value, t.Line),
                };
            case TokenKind.Operator when t.Value == "(":
            {
                if (IsOp(")"))
                {
                    Next();
                    return new ListExpr([], t.Line);
                }
                Expr first = ParseExpression();
                if (IsOp(","))
                {
                    var items = new List<Expr> { first };
                    while (IsOp(","))
                    {
                        Next();
                        if (IsOp(")")) break;
                        items.Add(ParseExpression());
                    }
                    Expect(TokenKind.Operator, ")");
                    return new ListExpr(items, t.Line); // tuples behave as lists here
                }
                Expect(TokenKind.Operator, ")");
                return first;
            }
            case TokenKind.Operator when t.Value == "[":
            {
                var items = new List<Expr>();
                while (!IsOp("]"))
                {
                    items.Add(ParseExpression());
                    if (!IsOp("]")) Expect(TokenKind.Operator, ",");
                }
                Next();
                return new ListExpr(items, t.Line);
            }
            case TokenKind.Operator when t.Value == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!IsOp("}"))
                {
                    Expr key = ParseExpression();
                    Expect(TokenKind.Operator, ":");
                    items.Add((key, ParseExpression()));
                    if (!IsOp("}")) Expect(TokenKind.Operator, ",");
                }
                Next();
                return new DictExpr(items, t.Line);
            }
            default:
                throw new JinjaException($"expected an expression, found {Describe(t)}", t.Line);
        }
    }

    private Expr ParsePostfix(Expr e)
    {
        while (true)
        {
            if (IsOp("."))
            {
                int line = Next().Line;
                JinjaToken name = Next();
                if (name.Kind is not (TokenKind.Name or TokenKind.Integer)) throw new JinjaException($"expected an attribute name after \".\", found {Describe(name)}", name.Line);
                e = name.Kind == TokenKind.Integer ? new IndexExpr(e, new LiteralExpr(long.Parse(name.Value, CultureInfo.InvariantCulture), line), line) : new AttrExpr(e, name.Value, line);
            }
            else if (IsOp("["))
            {
                int line = Next().Line;
                Expr? start = IsOp(":") ? null : ParseExpression();
                if (IsOp(":"))
                {
                    Next();
                    Expr? stop = IsOp(":") || IsOp("]") ? null : ParseExpression();
                    Expr? step = null;
                    if (IsOp(":"))
                    {
                        Next();
                        step = IsOp("]") ? null : ParseExpression();
                    }
                    Expect(TokenKind.Operator, "]");
                    e = new SliceExpr(e, start, stop, step, line);
                }
                else
                {
                    Expect(TokenKind.Operator, "]");
                    e = new IndexExpr(e, start!, line);
                }
            }
            else if (IsOp("("))
            {
                int line = Peek.Line;
                var (args, kwargs) = ParseArguments();
                e = new CallExpr(e, args, kwargs, line);
            }
            else return e;
        }
    }

    private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArguments()
    {
        Expect(TokenKind.Operator, "(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!IsOp(")"))
        {
            if (Peek.Kind == TokenKind.Name && _tokens[_pos + 1].Kind == TokenKind.Operator && _tokens[_pos + 1].Value == "=")
            {
                string name = Next().Value;
                Next();
                kwargs.Add((name, ParseExpression()));
            }
            else args.Add(ParseExpression());
            if (!IsOp(")")) Expect(TokenKind.Operator, ",");
        }
        Next();
        return (args, kwargs);
    }

    private Expr ParseFilters(Expr e)
    {
        while (true)
        {
            if (IsOp("|"))
            {
                int line = Next().Line;
                string name = Expect(TokenKind.Name).Value;
                var (args, kwargs) = IsOp("(") ? ParseArguments() : ([], []);
                e = new FilterExpr(e, name, args, kwargs, line);
            }
            else if (IsName("is"))
            {
                int line = Next().Line;
                bool negated = false;
                if (IsName("not"))
                {
                    Next();
                    negated = true;
                }
                JinjaToken nameToken = Next();
                string name = nameToken.Kind switch
                {
                    TokenKind.Name => nameToken.Value,
                    TokenKind.Operator when nameToken.Value is "==" or "!=" => nameToken.Value,
                    _ => throw new JinjaException($"expected a test name after \"is\", found {Describe(nameToken)}", nameToken.Line),
                };
                var args = new List<Expr>();
                if (IsOp("(")) args = ParseArguments().Args;
                else if (Peek.Kind is TokenKind.String or TokenKind.Integer or TokenKind.Float
                         || (Peek.Kind == TokenKind.Name && !IsName("and") && !IsName("or") && !IsName("else") && !IsName("if") && !IsName("is") && !IsName("in") && !IsName("not")))
                    args.Add(ParsePostfix(ParsePrimary())); // "is divisibleby 3", "is equalto 'x'"
                e = new TestExpr(e, name, args, negated, line);
            }
            else return e;
        }
    }
}
