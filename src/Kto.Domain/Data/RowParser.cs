using Kto.Domain.Tokenization;

namespace Kto.Domain.Data;

/// <summary>
/// Checks each row against the format detected on the first row and turns it into token ids: text is tokenized
/// (conversations rendered with <see cref="ChatTemplate"/> first) with EOS appended to the completion unless it already
/// ends with it; pre-tokenized ids are checked against the vocabulary and used as given. An empty prompt (text or ids)
/// becomes the tokenizer's BOS, so that every completion token is scored. Paired rows whose chosen equals rejected are
/// dropped and counted (<see cref="IdenticalPairs"/>).
/// </summary>
internal sealed class RowParser
{
    /// <summary>Field holding the prompt (text formats).</summary>
    public const string PromptField = "prompt";

    /// <summary>Field holding the completion (standard and conversational formats).</summary>
    public const string CompletionField = "completion";

    /// <summary>Field holding the label (unpaired formats).</summary>
    public const string LabelField = "label";

    /// <summary>Field holding the desirable completion (paired format).</summary>
    public const string ChosenField = "chosen";

    /// <summary>Field holding the undesirable completion (paired format).</summary>
    public const string RejectedField = "rejected";

    /// <summary>Field holding the prompt's token ids (tokenized format).</summary>
    public const string PromptIdsField = "prompt_ids";

    /// <summary>Field holding the completion's token ids (tokenized format).</summary>
    public const string CompletionIdsField = "completion_ids";

    /// <summary>Field of a chat message naming its speaker.</summary>
    public const string RoleField = "role";

    /// <summary>Field of a chat message holding its text.</summary>
    public const string ContentField = "content";

    /// <summary>Every field some format reads; other fields are ignored.</summary>
    public static IReadOnlySet<string> KnownFields { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        PromptField, CompletionField, LabelField, ChosenField, RejectedField, PromptIdsField, CompletionIdsField,
    };

    private const string ExpectedFields =
        "the fields of a KTO format (prompt, completion, label; prompt, chosen, rejected; or prompt_ids, completion_ids, label)";

    private readonly ITextTokenizer _tokenizer;
    private readonly bool _conversational;
    private readonly int _firstRow;
    private readonly string _unit;
    private readonly bool _labelOptional;
    private readonly int _idLimit;
    private readonly string _idLimitName;

    private readonly ModelChatTemplate? _template;

    private RowParser(ITextTokenizer tokenizer, string format, bool conversational, RowRef first, bool labelOptional, int? modelVocabSize, string? chatTemplate)
    {
        _template = conversational ? ModelChatTemplate.For(tokenizer, chatTemplate) : null;
        _idLimit = modelVocabSize ?? tokenizer.VocabSize;
        _idLimitName = modelVocabSize is null ? $"tokenizer \"{tokenizer.Name}\"" : "the model's vocab_size";
        _labelOptional = labelOptional;
        _tokenizer = tokenizer;
        Format = format;
        _conversational = conversational;
        _firstRow = first.Number;
        _unit = first.Unit;
    }

    /// <summary>The detected format, one of <see cref="DatasetFormats"/>.</summary>
    public string Format { get; }

    /// <summary>A parser for the format of <paramref name="first"/>, the file's first row.</summary>
    /// <exception cref="DataException">The row has the fields of no format.</exception>
    /// <exception cref="InvalidDataException">The rows are conversations and the chat template does not parse.</exception>
    public static RowParser Detect(SourceRecord first, ITextTokenizer tokenizer, bool labelOptional = false, int? modelVocabSize = null, string? chatTemplate = null)
    {
        (string? format, bool conversational) = Sniff(first.Fields);
        if (format is not null) return new RowParser(tokenizer, format, conversational, first.At, labelOptional, modelVocabSize, chatTemplate);
        IReadOnlyDictionary<string, DataValue> f = first.Fields;
        string found = f.Count == 0 ? "no fields" : $"only the fields {string.Join(", ", f.Keys.Order(StringComparer.Ordinal))}";
        throw DataErrors.Row(first.At, ExpectedFields, found);
    }

