// Compiled twice: as the MSBuild task that build/TorchSharp.targets runs after copying TorchSharp's native
// library into an output folder, and into TorchSam2.Checkpoints (TORCHSAM2_LIBRARY) so that `torchsam2 info`
// and the tests can report and check what the build did.
#nullable disable
using System;
using System.IO;
using System.Text;
#if !TORCHSAM2_LIBRARY
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
#endif

namespace TorchSam2.Build
{
    /// <summary>
    /// TorchSharp 0.107's libLibTorchSharp.so was linked by GCC 13 and needs GLIBCXX_3.4.32 for exactly one symbol,
    /// std::ios_base_library_init(), which GCC 13's &lt;iostream&gt; references and nothing calls. A GCC 12 runtime
    /// (Debian 12, Ubuntu 22.04) lacks that version and the loader refuses the library. Marking that one version
    /// requirement weak (VER_FLG_WEAK in .gnu.version_r) lets it load; the symbol stays unbound and unused.
    /// </summary>
    public static class ElfVersionNeeds
    {
        public const string Version = "GLIBCXX_3.4.32";
        private const uint ShtGnuVerneed = 0x6ffffffe;
        private const ushort VerFlgWeak = 0x2;

        /// <summary>Whether the file (a libstdc++) defines the version string at all.</summary>
        public static bool Defines(string path, string version)
        {
            byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
            byte[] data = File.ReadAllBytes(path);
            for (int i = 0; i + needle.Length <= data.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && data[i + j] == needle[j]) j++;
                if (j == needle.Length) return true;
            }
            return false;
        }

        /// <summary>The system's libstdc++.so.6, or null when none is at the usual places.</summary>
        public static string SystemLibStdCxx()
        {
            foreach (var dir in new[] { "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib" })
            {
                var p = Path.Combine(dir, "libstdc++.so.6");
                if (File.Exists(p)) return p;
            }
            return null;
        }

        /// <summary>
        /// The flags of the needed-version entry for <paramref name="version"/> in an ELF64 little-endian file:
        /// null when the file needs no such version (or is not such an ELF file).
        /// </summary>
        public static ushort? NeededFlags(byte[] elf, string version)
        {
            int at = Find(elf, version);
            if (at < 0) return null;
            return BitConverter.ToUInt16(elf, at + 4);
        }

        /// <summary>Marks the requirement weak in place; returns false when the file does not need the version.</summary>
        public static bool MarkWeak(byte[] elf, string version)
        {
            int at = Find(elf, version);
            if (at < 0) return false;
            ushort flags = (ushort)(BitConverter.ToUInt16(elf, at + 4) | VerFlgWeak);
            elf[at + 4] = (byte)(flags & 0xff);
            elf[at + 5] = (byte)(flags >> 8);
            return true;
        }

        public static bool IsWeak(ushort flags) => (flags & VerFlgWeak) != 0;

        // Offset of the Elf64_Vernaux entry naming the version, walking every bound with checks (a damaged file
        // gives -1, never an exception past the caller). Plain C# 7.3: MSBuild compiles this file as an inline task.
        private static int Find(byte[] b, string version)
        {
            if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F' || b[4] != 2 || b[5] != 1) return -1;
            long shoff = BitConverter.ToInt64(b, 0x28);
            int shentsize = BitConverter.ToUInt16(b, 0x3a), shnum = BitConverter.ToUInt16(b, 0x3c);
            if (shoff <= 0 || shentsize < 64 || shoff + (long)shnum * shentsize > b.Length) return -1;
            for (int i = 0; i < shnum; i++)
            {
                long sh = shoff + (long)i * shentsize;
                if (BitConverter.ToUInt32(b, (int)sh + 4) != ShtGnuVerneed) continue;
                long off = BitConverter.ToInt64(b, (int)sh + 0x18), size = BitConverter.ToInt64(b, (int)sh + 0x20);
                int link = (int)BitConverter.ToUInt32(b, (int)sh + 0x28), count = (int)BitConverter.ToUInt32(b, (int)sh + 0x2c);
                if (link >= shnum || off < 0 || off + size > b.Length) return -1;
                long strOff = BitConverter.ToInt64(b, (int)(shoff + (long)link * shentsize) + 0x18);
                long strSize = BitConverter.ToInt64(b, (int)(shoff + (long)link * shentsize) + 0x20);
                if (strOff < 0 || strOff + strSize > b.Length) return -1;
                long vn = off;
                for (int n = 0; n < count && vn + 16 <= off + size; n++)
                {
                    int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                    long aux = vn + BitConverter.ToUInt32(b, (int)vn + 8);
                    for (int a = 0; a < cnt && aux + 16 <= off + size; a++)
                    {
                        long name = strOff + BitConverter.ToUInt32(b, (int)aux + 8);
                        if (name < strOff + strSize && NameEquals(b, name, version)) return (int)aux;
                        uint next = BitConverter.ToUInt32(b, (int)aux + 12);
                        if (next == 0) break;
                        aux += next;
                    }
                    uint vnNext = BitConverter.ToUInt32(b, (int)vn + 12);
                    if (vnNext == 0) break;
                    vn += vnNext;
                }
            }
            return -1;
        }

        private static bool NameEquals(byte[] b, long at, string s)
        {
            if (at + s.Length >= b.Length) return false;
            for (int i = 0; i < s.Length; i++) if (b[at + i] != (byte)s[i]) return false;
            return b[at + s.Length] == 0;
        }
    }

#if !TORCHSAM2_LIBRARY
    /// <summary>Weakens the GLIBCXX_3.4.32 requirement of the given output-folder copies when the system lacks it.</summary>
    public sealed class WeakenGlibcxxRequirement : Task
    {
        [Required] public ITaskItem[] Files { get; set; }

        /// <summary>Whatever this system's libstdc++ has: for a package that will run elsewhere (the dotnet tool).</summary>
        public bool Always { get; set; }

        public override bool Execute()
        {
            var libstdcxx = ElfVersionNeeds.SystemLibStdCxx();
            if (!Always && (libstdcxx == null || ElfVersionNeeds.Defines(libstdcxx, ElfVersionNeeds.Version))) return true;
            foreach (var item in Files)
            {
                string path = item.ItemSpec;
                byte[] elf = File.ReadAllBytes(path);
                ushort? flags = ElfVersionNeeds.NeededFlags(elf, ElfVersionNeeds.Version);
                if (flags == null || ElfVersionNeeds.IsWeak(flags.Value)) continue;
                ElfVersionNeeds.MarkWeak(elf, ElfVersionNeeds.Version);
                // Written aside and moved over the copy: the NuGet cache file it came from (even when hard-linked) is never touched.
                string tmp = path + ".weak.tmp";
                File.WriteAllBytes(tmp, elf);
                File.Delete(path);
                File.Move(tmp, path);
                Log.LogMessage(MessageImportance.High, Path.GetFileName(path) + ": " + ElfVersionNeeds.Version + (Always ? " marked weak for any system's libstdc++ in " : " marked weak for this system's libstdc++ (" + libstdcxx + ") in ") + path);
            }
            return !Log.HasLoggedErrors;
        }
    }
#endif
}
