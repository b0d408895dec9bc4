using Kto.Domain.Templating;
using Kto.Domain.Tokenization;

namespace Kto.Domain.Data;

/// <summary>
/// A model's own Jinja chat template (tokenizer_config.json's <c>chat_template</c>, a <c>chat_template.jinja</c> beside
/// it, or a run config's <c>chat_template</c>), rendered as transformers' <c>apply_chat_template</c> renders it: the
/// variables <c>messages</c> (role and content of each), <c>add_generation_prompt</c>, and the tokenizer's special
/// tokens (<c>bos_token</c>, <c>eos_token</c>, <c>pad_token</c>, <c>unk_token</c>).
/// </summary>
public sealed class ModelChatTemplate
{
    private readonly JinjaTemplate _template;
    private readonly IReadOnlyDictionary<string, string?> _specialTokens;

    private ModelChatTemplate(JinjaTemplate template, IReadOnlyDictionary<string, string?> specialTokens)
    {
        _template = template;
        _specialTokens = specialTokens;
    }

    /// <summary>Where the template came from, for messages.</summary>
    public required string Source { get; init; }

    /// <summary>
    /// The template to render conversations with: <paramref name="overrideTemplate"/> (a run config's <c>chat_template</c>)
    /// if given, else the tokenizer's; null when neither has one (conversations then use <see cref="ChatTemplate"/>'s transcript).
    /// </summary>
    /// <exception cref="InvalidDataException">The template does not parse (its line named).</exception>
    public static ModelChatTemplate? For(ITextTokenizer tokenizer, string? overrideTemplate)
    {
        string? source = overrideTemplate ?? tokenizer.ChatTemplate;
        if (source is null) return null;
        string origin = overrideTemplate is null ? $"the chat template of {tokenizer.Name}" : "the run config's chat_template";
        try
        {
            return new ModelChatTemplate(JinjaTemplate.Parse(source), tokenizer.SpecialTokens) { Source = origin };
        }
        catch (JinjaException e)
        {
            throw new InvalidDataException($"{origin}: {e.Message}", e);
        }
    }

    /// <summary>The text of <paramref name="messages"/>; with <paramref name="addGenerationPrompt"/> it ends where the assistant's reply starts.</summary>
    /// <exception cref="JinjaException">The template raised an error for these messages (roles out of order, …) or failed.</exception>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(m => new Dictionary<string, object?>(StringComparer.Ordinal) { ["role"] = m.Role, ["content"] = m.Content }).ToList<object?>(),
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        foreach (var (name, token) in _specialTokens) vars[name] = token;
        return _template.Render(vars);
    }
}
