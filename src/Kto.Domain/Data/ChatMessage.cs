namespace Kto.Domain.Data;

/// <summary>One message of a conversational example.</summary>
/// <param name="Role">Who speaks, such as "system", "user" or "assistant".</param>
/// <param name="Content">What is said.</param>
public sealed record ChatMessage(string Role, string Content);
