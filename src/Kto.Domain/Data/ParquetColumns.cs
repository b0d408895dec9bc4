using System.Numerics;
using Parquet;
using Parquet.Data;
using Parquet.Schema;

namespace Kto.Domain.Data;

/// <summary>
/// Turns one top-level Parquet column of a row group into one <see cref="DataValue"/> per row, from the leaf
/// columns' values and their definition and repetition levels.
/// </summary>
/// <remarks>
/// Handled shapes (what Hugging Face <c>datasets</c> writes through Arrow): a plain column (string, boolean,
/// integer, floating point …), a LIST of plain values, and a LIST of structs of plain values (chat messages).
/// Other shapes (top-level structs, maps, nested lists) become an <see cref="OtherValue"/> naming the shape, so a
/// format that needs that column reports it as the wrong type. Levels: a null list has a definition level below
/// the list's own; an empty list has exactly the list's own level; an entry has more, and within an entry a level
/// below the element's (or the struct field's) maximum marks a null element (or a null field).
/// </remarks>
internal static class ParquetColumns
{
    /// <summary>Marks a null element of a list of structs while its struct fields are assembled.</summary>
    private static readonly OtherValue NullElement = new("null element");

    /// <summary>One value per row of <paramref name="field"/>.</summary>
    public static async Task<DataValue[]> ReadAsync(ParquetRowGroupReader group, Field field, int rowCount)
    {
        switch (field)
        {
            case DataField plain when plain.MaxRepetitionLevel == 0:
                return Scalars(await ReadLeafAsync(group, plain, rowCount).ConfigureAwait(false), rowCount);
            case ListField { Item: DataField item } list when item.MaxRepetitionLevel == 1:
            {
                Leaf leaf = await ReadLeafAsync(group, item, rowCount).ConfigureAwait(false);
                List<DataValue>?[] rows = Lists(leaf, rowCount, list.MaxDefinitionLevel - 1, leaf.MaxDefinition, NullValue.Instance);
                return [.. rows.Select(r => r is null ? (DataValue)NullValue.Instance : new ListValue(r))];
            }
            case ListField { Item: StructField element } list:
            {
                DataField[] children = [.. element.Fields.OfType<DataField>().Where(c => c.MaxRepetitionLevel == 1)];
                if (children.Length == 0) return Fill(rowCount, new OtherValue("list of structs with no plain fields"));
                var assembled = new List<DataValue>?[children.Length][];
                for (int c = 0; c < children.Length; c++)
                {
                    Leaf leaf = await ReadLeafAsync(group, children[c], rowCount).ConfigureAwait(false);
                    assembled[c] = Lists(leaf, rowCount, list.MaxDefinitionLevel - 1, element.MaxDefinitionLevel, NullElement);
                }
                return StructLists(children, assembled, rowCount);
            }
            case ListField:
                return Fill(rowCount, new OtherValue("nested list"));
            case StructField:
                return Fill(rowCount, new OtherValue("struct"));
            case MapField:
                return Fill(rowCount, new OtherValue("map"));
            default:
                return Fill(rowCount, new OtherValue($"{field.SchemaType} column"));
        }
    }

    private static DataValue[] Fill(int count, DataValue value)
    {
        var values = new DataValue[count];
        Array.Fill(values, value);
        return values;
    }

    private static DataValue[] Scalars(Leaf leaf, int rowCount)
    {
        var values = new DataValue[rowCount];
        int next = 0;
        for (int i = 0; i < rowCount; i++)
            values[i] = i < leaf.Definition.Length && leaf.Definition[i] == leaf.MaxDefinition ? leaf.Values[next++] : NullValue.Instance;
        return values;
    }

    /// <summary>Per row: null for a null list, else its entries (a null element given as <paramref name="nullElement"/>).</summary>
    private static List<DataValue>?[] Lists(Leaf leaf, int rowCount, int listDefined, int elementDefined, DataValue nullElement)
    {
        var rows = new List<DataValue>?[rowCount];
        int row = -1;
        int next = 0;
        for (int i = 0; i < leaf.Definition.Length; i++)
        {
            int level = leaf.Definition[i];
            if (leaf.Repetition[i] == 0)
            {
                row++;
                if (row >= rowCount) throw new InvalidDataException($"the column has more than the row group's {rowCount} rows");
                if (level < listDefined) continue;
                rows[row] = [];
                if (level == listDefined) continue;
            }
            if (row < 0) throw new InvalidDataException("the column's first value continues a list");
            rows[row]!.Add(level < elementDefined ? nullElement : level < leaf.MaxDefinition ? NullValue.Instance : leaf.Values[next++]);
        }
        return rows;
    }

