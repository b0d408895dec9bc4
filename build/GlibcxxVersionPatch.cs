// Makes libLibTorchSharp.so load on systems whose libstdc++ predates GCC 13 (Debian 12, Ubuntu 22.04).
//
// TorchSharp 0.107's libLibTorchSharp.so records a need for the symbol version GLIBCXX_3.4.32. The only
// symbol behind it is _ZSt21ios_base_library_initv, a marker GCC 13's <iostream> references but never
// calls. Setting VER_FLG_WEAK on that version's Vernaux entry in .gnu.version_r tells the dynamic loader
// the version is optional, so the library loads against an older libstdc++ and runs normally.
//
// This file is compiled twice: as an MSBuild inline task (build/NativePatch.targets) and into the unit
// tests (with KTO_PATCHER_NO_MSBUILD defined, which leaves out the MSBuild task class).
using System;
using System.IO;
using System.Text;

namespace Kto.Build
{
    /// <summary>What <see cref="GlibcxxVersionPatch.Apply"/> did to a file.</summary>
    public enum PatchOutcome
    {
        /// <summary>The version need was found and marked weak.</summary>
        Patched,
        /// <summary>The version need was already weak; the file was not written.</summary>
        AlreadyWeak,
        /// <summary>The file does not need the version at all; the file was not written.</summary>
        NotNeeded,
    }

    /// <summary>Marks a symbol-version need of an ELF64 little-endian shared object as weak.</summary>
    public static class GlibcxxVersionPatch
    {
        /// <summary>The version GCC 13's libstdc++ introduced and TorchSharp 0.107 asks for.</summary>
        public const string TargetVersion = "GLIBCXX_3.4.32";

        /// <summary>ELF flag on a Vernaux entry: the dependency is optional (elf.h VER_FLG_WEAK).</summary>
        public const ushort VerFlagWeak = 0x2;

        private const uint ShtGnuVerneed = 0x6ffffffe; // elf.h SHT_GNU_verneed
        private const int ElfClass64 = 2;
        private const int ElfDataLsb = 1;

        /// <summary>Marks <paramref name="version"/> weak in the file at <paramref name="path"/>, in place.</summary>
        /// <exception cref="InvalidDataException">The file is not an ELF64 little-endian object with section headers.</exception>
        public static PatchOutcome Apply(string path, string version = TargetVersion)
        {
            byte[] image = File.ReadAllBytes(path);
            PatchOutcome outcome = ApplyInMemory(image, version);
            if (outcome == PatchOutcome.Patched)
            {
                // Write beside, then rename over: a crash never leaves a half-written library.
                string temp = path + ".patching";
                File.WriteAllBytes(temp, image);
                File.Replace(temp, path, null); // rename(2) on Unix: atomic
            }
            return outcome;
        }