    /// <summary>The format whose fields <paramref name="f"/> has (null if none) and whether its text is conversational.</summary>
    private static (string? Format, bool Conversational) Sniff(IReadOnlyDictionary<string, DataValue> f)
    {
        if (f.ContainsKey(PromptIdsField) || f.ContainsKey(CompletionIdsField)) return (DatasetFormats.Tokenized, false);
        if (f.ContainsKey(ChosenField) || f.ContainsKey(RejectedField)) return (DatasetFormats.Paired, IsList(f, PromptField, ChosenField));
        if (f.ContainsKey(PromptField) || f.ContainsKey(CompletionField) || f.ContainsKey(LabelField))
        {
            bool conversational = IsList(f, PromptField, CompletionField);
            return (conversational ? DatasetFormats.Conversational : DatasetFormats.Standard, conversational);
        }
        return (null, false);
    }

    /// <summary>Whether the first of the fields present (in order) holds a list.</summary>
    private static bool IsList(IReadOnlyDictionary<string, DataValue> fields, string name, string fallback) =>
        (fields.TryGetValue(name, out DataValue? v) ? v : fields.GetValueOrDefault(fallback)) is ListValue;

    /// <summary>Adds the examples of <paramref name="row"/> to <paramref name="sink"/>: one, or two for paired rows (chosen first).</summary>
    /// <exception cref="DataException">The row does not follow the format.</exception>
    public void Parse(SourceRecord row, List<TokenizedPair> sink)
    {
        switch (Format)
        {
            case DatasetFormats.Tokenized:
            {
                int[] prompt = WithBos(Ids(row, PromptIdsField, allowEmpty: true));
                int[] completion = Ids(row, CompletionIdsField, allowEmpty: false);
                sink.Add(new TokenizedPair(prompt, completion, Label(row)));
                break;
            }
            case DatasetFormats.Paired:
            {
                var (prompt, chosen) = Example(row, ChosenField);
                var (_, rejected) = Example(row, RejectedField);
                if (chosen.AsSpan().SequenceEqual(rejected))
                {
                    // Unpaired, it would be one desirable and one undesirable copy of the same completion: their gradients cancel.
                    IdenticalPairs++;
                    break;
                }
                sink.Add(new TokenizedPair(prompt, chosen, true));
                sink.Add(new TokenizedPair(prompt, rejected, false));
                break;
            }
            default:
            {
                var (prompt, completion) = Example(row, CompletionField);
                sink.Add(new TokenizedPair(prompt, completion, Label(row)));
                break;
            }
        }
    }

    /// <summary>The prompt's and the completion's ids of a text row (plain text, or a conversation with our transcript or the model's chat template).</summary>
    private (int[] Prompt, int[] Completion) Example(SourceRecord row, string completionField)
    {
        if (_template is null)
        {
            string promptText = PromptText(row);
            return (PromptIds(promptText), CompletionIds(promptText, CompletionText(row, completionField)));
        }
        // As TRL: prompt = render(prompt, add_generation_prompt=True); completion = render(prompt + completion)[len(prompt):],
        // both tokenized without added special tokens (the template writes them), no EOS appended (the template ends the turn).
        List<ChatMessage> promptMessages = Messages(row, PromptField, Get(row, PromptField, "a list of messages"));
        IReadOnlyList<ChatMessage> completionMessages = CompletionMessages(row, completionField);
        string prompt = Render(row, PromptField, promptMessages, addGenerationPrompt: true);
        string whole = Render(row, completionField, [.. promptMessages, .. completionMessages], addGenerationPrompt: false);
        if (!whole.StartsWith(prompt, StringComparison.Ordinal))
            throw Mismatch(row, completionField, $"a conversation whose rendering by {_template.Source} starts with the prompt's rendering with add_generation_prompt",
                $"one that does not (the prompt renders to {Excerpt(prompt[Math.Max(0, CommonPrefix(prompt, whole) - 20)..])}, the whole continues {Excerpt(whole[Math.Max(0, CommonPrefix(prompt, whole) - 20)..])})");
        int[] promptIds = _tokenizer.Encode(prompt), wholeIds = _tokenizer.Encode(whole);
        if (!wholeIds.AsSpan().StartsWith(promptIds)) PrefixMismatches++;
        int[] completion = wholeIds.Length > promptIds.Length ? wholeIds[promptIds.Length..] : [];
        if (completion.Length == 0) throw Mismatch(row, completionField, "a completion", "one that the chat template renders to no tokens");
        return (WithBos(promptIds), completion);
    }

