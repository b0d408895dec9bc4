using Kto.Domain.Tokenization;

namespace Kto.Domain.Data;

/// <summary>
/// Loads a KTO dataset from a <c>.jsonl</c> or <c>.parquet</c> file in any of TRL's KTO formats (see
/// <see cref="DatasetFormats"/> and docs/data-formats.md), tokenizes and truncates every example.
/// </summary>
public static class KtoDatasetLoader
{
    /// <summary>The JSON Lines extension.</summary>
    public const string JsonlExtension = ".jsonl";

    /// <summary>The Parquet extension.</summary>
    public const string ParquetExtension = ".parquet";

    /// <summary>Reads, checks, tokenizes and truncates the dataset at <paramref name="path"/>.</summary>
    /// <remarks>
    /// The format is detected from the first row's fields and every row must follow it. Examples keep file order; a
    /// paired row gives its chosen (desirable) example and then its rejected one. Examples with no room for a
    /// completion token are dropped and counted in <see cref="LoadedDataset.DroppedNoRoom"/>.
    /// </remarks>
    /// <exception cref="DataException">The file is missing, unsupported or malformed, a row breaks the format, or no example is left.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A budget in <paramref name="options"/> is out of range.</exception>
    public static LoadedDataset Load(string path, ITextTokenizer tokenizer, DatasetLoadOptions options)
    {
        options.Validate();
        if (!File.Exists(path)) throw DataErrors.File(path, "file not found");
        string extension = Path.GetExtension(path).ToLowerInvariant();
        IEnumerable<SourceRecord> rows = extension switch
        {
            JsonlExtension => JsonlRows.Read(path),
            ParquetExtension => ParquetRows.Read(path, RowParser.KnownFields),
            _ => throw DataErrors.File(path,
                $"unsupported file extension \"{Path.GetExtension(path)}\": expected {JsonlExtension} or {ParquetExtension}"),
        };

        RowParser? parser = null;
        var examples = new List<KtoExample>();
        var pairs = new List<TokenizedPair>(2);
        int parsed = 0, dropped = 0, desirable = 0;
        foreach (SourceRecord row in rows)
        {
            parser ??= RowParser.Detect(row, tokenizer, options.LabelOptional, options.ModelVocabSize, options.ChatTemplate);
            pairs.Clear();
            parser.Parse(row, pairs);
            foreach (TokenizedPair pair in pairs)
            {
                parsed++;
                (int[] Prompt, int[] Completion)? fit = Truncation.Apply(pair.Prompt, pair.Completion, options);
                if (fit is null)
                {
                    dropped++;
                    continue;
                }
                examples.Add(new KtoExample(fit.Value.Prompt, fit.Value.Completion, pair.Label, row.At.Number));
                if (pair.Label) desirable++;
            }
        }

        if (parser is null) throw DataErrors.File(path, "no examples");
        int identical = parser.IdenticalPairs;
        if (examples.Count == 0)
            throw DataErrors.File(path, identical > 0 && parsed == 0
                ? $"all {identical} paired rows dropped: chosen equals rejected"
                : $"all {parsed} examples dropped: no completion token fits {Budget(options)}" + (identical > 0 ? $" ({identical} paired rows dropped too: chosen equals rejected)" : ""));
        int undesirable = examples.Count - desirable;
        var warnings = Warnings(path, options, parsed, dropped, desirable, undesirable);
        if (parser.PrefixMismatches > 0)
            warnings.Insert(0, $"{path}: {parser.PrefixMismatches} completion(s): the prompt's tokens are not the start of the prompt + completion tokens "
                + "(the tokenizer merged across the boundary); cut at the prompt's length, as TRL does");
        if (identical > 0)
            warnings.Insert(0, $"{path}: {identical} paired row(s) dropped: chosen equals rejected (same token ids), so they would train one completion both ways and cancel");
        return new LoadedDataset(path, parser.Format, examples, dropped, desirable, undesirable, warnings, identical);
    }

    private static string Budget(DatasetLoadOptions o) =>
        $"max_length {o.MaxLength} after the prompt is cut to max_prompt_length {o.MaxPromptLength}";

    private static List<string> Warnings(string path, DatasetLoadOptions options, int parsed, int dropped, int desirable, int undesirable)
    {
        var warnings = new List<string>();
        if (dropped > 0)
            warnings.Add($"{path}: {dropped} of {parsed} examples dropped: no completion token fits {Budget(options)}");
        if (!options.LabelOptional && (undesirable == 0 || desirable == 0))
        {
            (string present, string missing, bool label) = undesirable == 0 ? ("desirable", "undesirable", true) : ("undesirable", "desirable", false);
            warnings.Add($"{path}: single-class dataset: all {desirable + undesirable} examples are {present} (label {(label ? "true" : "false")}) " +
                $"and none {missing}. KTO still trains, but the {missing} loss term never fires and the KL baseline and the " +
                $"desirable/undesirable weight ratio have no {missing} examples to balance against, so that balancing is meaningless.");
        }
        return warnings;
    }
}
