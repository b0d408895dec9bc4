using Kto.Domain.Cluster;

namespace Kto.Domain.Tests.Cluster;

/// <summary>All-reduce among threads: every member deposits its buffer, rank 0 sums in rank order, all copy.</summary>
internal sealed class InMemoryGroup(int size)
{
    private readonly Barrier _barrier = new(size);
    private readonly Array?[] _slots = new Array?[size];
    private Array? _sum;

    public IAllReduce Member(int rank) => new GroupMember(this, rank, size);

    private void Reduce<T>(int rank, T[] data, Func<T, T, T> add)
    {
        _slots[rank] = data;
        _barrier.SignalAndWait();
        if (rank == 0)
        {
            var sum = (T[])((T[])_slots[0]!).Clone();
            for (int r = 1; r < size; r++)
            {
                var other = (T[])_slots[r]!;
                for (int i = 0; i < sum.Length; i++) sum[i] = add(sum[i], other[i]);
            }
            _sum = sum;
        }
        _barrier.SignalAndWait();
        Array.Copy(_sum!, data, data.Length);
        _barrier.SignalAndWait();
    }

    private sealed class GroupMember(InMemoryGroup group, int rank, int size) : IAllReduce
    {
        public int Rank => rank;
        public int Size => size;
        public void SumInPlace(float[] data) => group.Reduce(rank, data, (a, b) => a + b);
        public void SumInPlace(double[] data) => group.Reduce(rank, data, (a, b) => a + b);
    }
}
