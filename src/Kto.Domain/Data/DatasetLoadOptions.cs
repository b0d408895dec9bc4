namespace Kto.Domain.Data;

/// <summary>Token budgets applied to every example while loading; see <see cref="Truncation"/>.</summary>
/// <param name="MaxLength">Most tokens of prompt plus completion (≥ 1).</param>
/// <param name="MaxPromptLength">Most prompt tokens kept when an example is too long (≥ 0); the prompt's end is kept.</param>
/// <param name="MaxCompletionLength">When set (≥ 1), the completion is first cut to this many tokens.</param>
/// <param name="LabelOptional">Rows of the standard, conversational and tokenized formats may omit <c>label</c>
/// (it then counts as desirable): the prompt/completion data of supervised fine-tuning. A label that is present must
/// still be a boolean.</param>
/// <param name="ModelVocabSize">The model's <c>vocab_size</c>: ids of tokenized rows must lie below it (a vocabulary may
/// be padded past its tokenizer's ids). Null: the tokenizer's size.</param>
/// <param name="ChatTemplate">A Jinja chat template for conversational rows that overrides the tokenizer's (a run
/// config's <c>chat_template</c>); null: the tokenizer's, else our transcript (<see cref="Data.ChatTemplate"/>).</param>
public sealed record DatasetLoadOptions(int MaxLength, int MaxPromptLength, int? MaxCompletionLength, bool LabelOptional = false, int? ModelVocabSize = null, string? ChatTemplate = null)
{
    /// <summary>Throws when a budget is out of range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A budget is out of range.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxLength, 1, nameof(MaxLength));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxPromptLength, nameof(MaxPromptLength));
        if (MaxCompletionLength is int c) ArgumentOutOfRangeException.ThrowIfLessThan(c, 1, nameof(MaxCompletionLength));
    }
}
