namespace Kto.Cluster.Cmd.Reports;

/// <summary>What a training-curves figure says besides its curves.</summary>
/// <param name="Title">Heading across the top of the figure (nothing is drawn when blank).</param>
/// <param name="Notes">Short lines shown under the panels, e.g. <c>greedy accuracy 52.0% → 91.5%</c>.</param>
internal sealed record CurveReport(string Title, IReadOnlyList<string> Notes);
