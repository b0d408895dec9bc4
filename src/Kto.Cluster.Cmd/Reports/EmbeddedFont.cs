using ScottPlot;
using SkiaSharp;

namespace Kto.Cluster.Cmd.Reports;

/// <summary>
/// The DejaVu Sans faces embedded in this assembly (Reports/Fonts, Bitstream Vera licence). Figures use them for all
/// text so that they read the same on every machine, including one with no system font at all: there SkiaSharp's
/// NoDependencies build finds no typeface and ScottPlot would silently draw no text.
/// </summary>
internal static class EmbeddedFont
{
    /// <summary>The name under which ScottPlot finds the embedded faces (distinct from any installed family).</summary>
    public const string FamilyName = "Kto Embedded Sans";

    /// <summary>Resource name of the regular face.</summary>
    private const string RegularResource = "Kto.Cluster.Cmd.Reports.Fonts.DejaVuSans.ttf";

    /// <summary>Resource name of the bold face.</summary>
    private const string BoldResource = "Kto.Cluster.Cmd.Reports.Fonts.DejaVuSans-Bold.ttf";

    private static readonly Lazy<SKData> RegularData = new(() => Load(RegularResource));
    private static readonly Lazy<SKData> BoldData = new(() => Load(BoldResource));
    private static readonly Lazy<bool> Registered = new(Register);

    /// <summary>A new typeface of the regular (or bold) face; the caller owns it.</summary>
    public static SKTypeface Create(bool bold) =>
        SKTypeface.FromData(bold ? BoldData.Value : RegularData.Value)
        ?? throw new InvalidOperationException("the embedded font could not be read");

    /// <summary>
    /// Puts the embedded faces first among ScottPlot's font resolvers and makes them ScottPlot's default font
    /// (process-wide, once; later calls do nothing).
    /// </summary>
    public static void EnsureRegistered() => _ = Registered.Value;

    private static bool Register()
    {
        lock (Fonts.FontResolvers)
        {
            Fonts.FontResolvers.Insert(0, new Resolver());
        }
        Fonts.Default = FamilyName;
        return true;
    }

    private static SKData Load(string resource)
    {
        using Stream stream = typeof(EmbeddedFont).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"font resource {resource} is missing from the assembly");
        return SKData.Create(stream);
    }

    /// <summary>Answers <see cref="FamilyName"/> with the embedded faces and leaves every other name to the next resolver.</summary>
    private sealed class Resolver : IFontResolver
    {
        public SKTypeface? CreateTypeface(string fontName, FontWeight weight, FontSlant slant, FontSpacing spacing) =>
            fontName == FamilyName ? Create(weight >= FontWeight.SemiBold) : null;

        public SKTypeface? CreateTypeface(string fontName, bool bold, bool italic) =>
            fontName == FamilyName ? Create(bold) : null;
    }
}
