namespace Kto.Domain.Data;

/// <summary>A prompt and completion as token ids, before truncation, with the completion's label.</summary>
internal readonly record struct TokenizedPair(int[] Prompt, int[] Completion, bool Label);
