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
                if (leaf.Integers is not null) return IntegerLists(leaf, rowCount, list.MaxDefinitionLevel - 1);
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
                return Fill(rowCount, new OtherValue("repeated field"));
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
            values[i] = i < leaf.Definition.Length && leaf.Definition[i] == leaf.MaxDefinition ? leaf.ValueAt(next++) : NullValue.Instance;
        return values;
    }

    /// <summary>Per row: null for a null list, else its entries (a null element given as <paramref name="nullElement"/>).</summary>
    private static List<DataValue>?[] Lists(Leaf leaf, int rowCount, int listDefined, int elementDefined, DataValue nullElement)
    {
        var rows = new List<DataValue>?[rowCount];
        int row = -1;
        int next = 0;
        bool seemsEmpty = false;
        for (int i = 0; i < leaf.Definition.Length; i++)
        {
            int level = leaf.Definition[i];
            if (leaf.Repetition[i] == 0)
            {
                row++;
                if (row >= rowCount) throw new InvalidDataException($"the column has more than the row group's {rowCount} rows");
                seemsEmpty = false;
                if (level < listDefined) continue;
                rows[row] = [];
                if (level == listDefined)
                {
                    seemsEmpty = true;
                    continue;
                }
            }
            else if (row < 0 || rows[row] is null) throw new InvalidDataException("a list continues without a start");
            else if (seemsEmpty)
            {
                // An "empty" list that goes on held a null first element (Parquet.Net writes one at the list's level).
                rows[row]!.Add(nullElement);
                seemsEmpty = false;
            }
            rows[row]!.Add(level < elementDefined ? nullElement : level < leaf.MaxDefinition ? NullValue.Instance : leaf.ValueAt(next++));
        }
        return rows;
    }

    /// <summary>
    /// Lists of whole numbers: a list with no null element keeps its numbers unboxed (<see cref="IntegerItems"/>);
    /// one with null elements is built item by item.
    /// </summary>
    private static DataValue[] IntegerLists(Leaf leaf, int rowCount, int listDefined)
    {
        long[] numbers = leaf.Integers!;
        int[] definition = leaf.Definition, repetition = leaf.Repetition;
        var values = new DataValue[rowCount];
        Array.Fill(values, NullValue.Instance);
        int row = -1, next = 0;
        for (int i = 0; i < definition.Length;)
        {
            if (repetition[i] != 0) throw new InvalidDataException("a list continues without a start");
            if (++row >= rowCount) throw new InvalidDataException($"the column has more than the row group's {rowCount} rows");
            int end = i + 1;
            while (end < definition.Length && repetition[end] != 0) end++;
            if (definition[i] < listDefined) values[row] = NullValue.Instance;
            else if (definition[i] == listDefined && end == i + 1) values[row] = new ListValue([]);
            else if (definition.AsSpan(i, end - i).ContainsAnyExcept(leaf.MaxDefinition))
            {
                var items = new List<DataValue>(end - i);
                for (int k = i; k < end; k++)
                    items.Add(definition[k] == leaf.MaxDefinition ? new IntegerValue(numbers[next++]) : NullValue.Instance);
                values[row] = new ListValue(items);
            }
            else
            {
                values[row] = new ListValue(new IntegerItems(new ArraySegment<long>(numbers, next, end - i)));
                next += end - i;
            }
            i = end;
        }
        return values;
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

    /// <summary>
    /// A leaf column: levels per entry and the defined values in order, as <see cref="DataValue"/>s or, for a column
    /// of whole numbers, unboxed in <paramref name="Integers"/> (then <paramref name="Values"/> is empty).
    /// </summary>
    private sealed record Leaf(int[] Definition, int[] Repetition, int MaxDefinition, DataValue[] Values, long[]? Integers)
    {
        /// <summary>The <paramref name="index"/>-th defined value.</summary>
        public DataValue ValueAt(int index) => Integers is null ? Values[index] : new IntegerValue(Integers[index]);
    }

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
        long[]? integers = Integers(raw, defined);
        return integers is null
            ? new Leaf(definition, repetition, maxDefinition, Values(raw, field, defined), null)
            : new Leaf(definition, repetition, maxDefinition, [], integers);
    }

    /// <summary>The first <paramref name="count"/> values of an integer leaf (up to 64 bits, signed), else null.</summary>
    private static long[]? Integers(RawColumnData raw, int count) => raw switch
    {
        RawColumnData<sbyte> n => Widen(n.Values, count, v => v),
        RawColumnData<byte> n => Widen(n.Values, count, v => v),
        RawColumnData<short> n => Widen(n.Values, count, v => v),
        RawColumnData<ushort> n => Widen(n.Values, count, v => v),
        RawColumnData<int> n => Widen(n.Values, count, v => v),
        RawColumnData<uint> n => Widen(n.Values, count, v => v),
        RawColumnData<long> n => n.Values[..count].ToArray(),
        _ => null,
    };

    private static long[] Widen<T>(Span<T> values, int count, Func<T, long> widen)
    {
        var wide = new long[count];
        for (int i = 0; i < count; i++) wide[i] = widen(values[i]);
        return wide;
    }

    /// <summary>The first <paramref name="count"/> (defined) values of a leaf that is not of integers (see <see cref="Integers"/>).</summary>
    private static DataValue[] Values(RawColumnData raw, DataField field, int count) => raw switch
    {
        RawColumnData<ReadOnlyMemory<char>> s => Map(s.Values, count, v => new StringValue(v.ToString())),
        RawColumnData<bool> b => Map(b.Values, count, v => new BoolValue(v)),
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
