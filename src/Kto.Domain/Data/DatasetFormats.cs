namespace Kto.Domain.Data;

/// <summary>Names of the dataset formats (TRL's KTO formats), as reported in <see cref="LoadedDataset.Format"/>.</summary>
public static class DatasetFormats
{
    /// <summary>Rows of prompt (string), completion (string) and label (boolean).</summary>
    public const string Standard = "standard";

    /// <summary>Rows of prompt and completion as lists of {role, content} messages, and label (boolean).</summary>
    public const string Conversational = "conversational";

    /// <summary>Rows of prompt, chosen and rejected (strings or message lists), each unpaired into two examples.</summary>
    public const string Paired = "paired";

    /// <summary>Rows of prompt_ids and completion_ids (lists of token ids) and label (boolean).</summary>
    public const string Tokenized = "tokenized";
}
