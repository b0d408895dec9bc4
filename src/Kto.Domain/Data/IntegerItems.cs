using System.Collections;

namespace Kto.Domain.Data;

/// <summary>
/// The items of a list of whole numbers kept unboxed (a Parquet id list), so a large pre-tokenized file does not
/// cost an object per token id; an <see cref="IntegerValue"/> is made only when an item is read one by one.
/// </summary>
internal sealed class IntegerItems(ArraySegment<long> values) : IReadOnlyList<DataValue>
{
    /// <summary>The numbers.</summary>
    public ArraySegment<long> Values { get; } = values;

    /// <inheritdoc />
    public int Count => Values.Count;

    /// <inheritdoc />
    public DataValue this[int index] => new IntegerValue(Values[index]);

    /// <inheritdoc />
    public IEnumerator<DataValue> GetEnumerator()
    {
        foreach (long v in Values) yield return new IntegerValue(v);
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