    private static DataValue[] StructLists(DataField[] children, List<DataValue>?[][] assembled, int rowCount)
    {
        var values = new DataValue[rowCount];
        for (int r = 0; r < rowCount; r++)
        {
            List<DataValue>? first = assembled[0][r];
            if (first is null)
            {
                values[r] = NullValue.Instance;
                continue;
            }
            var items = new DataValue[first.Count];
            for (int e = 0; e < first.Count; e++)
            {
                if (ReferenceEquals(first[e], NullElement))
                {
                    items[e] = NullValue.Instance;
                    continue;
                }
                var fields = new Dictionary<string, DataValue>(children.Length);
                for (int c = 0; c < children.Length; c++)
                {
                    List<DataValue>? column = assembled[c][r];
                    fields[children[c].Name] = column is not null && e < column.Count && !ReferenceEquals(column[e], NullElement)
                        ? column[e]
                        : NullValue.Instance;
                }
                items[e] = new ObjectValue(fields);
            }
            values[r] = new ListValue(items);
        }
        return values;
    }

    /// <summary>A leaf column: levels per entry, and the defined values in order.</summary>
    private sealed record Leaf(int[] Definition, int[] Repetition, int MaxDefinition, DataValue[] Values);

    private static async Task<Leaf> ReadLeafAsync(ParquetRowGroupReader group, DataField field, int rowCount)
    {
        using RawColumnData raw = await group.ReadRawColumnDataBaseAsync(field).ConfigureAwait(false);
        return ToLeaf(raw, field, group.GetMetadata(field)?.MetaData?.NumValues ?? rowCount);
    }

    private static Leaf ToLeaf(RawColumnData raw, DataField field, long entryCount)
    {
        int maxDefinition = field.MaxDefinitionLevel;
        int[] definition = maxDefinition > 0
            ? raw.DefinitionLevels[..(int)Math.Min(entryCount, raw.DefinitionLevels.Length)].ToArray()
            : new int[entryCount];
        int[] repetition = field.MaxRepetitionLevel > 0
            ? raw.RepetitionLevels[..Math.Min(definition.Length, raw.RepetitionLevels.Length)].ToArray()
            : new int[definition.Length];
        int defined = definition.Count(l => l == maxDefinition);
        return new Leaf(definition, repetition, maxDefinition, Values(raw, field, defined));
    }

    /// <summary>The first <paramref name="count"/> (defined) values of the leaf as <see cref="DataValue"/>s.</summary>
    private static DataValue[] Values(RawColumnData raw, DataField field, int count) => raw switch
    {
        RawColumnData<ReadOnlyMemory<char>> s => Map(s.Values, count, v => new StringValue(v.ToString())),
        RawColumnData<bool> b => Map(b.Values, count, v => new BoolValue(v)),
        RawColumnData<sbyte> n => Map(n.Values, count, v => new IntegerValue(v)),
        RawColumnData<byte> n => Map(n.Values, count, v => new IntegerValue(v)),
        RawColumnData<short> n => Map(n.Values, count, v => new IntegerValue(v)),
        RawColumnData<ushort> n => Map(n.Values, count, v => new IntegerValue(v)),
        RawColumnData<int> n => Map(n.Values, count, v => new IntegerValue(v)),
        RawColumnData<uint> n => Map(n.Values, count, v => new IntegerValue(v)),
        RawColumnData<long> n => Map(n.Values, count, v => new IntegerValue(v)),
        RawColumnData<ulong> n => Map(n.Values, count, v => v <= long.MaxValue ? new IntegerValue((long)v) : new NumberValue(v.ToString())),
        RawColumnData<float> x => Map(x.Values, count, v => new NumberValue(v.ToString("R"))),
        RawColumnData<double> x => Map(x.Values, count, v => new NumberValue(v.ToString("R"))),
        RawColumnData<decimal> x => Map(x.Values, count, v => new NumberValue(v.ToString())),
        RawColumnData<BigInteger> x => Map(x.Values, count, v => new NumberValue(v.ToString())),
        _ => Enumerable.Repeat<DataValue>(new OtherValue(KindOf(field.ClrType)), count).ToArray(),
    };

    private static DataValue[] Map<T>(Span<T> values, int count, Func<T, DataValue> convert)
    {
        var mapped = new DataValue[count];
        for (int i = 0; i < count; i++) mapped[i] = convert(values[i]);
        return mapped;
    }

    private static string KindOf(Type clr) =>
        clr == typeof(byte[]) || clr == typeof(ReadOnlyMemory<byte>) ? "binary value"
        : clr == typeof(DateTime) || clr == typeof(DateTimeOffset) || clr == typeof(DateOnly) ? "date/time value"
        : clr == typeof(TimeSpan) || clr == typeof(TimeOnly) ? "time value"
        : clr == typeof(Guid) ? "UUID value"
        : $"{clr.Name} value";
}