    private string Render(SourceRecord row, string field, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        try
        {
            return _template!.Render(messages, addGenerationPrompt);
        }
        catch (Templating.JinjaException e)
        {
            throw new DataException($"{row.At}: field \"{field}\": {_template!.Source} failed: {e.Message}", e);
        }
    }

    private static int CommonPrefix(string a, string b)
    {
        int n = 0;
        while (n < a.Length && n < b.Length && a[n] == b[n]) n++;
        return n;
    }

    private static string Excerpt(string s) => System.Text.Json.JsonSerializer.Serialize(s.Length > 60 ? s[..60] + "…" : s);

    /// <summary>Paired rows whose chosen and rejected completions have the same token ids (dropped).</summary>
    public int IdenticalPairs { get; private set; }

    /// <summary>Completions whose prompt's ids are not the start of the prompt + completion ids (the tokenizer merged across the boundary).</summary>
    public int PrefixMismatches { get; private set; }

    /// <summary>
    /// A prompt's ids as TRL tokenizes it (<c>tokenizer(prompt)</c>, special tokens included): the tokenizer's
    /// <see cref="ITextTokenizer.SpecialPrefix"/> (never doubled when the text already starts with it), then the text's ids.
    /// An empty prompt becomes the tokenizer's BOS: a completion's first token then has a position predicting it, and is scored.
    /// </summary>
    private int[] PromptIds(string text)
    {
        int[] ids = _tokenizer.Encode(text);
        IReadOnlyList<int> prefix = _tokenizer.SpecialPrefix;
        if (prefix.Count > 0 && !ids.AsSpan().StartsWith([.. prefix])) ids = [.. prefix, .. ids];
        return WithBos(ids);
    }

    /// <summary>
    /// A completion's ids as TRL takes them: the ids of prompt + completion after those of the prompt (so a tokenizer
    /// that merges or prefixes across the boundary, as SentencePiece-style ones do, gives what the model sees in one
    /// text), then EOS unless they already end with it (by id). When the prompt's ids are not the start of the whole,
    /// the cut is made at the prompt's length anyway (as TRL does) and counted in <see cref="PrefixMismatches"/>.
    /// </summary>
    private int[] CompletionIds(string promptText, string completionText)
    {
        int[] prompt = _tokenizer.Encode(promptText);
        int[] whole = _tokenizer.Encode(promptText + completionText);
        if (!whole.AsSpan().StartsWith(prompt)) PrefixMismatches++;
        int[] ids = whole.Length > prompt.Length ? whole[prompt.Length..] : [];
        return ids.Length > 0 && ids[^1] == _tokenizer.EosTokenId ? ids : [.. ids, _tokenizer.EosTokenId];
    }

    /// <summary>An empty prompt becomes the tokenizer's BOS: a completion's first token then has a position predicting it, and is scored.</summary>
    private int[] WithBos(int[] prompt) => prompt.Length == 0 ? [_tokenizer.BosTokenId] : prompt;

    private string PromptText(SourceRecord row) => _conversational
        ? ChatTemplate.RenderPrompt(Messages(row, PromptField, Get(row, PromptField, "a list of messages")))
        : Text(row, PromptField, allowEmpty: true);

    private string CompletionText(SourceRecord row, string field)
    {
        if (!_conversational) return Text(row, field, allowEmpty: false);
        string text = ChatTemplate.RenderCompletion(CompletionMessages(row, field));
        if (text.Length == 0) throw Mismatch(row, field, "a non-empty completion", "a completion that renders to empty text");
        return text;
    }

