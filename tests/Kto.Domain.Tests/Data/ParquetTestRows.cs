using System.Text.Json.Serialization;

namespace Kto.Domain.Tests.Data;

// Row shapes for Parquet test files; column names follow the dataset formats (snake_case).

public sealed class MessageCell
{
    [JsonPropertyName("role")] public string? Role { get; set; }
    [JsonPropertyName("content")] public string? Content { get; set; }

    public static MessageCell Of(string role, string? content) => new() { Role = role, Content = content };
}

public sealed class StandardRow
{
    [JsonPropertyName("prompt")] public string? Prompt { get; set; }
    [JsonPropertyName("completion")] public string? Completion { get; set; }
    [JsonPropertyName("label")] public bool? Label { get; set; }
    [JsonPropertyName("source")] public string? Source { get; set; }
}

public sealed class ConversationalRow
{
    [JsonPropertyName("prompt")] public List<MessageCell>? Prompt { get; set; }
    [JsonPropertyName("completion")] public List<MessageCell>? Completion { get; set; }
    [JsonPropertyName("label")] public bool Label { get; set; }
}

public sealed class PairedRow
{
    [JsonPropertyName("prompt")] public string? Prompt { get; set; }
    [JsonPropertyName("chosen")] public string? Chosen { get; set; }
    [JsonPropertyName("rejected")] public string? Rejected { get; set; }
}

public sealed class PairedConversationalRow
{
    [JsonPropertyName("prompt")] public List<MessageCell>? Prompt { get; set; }
    [JsonPropertyName("chosen")] public List<MessageCell>? Chosen { get; set; }
    [JsonPropertyName("rejected")] public List<MessageCell>? Rejected { get; set; }
}

/// <summary>Token ids as int64, as Hugging Face datasets writes Python ints.</summary>
public sealed class TokenizedRow
{
    [JsonPropertyName("prompt_ids")] public List<long>? PromptIds { get; set; }
    [JsonPropertyName("completion_ids")] public List<long>? CompletionIds { get; set; }
    [JsonPropertyName("label")] public bool Label { get; set; }
}

/// <summary>Token ids as int32.</summary>
public sealed class TokenizedInt32Row
{
    [JsonPropertyName("prompt_ids")] public List<int>? PromptIds { get; set; }
    [JsonPropertyName("completion_ids")] public List<int>? CompletionIds { get; set; }
    [JsonPropertyName("label")] public bool Label { get; set; }
}

public sealed class StringLabelRow
{
    [JsonPropertyName("prompt")] public string? Prompt { get; set; }
    [JsonPropertyName("completion")] public string? Completion { get; set; }
    [JsonPropertyName("label")] public string? Label { get; set; }
}

public sealed class NumericPromptRow
{
    [JsonPropertyName("prompt")] public int Prompt { get; set; }
    [JsonPropertyName("completion")] public string? Completion { get; set; }
    [JsonPropertyName("label")] public bool Label { get; set; }
}

public sealed class NoLabelRow
{
    [JsonPropertyName("prompt")] public string? Prompt { get; set; }
    [JsonPropertyName("completion")] public string? Completion { get; set; }
}

public sealed class NullableIdsRow
{
    [JsonPropertyName("prompt_ids")] public List<long>? PromptIds { get; set; }
    [JsonPropertyName("completion_ids")] public List<long?>? CompletionIds { get; set; }
    [JsonPropertyName("label")] public bool Label { get; set; }
}
