namespace Kto.Domain.Data;

/// <summary>A dataset file after loading: its examples in file order plus what loading dropped or noticed.</summary>
/// <param name="Path">The path the dataset was loaded from, as given.</param>
/// <param name="Format">One of <see cref="DatasetFormats"/>: "standard", "conversational", "paired" or "tokenized".</param>
/// <param name="Examples">The examples in file order; paired rows give a desirable then an undesirable example.</param>
/// <param name="DroppedNoRoom">Examples dropped because no completion token fit the token budgets.</param>
/// <param name="DesirableCount">Examples labelled true.</param>
/// <param name="UndesirableCount">Examples labelled false.</param>
/// <param name="Warnings">Things worth telling the user that did not stop loading, such as a single-class dataset.</param>
/// <param name="DroppedIdenticalPairs">Paired rows dropped because chosen equals rejected (each would give two examples).</param>
public sealed record LoadedDataset(
    string Path,
    string Format,
    IReadOnlyList<KtoExample> Examples,
    int DroppedNoRoom,
    int DesirableCount,
    int UndesirableCount,
    IReadOnlyList<string> Warnings,
    int DroppedIdenticalPairs = 0);