    /// <summary>A completion's messages: a non-empty list starting with the assistant's.</summary>
    private List<ChatMessage> CompletionMessages(SourceRecord row, string field)
    {
        DataValue value = Get(row, field, "a non-empty list of messages");
        List<ChatMessage> messages = Messages(row, field, value);
        if (messages.Count == 0) throw Mismatch(row, field, "a non-empty list of messages", value.Describe());
        if (messages[0].Role != ChatTemplate.AssistantRole)
            throw Mismatch(row, $"{field}[0].{RoleField}", $"\"{ChatTemplate.AssistantRole}\" (a completion starts with the assistant's message)", new StringValue(messages[0].Role).Describe());
        return messages;
    }

    private string Text(SourceRecord row, string field, bool allowEmpty)
    {
        string expected = allowEmpty ? "a string" : "a non-empty string";
        DataValue value = Get(row, field, expected);
        if (value is not StringValue s || (!allowEmpty && s.Value.Length == 0)) throw Mismatch(row, field, expected, value.Describe());
        return s.Value;
    }

    private List<ChatMessage> Messages(SourceRecord row, string field, DataValue value)
    {
        const string ExpectedMessage = "a message object with string fields \"role\" and \"content\"";
        if (value is not ListValue list) throw Mismatch(row, field, "a list of messages", value.Describe());
        var messages = new List<ChatMessage>(list.Items.Count);
        for (int i = 0; i < list.Items.Count; i++)
        {
            string at = $"{field}[{i}]";
            if (list.Items[i] is not ObjectValue message) throw Mismatch(row, at, ExpectedMessage, list.Items[i].Describe());
            messages.Add(new ChatMessage(MessagePart(row, at, message, RoleField), MessagePart(row, at, message, ContentField)));
        }
        return messages;
    }

    private string MessagePart(SourceRecord row, string at, ObjectValue message, string part)
    {
        if (!message.Fields.TryGetValue(part, out DataValue? value)) throw Mismatch(row, $"{at}.{part}", "a string", "no such field");
        if (value is not StringValue s) throw Mismatch(row, $"{at}.{part}", "a string", value.Describe());
        return s.Value;
    }

    private bool Label(SourceRecord row)
    {
        const string Expected = "a boolean (true or false)";
        if (_labelOptional && !row.Fields.ContainsKey(LabelField)) return true;
        DataValue value = Get(row, LabelField, Expected);
        return value is BoolValue b ? b.Value : throw Mismatch(row, LabelField, Expected, value.Describe());
    }

    private int[] Ids(SourceRecord row, string field, bool allowEmpty)
    {
        string expected = allowEmpty ? "a list of token ids" : "a non-empty list of token ids";
        DataValue value = Get(row, field, expected);
        if (value is not ListValue list || (!allowEmpty && list.Items.Count == 0)) throw Mismatch(row, field, expected, value.Describe());
        if (list.Items is IntegerItems numbers && InVocabulary(numbers.Values)) return [.. numbers.Values.Select(v => (int)v)];
        var ids = new int[list.Items.Count];
        for (int i = 0; i < ids.Length; i++)
        {
            if (list.Items[i] is not IntegerValue { Value: >= 0 } id || id.Value >= _idLimit)
                throw Mismatch(row, field, $"token ids in [0, {_idLimit}) for {_idLimitName}", $"{list.Items[i].Describe()} at index {i}");
            ids[i] = (int)id.Value;
        }
        return ids;
    }

    private bool InVocabulary(ArraySegment<long> ids)
    {
        foreach (long id in ids)
            if (id < 0 || id >= _idLimit) return false;
        return true;
    }

    private DataValue Get(SourceRecord row, string field, string expected)
    {
        if (row.Fields.TryGetValue(field, out DataValue? value)) return value;
        string? other = Sniff(row.Fields).Format;
        string hint = other is not null && other != Format ? $" (the row has the fields of the {other} format)" : "";
        throw Mismatch(row, field, expected, "no such field" + hint);
    }

    /// <summary>A field error; on rows after the first it also names the format the first row set.</summary>
    private DataException Mismatch(SourceRecord row, string field, string expected, string found)
    {
        if (row.At.Number != _firstRow)
        {
            string format = Format == DatasetFormats.Paired && _conversational ? "conversational paired" : Format;
            expected += $" (the {format} format, as detected on {_unit} {_firstRow})";
        }
        return DataErrors.Field(row.At, field, expected, found);
    }
}