        /// <summary>Patches an ELF image held in memory; see <see cref="Apply"/>.</summary>
        public static PatchOutcome ApplyInMemory(byte[] image, string version = TargetVersion)
        {
            if (image.Length < 64 || image[0] != 0x7f || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
                throw new InvalidDataException("not an ELF file");
            if (image[4] != ElfClass64 || image[5] != ElfDataLsb)
                throw new InvalidDataException("only 64-bit little-endian ELF files are supported");

            ulong shOff = ReadU64(image, 0x28);
            int shEntSize = ReadU16(image, 0x3A);
            int shNum = ReadU16(image, 0x3C);
            if (shOff == 0 || shNum == 0)
                throw new InvalidDataException("the ELF file has no section headers");

            for (int i = 0; i < shNum; i++)
            {
                int sh = Checked(shOff + (ulong)(i * shEntSize), 64, image);
                if (ReadU32(image, sh + 4) != ShtGnuVerneed)
                    continue;
                int verneedOff = Checked(ReadU64(image, sh + 0x18), 16, image);
                int linkIndex = (int)ReadU32(image, sh + 0x28);
                int strSh = Checked(shOff + (ulong)(linkIndex * shEntSize), 64, image);
                int strOff = Checked(ReadU64(image, strSh + 0x18), 1, image);
                return PatchVerneedChain(image, verneedOff, strOff, version);
            }
            return PatchOutcome.NotNeeded;
        }

        /// <summary>True when the file (a libstdc++) defines <paramref name="version"/>.</summary>
        public static bool Defines(string libstdcxxPath, string version = TargetVersion)
        {
            byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
            byte[] image = File.ReadAllBytes(libstdcxxPath);
            return IndexOf(image, needle) >= 0;
        }

        private static PatchOutcome PatchVerneedChain(byte[] image, int verneed, int strtab, string version)
        {
            // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32.
            // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32.
            while (true)
            {
                int count = ReadU16(image, verneed + 2);
                int aux = verneed + (int)ReadU32(image, verneed + 8);
                for (int k = 0; k < count; k++)
                {
                    Checked((ulong)aux, 16, image);
                    string name = ReadCString(image, strtab + (int)ReadU32(image, aux + 8));
                    if (name == version)
                    {
                        ushort flags = (ushort)ReadU16(image, aux + 4);
                        if ((flags & VerFlagWeak) != 0)
                            return PatchOutcome.AlreadyWeak;
                        WriteU16(image, aux + 4, (ushort)(flags | VerFlagWeak));
                        return PatchOutcome.Patched;
                    }
                    aux += (int)ReadU32(image, aux + 12);
                }
                uint next = ReadU32(image, verneed + 12);
                if (next == 0)
                    return PatchOutcome.NotNeeded;
                verneed = Checked((ulong)verneed + next, 16, image);
            }
        }

        private static int IndexOf(byte[] haystack, byte[] needle)
        {
            for (int i = 0; i + needle.Length <= haystack.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && haystack[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }

        private static int Checked(ulong offset, int length, byte[] image)
        {
            if (offset + (ulong)length > (ulong)image.Length)
                throw new InvalidDataException($"ELF structure at offset {offset} runs past the end of the file");
            return (int)offset;
        }

        private static string ReadCString(byte[] image, int offset)
        {
            int end = Array.IndexOf(image, (byte)0, offset);
            if (end < 0) throw new InvalidDataException("unterminated string in the ELF string table");
            return Encoding.ASCII.GetString(image, offset, end - offset);
        }

        private static int ReadU16(byte[] b, int o) => b[o] | (b[o + 1] << 8);
        private static uint ReadU32(byte[] b, int o) => (uint)(b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24));
        private static ulong ReadU64(byte[] b, int o) => ReadU32(b, o) | ((ulong)ReadU32(b, o + 4) << 32);
        private static void WriteU16(byte[] b, int o, ushort v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); }
    }

#if !KTO_PATCHER_NO_MSBUILD
    /// <summary>MSBuild task: patches each library when the system libstdc++ lacks the version.</summary>
    public sealed class PatchGlibcxxVersion : Microsoft.Build.Utilities.Task
    {
        /// <summary>The libLibTorchSharp.so copies in the output directory.</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        /// <summary>Where to look for the system libstdc++ (first existing file wins).</summary>
        public string[] LibstdcxxCandidates { get; set; } = Array.Empty<string>();

        public override bool Execute()
        {
            var system = Array.Find(LibstdcxxCandidates, File.Exists);
            if (system != null && GlibcxxVersionPatch.Defines(system))
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low,
                    $"{system} defines {GlibcxxVersionPatch.TargetVersion}; TorchSharp natives left as shipped.");
                return true;
            }
            foreach (var item in Libraries)
            {
                PatchOutcome outcome = GlibcxxVersionPatch.Apply(item.ItemSpec);
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                    $"{item.ItemSpec}: {GlibcxxVersionPatch.TargetVersion} {outcome}");
            }
            return !Log.HasLoggedErrors;
        }
    }
#endif
}
