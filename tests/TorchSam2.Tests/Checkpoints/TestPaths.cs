namespace TorchSam2.Tests;

/// <summary>Locations of repository files and the shared parity data, found from the test binary.</summary>
internal static class TestPaths
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "TorchSam2.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no TorchSam2.sln above {AppContext.BaseDirectory}");
    });

    public static string RepoRoot => Root.Value;

    /// <summary>TORCHSAM2_PARITY_DIR, or ../shared/parity next to the repository.</summary>
    public static string ParityDir =>
        Environment.GetEnvironmentVariable("TORCHSAM2_PARITY_DIR") is { Length: > 0 } env
            ? env
            : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "parity"));

    /// <summary>The manifests folder beside the parity folder.</summary>
    public static string ManifestDir => Path.GetFullPath(Path.Combine(ParityDir, "..", "manifests"));

    public static string Fixture(string name) => Path.Combine(RepoRoot, "tests", "TorchSam2.Tests", "Fixtures", name);

    public static string TempFile(string extension)
    {
        string dir = Path.Combine(Path.GetTempPath(), "torchsam2-tests");
        Directory.CreateDirectory(dir);
        return Path.Combine(dir, $"{Guid.NewGuid():N}{extension}");
    }
}
