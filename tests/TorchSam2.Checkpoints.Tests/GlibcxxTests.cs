using System.Runtime.InteropServices;
using TorchSam2.Build;
using TorchSharp;

namespace TorchSam2.Checkpoints.Tests;

// build/TorchSharp.targets marks libLibTorchSharp.so's GLIBCXX_3.4.32 requirement weak in the output folder when
// the system's libstdc++ (GCC 12: Debian 12, Ubuntu 22.04) lacks that version, and only there.
public class GlibcxxTests
{
    private static string OutputCopy() =>
        Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    private static string NuGetCopy()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var version = typeof(TorchSharp.torch).Assembly.GetName().Version!.ToString(3);
        return Path.Combine(root, "torchsharp", version, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
    }

    [Fact]
    public void OutputCopyIsWeakenedExactlyWhenTheSystemLacksTheVersion()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) || RuntimeInformation.ProcessArchitecture != Architecture.X64) return;
        var elf = File.ReadAllBytes(OutputCopy());
        ushort? flags = ElfVersionNeeds.NeededFlags(elf, ElfVersionNeeds.Version);
        Assert.NotNull(flags); // TorchSharp 0.107's library does ask for it
        var libstdcxx = ElfVersionNeeds.SystemLibStdCxx();
        Assert.NotNull(libstdcxx);
        bool systemHasIt = ElfVersionNeeds.Defines(libstdcxx!, ElfVersionNeeds.Version);
        Assert.Equal(!systemHasIt, ElfVersionNeeds.IsWeak(flags!.Value));
        // And the library loaded: this very process runs TorchSharp.
        using var t = TorchSharp.torch.ones(2);
        Assert.Equal(2f, t.sum().ToSingle());
    }

    [Fact]
    public void NuGetCacheIsNeverTouchedAndMarkingChangesOneFlag()
    {
        var cached = NuGetCopy();
        if (!File.Exists(cached)) return; // a restore into another packages folder
        var original = File.ReadAllBytes(cached);
        ushort? flags = ElfVersionNeeds.NeededFlags(original, ElfVersionNeeds.Version);
        Assert.NotNull(flags);
        Assert.False(ElfVersionNeeds.IsWeak(flags!.Value));
        var copy = (byte[])original.Clone();
        Assert.True(ElfVersionNeeds.MarkWeak(copy, ElfVersionNeeds.Version));
        Assert.True(ElfVersionNeeds.IsWeak(ElfVersionNeeds.NeededFlags(copy, ElfVersionNeeds.Version)!.Value));
        Assert.Equal(1, original.Zip(copy).Count(p => p.First != p.Second));
        Assert.False(ElfVersionNeeds.MarkWeak(copy, "GLIBCXX_9.9.99"));
    }

    [Fact]
    public void DamagedFilesGiveNoAnswerRatherThanAnException()
    {
        Assert.Null(ElfVersionNeeds.NeededFlags(new byte[10], ElfVersionNeeds.Version));
        var junk = new byte[4096];
        new Random(1).NextBytes(junk);
        junk[0] = 0x7f; junk[1] = (byte)'E'; junk[2] = (byte)'L'; junk[3] = (byte)'F'; junk[4] = 2; junk[5] = 1;
        Assert.Null(ElfVersionNeeds.NeededFlags(junk, ElfVersionNeeds.Version));
    }
}
