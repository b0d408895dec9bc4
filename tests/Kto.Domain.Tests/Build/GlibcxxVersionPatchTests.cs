using System.Buffers.Binary;
using System.Text;
using Kto.Build;
using TorchSharp;
using static TorchSharp.torch;

namespace Kto.Domain.Tests.Build;

/// <summary>The build-time fix that lets TorchSharp's native library load on Debian 12 / Ubuntu 22.04.</summary>
public sealed class GlibcxxVersionPatchTests
{
    /// <summary>
    /// A minimal ELF64 image: header, a string table and a .gnu.version_r section needing the given versions
    /// from libstdc++.so.6 (one Verneed entry, one Vernaux per version).
    /// </summary>
    private static byte[] Elf(params string[] versions)
    {
        var strtab = new List<byte> { 0 };
        int Str(string s) { int at = strtab.Count; strtab.AddRange(Encoding.ASCII.GetBytes(s)); strtab.Add(0); return at; }
        int file = Str("libstdc++.so.6");
        int[] names = versions.Select(Str).ToArray();

        const int shOff = 64, shEnt = 64, shNum = 3;
        int strOff = shOff + shEnt * shNum;
        int verOff = strOff + strtab.Count;
        verOff = (verOff + 7) / 8 * 8;
        int size = verOff + 16 + 16 * versions.Length;
        var b = new byte[size];
        b[0] = 0x7f; b[1] = (byte)'E'; b[2] = (byte)'L'; b[3] = (byte)'F'; b[4] = 2; b[5] = 1; b[6] = 1;
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(0x28), shOff);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0x3A), shEnt);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(0x3C), shNum);
        // section 1: string table
        int s1 = shOff + shEnt;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(s1 + 4), 3); // SHT_STRTAB
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(s1 + 0x18), (ulong)strOff);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(s1 + 0x20), (ulong)strtab.Count);
        strtab.ToArray().CopyTo(b, strOff);
        // section 2: .gnu.version_r, linked to section 1
        int s2 = shOff + 2 * shEnt;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(s2 + 4), 0x6ffffffe);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(s2 + 0x18), (ulong)verOff);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(s2 + 0x28), 1);
        // Verneed
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(verOff), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(verOff + 2), (ushort)versions.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(verOff + 4), (uint)file);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(verOff + 8), 16);
        for (int k = 0; k < versions.Length; k++)
        {
            int aux = verOff + 16 + 16 * k;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(aux + 8), (uint)names[k]);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(aux + 12), k + 1 < versions.Length ? 16u : 0u);
        }
        return b;
    }

    private static ushort FlagsOf(byte[] elf, int index, int versionCount)
    {
        int verOff = elf.Length - 16 - 16 * versionCount;
        return BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan(verOff + 16 + 16 * index + 4));
    }

    [Fact]
    public void MarksOnlyTheTargetVersionWeakAndIsIdempotent()
    {
        byte[] elf = Elf("GLIBCXX_3.4.30", GlibcxxVersionPatch.TargetVersion, "CXXABI_1.3.13");
        byte[] before = (byte[])elf.Clone();
        Assert.Equal(PatchOutcome.Patched, GlibcxxVersionPatch.ApplyInMemory(elf));
        Assert.Equal(0, FlagsOf(elf, 0, 3));
        Assert.Equal(GlibcxxVersionPatch.VerFlagWeak, FlagsOf(elf, 1, 3));
        Assert.Equal(0, FlagsOf(elf, 2, 3));
        Assert.Equal(1, elf.Zip(before).Count(p => p.First != p.Second)); // exactly one byte changed

        byte[] once = (byte[])elf.Clone();
        Assert.Equal(PatchOutcome.AlreadyWeak, GlibcxxVersionPatch.ApplyInMemory(elf));
        Assert.Equal(once, elf);
    }

    [Fact]
    public void LeavesLibrariesWithoutTheNeedAlone()
    {
        byte[] elf = Elf("GLIBCXX_3.4.30");
        byte[] before = (byte[])elf.Clone();
        Assert.Equal(PatchOutcome.NotNeeded, GlibcxxVersionPatch.ApplyInMemory(elf));
        Assert.Equal(before, elf);
    }

    [Fact]
    public void RejectsFilesThatAreNotElf64()
    {
        Assert.Throws<InvalidDataException>(() => GlibcxxVersionPatch.ApplyInMemory(Encoding.ASCII.GetBytes("#!/bin/sh\necho not a library\n".PadRight(80))));
        byte[] elf32 = Elf("x");
        elf32[4] = 1;
        Assert.Throws<InvalidDataException>(() => GlibcxxVersionPatch.ApplyInMemory(elf32));
    }

    [Fact]
    public void PatchesFilesInPlace()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, Elf(GlibcxxVersionPatch.TargetVersion));
            Assert.Equal(PatchOutcome.Patched, GlibcxxVersionPatch.Apply(path));
            Assert.Equal(PatchOutcome.AlreadyWeak, GlibcxxVersionPatch.Apply(path));
            Assert.False(File.Exists(path + ".patching"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TheLibraryNextToTheTestsLoadsAndRunsForwardAndBackward()
    {
        // Whatever the system's libstdc++, the copy the build put beside this test must load: either the system
        // has GLIBCXX_3.4.32 or the build marked the need weak.
        string lib = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        if (OperatingSystem.IsLinux() && File.Exists(lib) && !SystemHasTargetVersion())
            Assert.Equal(PatchOutcome.AlreadyWeak, GlibcxxVersionPatch.ApplyInMemory(File.ReadAllBytes(lib)));

        using var scope = NewDisposeScope();
        var x = tensor(new[] { 1.0, -2.0, 3.0 }, requires_grad: true);
        var y = (x * x).sum();
        y.backward();
        Assert.Equal(14.0, y.item<double>());
        Assert.Equal(new[] { 2.0, -4.0, 6.0 }, x.grad!.data<double>().ToArray());
    }

    private static bool SystemHasTargetVersion()
    {
        string[] candidates = ["/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6"];
        string? found = candidates.FirstOrDefault(File.Exists);
        return found != null && GlibcxxVersionPatch.Defines(found);
    }
}
