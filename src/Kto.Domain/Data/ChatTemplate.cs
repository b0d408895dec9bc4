using System.Text;

namespace Kto.Domain.Data;

/// <summary>
/// Renders conversational examples to text with one fixed, tokenizer-agnostic template: a transcript in which every
/// message is <c>role: content</c> and messages are separated by a newline.
/// </summary>
/// <remarks>
/// <para>The prompt is every prompt message as <c>"{role}: {content}\n"</c> followed by the generation cue
/// <c>"assistant: "</c>. The completion starts with the content of its first message (which must be the
/// assistant's, the cue already names it), and every later message adds <c>"\n{role}: {content}"</c>.</para>
/// <para>So prompt + completion reads as one transcript, for example <c>"user: Hi\nassistant: Hello"</c>. The
/// loader appends EOS to the completion's tokens; the template adds no special tokens.</para>
/// </remarks>
public static class ChatTemplate
{
    /// <summary>Between a message's role and its content.</summary>
    public const string RoleSeparator = ": ";

    /// <summary>Between two messages.</summary>
    public const string MessageSeparator = "\n";

    /// <summary>The role whose turn the prompt cues and whose message starts every completion.</summary>
    public const string AssistantRole = "assistant";

    /// <summary>Ends every rendered prompt: the assistant's role and the separator, so the model goes on with the reply.</summary>
    public const string GenerationCue = AssistantRole + RoleSeparator;

    /// <summary>The prompt text of <paramref name="messages"/> (an empty list renders as the generation cue alone).</summary>
    public static string RenderPrompt(IReadOnlyList<ChatMessage> messages)
    {
        var text = new StringBuilder();
        foreach (ChatMessage m in messages)
            text.Append(m.Role).Append(RoleSeparator).Append(m.Content).Append(MessageSeparator);
        return text.Append(GenerationCue).ToString();
    }

    /// <summary>The completion text of <paramref name="messages"/> (an empty list renders as the empty string).</summary>
    /// <exception cref="ArgumentException">The first message is not the assistant's.</exception>
    public static string RenderCompletion(IReadOnlyList<ChatMessage> messages)
    {
        if (messages.Count == 0) return "";
        if (messages[0].Role != AssistantRole)
            throw new ArgumentException($"a completion must start with an \"{AssistantRole}\" message, not \"{messages[0].Role}\"", nameof(messages));
        var text = new StringBuilder(messages[0].Content);
        for (int i = 1; i < messages.Count; i++)
            text.Append(MessageSeparator).Append(messages[i].Role).Append(RoleSeparator).Append(messages[i].Content);
        return text.ToString();
    }
}
