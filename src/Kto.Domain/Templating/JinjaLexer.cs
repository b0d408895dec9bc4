using System.Globalization;
using System.Text;

namespace Kto.Domain.Templating;

/// <summary>Kinds of <see cref="JinjaToken"/>.</summary>
internal enum TokenKind
{
    /// <summary>Literal template text between tags.</summary>
    Text,
    /// <summary><c>{{</c>.</summary>
    VariableStart,
    /// <summary><c>}}</c>.</summary>
    VariableEnd,
    /// <summary><c>{%</c>.</summary>
    BlockStart,
    /// <summary><c>%}</c>.</summary>
    BlockEnd,
    /// <summary>A name (identifiers and keywords).</summary>
    Name,
    /// <summary>A string literal (value unescaped).</summary>
    String,
    /// <summary>An integer literal.</summary>
    Integer,
    /// <summary>A float literal.</summary>
    Float,
    /// <summary>An operator or punctuation.</summary>
    Operator,
    /// <summary>The end of the source.</summary>
    End,
}

/// <summary>One lexical token, with the 1-based line it starts on.</summary>
internal sealed record JinjaToken(TokenKind Kind, string Value, int Line);

/// <summary>
/// Splits template source into tokens as Jinja does with the settings transformers renders chat templates with
/// (<c>trim_blocks=True</c>, <c>lstrip_blocks=True</c>, <c>keep_trailing_newline=False</c>): comments dropped, the
/// first newline after a block tag removed, whitespace before a block tag at the start of a line removed, <c>-</c>
/// markers strip whitespace on their side, and one trailing newline of the source dropped.
/// </summary>
internal static class JinjaLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ".", ",", ":", "|"];

    /// <summary>The tokens of <paramref name="source"/>.</summary>
    /// <exception cref="JinjaException">An unclosed tag, string or comment, or a character that starts no token.</exception>
    public static List<JinjaToken> Tokenize(string source)
    {
        if (source.EndsWith('\n')) source = source[..^(source.EndsWith("\r\n", StringComparison.Ordinal) ? 2 : 1)];
        var tokens = new List<JinjaToken>();
        int pos = 0, line = 1;
        bool stripNextText = false;   // a "-%}", "-}}" or "-#}" before this text
        bool trimNewline = false;     // a block tag just ended (trim_blocks)
        while (pos < source.Length)
        {
            int open = NextTag(source, pos);
            int textEnd = open < 0 ? source.Length : open;
            string text = source[pos..textEnd];
            if (trimNewline && text.StartsWith('\n')) text = text[1..];
            else if (trimNewline && text.StartsWith("\r\n", StringComparison.Ordinal)) text = text[2..];
            if (stripNextText) text = text.TrimStart();
            if (open >= 0)
            {
                char kind = source[open + 1];
                char marker = open + 2 < source.Length ? source[open + 2] : ' ';
                if (marker == '-') text = text.TrimEnd();
                else if (kind is '%' or '#' && marker != '+') text = text[..^Math.Min(text.Length, LineIndent(source, pos, open))];
            }
            if (text.Length > 0) tokens.Add(new JinjaToken(TokenKind.Text, text, line));
            line += Count(source, pos, textEnd);
            if (open < 0) break;

            char tagKind = source[open + 1];
            int inner = open + 2 + (open + 2 < source.Length && source[open + 2] is '-' or '+' ? 1 : 0);
            if (tagKind == '#')
            {
                int close = source.IndexOf("#}", inner, StringComparison.Ordinal);
                if (close < 0) throw new JinjaException("comment not closed: expected \"#}\"", line);
                stripNextText = source[close - 1] == '-' && close - 1 >= inner;
                trimNewline = true;
                line += Count(source, open, close + 2);
                pos = close + 2;
                continue;
            }
            string end = tagKind == '{' ? "}}" : "%}";
            tokens.Add(new JinjaToken(tagKind == '{' ? TokenKind.VariableStart : TokenKind.BlockStart, tagKind == '{' ? "{{" : "{%", line));
            pos = LexTag(source, inner, end, tokens, ref line, out stripNextText);
            tokens.Add(new JinjaToken(tagKind == '{' ? TokenKind.VariableEnd : TokenKind.BlockEnd, end, line));
            trimNewline = tagKind == '%';
        }
        tokens.Add(new JinjaToken(TokenKind.End, "", line));
        return tokens;
    }

    /// <summary>Where the next <c>{{</c>, <c>{%</c> or <c>{#</c> starts at or after <paramref name="from"/>, or −1.</summary>
    private static int NextTag(string s, int from)
    {
        for (int i = s.IndexOf('{', from); i >= 0 && i + 1 < s.Length; i = s.IndexOf('{', i + 1))
            if (s[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>
    /// lstrip_blocks: the number of spaces and tabs before the tag at <paramref name="tag"/> when only they stand between
    /// it and the start of its line (0 otherwise, or when a previous tag ends on the same line).
    /// </summary>
    private static int LineIndent(string source, int textStart, int tag)
    {
        int i = tag - 1;
        while (i >= 0 && source[i] is ' ' or '\t') i--;
        return i < 0 || (i >= textStart && source[i] == '\n') ? tag - 1 - i : 0;
    }

    private static int Count(string s, int from, int to)
    {
        int n = 0;
        for (int i = from; i < to && i < s.Length; i++) if (s[i] == '\n') n++;
        return n;
    }

    /// <summary>Tokens inside a tag up to <paramref name="end"/>; returns the position after it.</summary>
    private static int LexTag(string s, int pos, string end, List<JinjaToken> tokens, ref int line, out bool stripAfter)
    {
        while (true)
        {
            while (pos < s.Length && char.IsWhiteSpace(s[pos]))
            {
                if (s[pos] == '\n') line++;
                pos++;
            }
            if (pos >= s.Length) throw new JinjaException($"tag not closed: expected \"{end}\"", line);
            if (s[pos] is '-' or '+' && string.CompareOrdinal(s, pos + 1, end, 0, 2) == 0)
            {
                stripAfter = s[pos] == '-';
                return pos + 3;
            }
            if (string.CompareOrdinal(s, pos, end, 0, 2) == 0)
            {
                stripAfter = false;
                return pos + 2;
            }
            char c = s[pos];
            if (c is '\'' or '"')
            {
                pos = LexString(s, pos, tokens, ref line);
                continue;
            }
            if (char.IsAsciiDigit(c))
            {
                int start = pos;
                while (pos < s.Length && (char.IsAsciiDigit(s[pos]) || s[pos] == '_')) pos++;
                bool isFloat = pos + 1 < s.Length && s[pos] == '.' && char.IsAsciiDigit(s[pos + 1]);
                if (isFloat)
                {
                    pos++;
                    while (pos < s.Length && char.IsAsciiDigit(s[pos])) pos++;
                }
                if (pos < s.Length && s[pos] is 'e' or 'E')
                {
                    int save = pos++;
                    if (pos < s.Length && s[pos] is '+' or '-') pos++;
                    if (pos < s.Length && char.IsAsciiDigit(s[pos]))
                    {
                        while (pos < s.Length && char.IsAsciiDigit(s[pos])) pos++;
                        isFloat = true;
                    }
                    else pos = save;
                }
                tokens.Add(new JinjaToken(isFloat ? TokenKind.Float : TokenKind.Integer, s[start..pos].Replace("_", "", StringComparison.Ordinal), line));
                continue;
            }
            if (char.IsLetter(c) || c == '_')
            {
                int start = pos;
                while (pos < s.Length && (char.IsLetterOrDigit(s[pos]) || s[pos] == '_')) pos++;
                tokens.Add(new JinjaToken(TokenKind.Name, s[start..pos], line));
                continue;
            }
            string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(s, pos, o, 0, o.Length) == 0);
            if (op is null) throw new JinjaException($"unexpected character '{c}' inside a tag", line);
            tokens.Add(new JinjaToken(TokenKind.Operator, op, line));
            pos += op.Length;
        }
    }

    private static int LexString(string s, int pos, List<JinjaToken> tokens, ref int line)
    {
        char quote = s[pos];
        int startLine = line;
        var value = new StringBuilder();
        pos++;
        while (true)
        {
            if (pos >= s.Length) throw new JinjaException("string literal not closed", startLine);
            char c = s[pos];
            if (c == quote) break;
            if (c == '\n') line++;
            if (c == '\\' && pos + 1 < s.Length)
            {
                char e = s[++pos];
                switch (e)
                {
                    case 'n': value.Append('\n'); break;
                    case 't': value.Append('\t'); break;
                    case 'r': value.Append('\r'); break;
                    case 'b': value.Append('\b'); break;
                    case 'f': value.Append('\f'); break;
                    case '0': value.Append('\0'); break;
                    case '\\': value.Append('\\'); break;
                    case '\'': value.Append('\''); break;
                    case '"': value.Append('"'); break;
                    case '\n': line++; break; // a backslash-newline continues the line
                    case 'u' when pos + 4 < s.Length:
                        value.Append((char)int.Parse(s.AsSpan(pos + 1, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        pos += 4;
                        break;
                    case 'x' when pos + 2 < s.Length:
                        value.Append((char)int.Parse(s.AsSpan(pos + 1, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        pos += 2;
                        break;
                    default: value.Append('\\').Append(e); break; // Python keeps unknown escapes as written
                }
                pos++;
                continue;
            }
            value.Append(c);
            pos++;
        }
        tokens.Add(new JinjaToken(TokenKind.String, value.ToString(), startLine));
        return pos + 1;
    }
}
