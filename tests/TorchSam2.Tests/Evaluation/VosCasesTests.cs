using System.Globalization;
using System.Text.Json;
using TorchSam2.Evaluation;
using TorchSam2.Tests.Cli;
using Xunit.Abstractions;

namespace TorchSam2.Tests.Evaluation;

// Every case folder under TORCHSAM2_VOS_DIR (default ../shared/vos) is replayed: gt/ and pred/ scored here must give
// every number of the official evaluator's expected.csv to its printed precision. A case that fails is a failure;
// a missing folder is skipped outside CI (as the parity cases).
public class VosCasesTests(ITestOutputHelper output)
{
    public static string VosDir =>
        Environment.GetEnvironmentVariable("TORCHSAM2_VOS_DIR") is { Length: > 0 } env
            ? env
            : Path.GetFullPath(Path.Combine(TestPaths.RepoRoot, "..", "shared", "vos"));

    public static IEnumerable<string> Discover() =>
        Directory.Exists(VosDir)
            ? Directory.GetDirectories(VosDir).Where(d => File.Exists(Path.Combine(d, "expected.csv"))).OrderBy(d => d, StringComparer.Ordinal)
            : [];

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var dir in Discover()) data.Add(Path.GetFileName(dir));
        if (data.Count == 0) data.Add("<none>");
        return data;
    }

    /// <summary>expected.csv rows: (sequence, obj) → (J&amp;F, J, F); the Global score row has obj "".</summary>
    public static Dictionary<(string seq, string obj), (double jf, double j, double f)> ParseCsv(string text)
    {
        var rows = new Dictionary<(string, string), (double, double, double)>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1))
        {
            var p = line.Split(',');
            Assert.True(p.Length == 5, $"not a results.csv row: '{line}'");
            double D(string s) => double.Parse(s.Trim(), CultureInfo.InvariantCulture);
            rows.Add((p[0].Trim(), p[1].Trim()), (D(p[2]), D(p[3]), D(p[4])));
        }
        return rows;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void CaseMatchesTheOfficialEvaluator(string name)
    {
        if (name == "<none>")
        {
            Assert.False(CliProcess.InCi, $"CI=true but no VOS cases were found under {VosDir}");
            return;
        }
        var dir = Path.Combine(VosDir, name);
        var expected = ParseCsv(File.ReadAllText(Path.Combine(dir, "expected.csv")));
        var r = VosBenchmark.Evaluate(Path.Combine(dir, "gt"), Path.Combine(dir, "pred"), new VosBenchmarkOptions { Parallelism = 2 });
        var csv = r.ToCsv();
        output.WriteLine(csv);
        var actual = ParseCsv(csv);
        Assert.Equal(expected.Keys.OrderBy(k => k), actual.Keys.OrderBy(k => k));
        var bad = new List<string>();
        foreach (var (key, e) in expected)
        {
            var a = actual[key];
            foreach (var (what, ev, av) in new[] { ("J&F", e.jf, a.jf), ("J", e.j, a.j), ("F", e.f, a.f) })
                if (Math.Abs(ev - av) > 0.05 + 1e-9) bad.Add($"{key.seq} {key.obj} {what}: {av:F1}, expected {ev:F1}");
        }
        Assert.True(bad.Count == 0, string.Join("\n", bad));
        // the unrounded global score agrees with its printed value
        Assert.InRange(r.GlobalJF, expected[("Global score", "")].jf - 0.05, expected[("Global score", "")].jf + 0.05);
    }

    [Fact]
    public void CliPrintsTheTableAndWritesTheCsv()
    {
        var dir = Discover().FirstOrDefault();
        if (dir is null || !File.Exists(CliProcess.Dll()))
        {
            Assert.False(CliProcess.InCi, $"CI=true but no VOS case under {VosDir} or no CLI build");
            return;
        }
        string csv = TestPaths.TempFile(".csv");
        try
        {
            var r = CliProcess.Run(120_000, (IReadOnlyDictionary<string, string?>?)null, "eval-vos", "--gt", Path.Combine(dir, "gt"), "--pred", Path.Combine(dir, "pred"), "--csv", csv);
            Assert.True(r.Code == 0, r.Output);
            var expected = ParseCsv(File.ReadAllText(Path.Combine(dir, "expected.csv")));
            Assert.Equal(expected, ParseCsv(File.ReadAllText(csv)));
            // the printed table is the official one: the CSV with spaces for commas
            var table = File.ReadAllText(Path.Combine(dir, "expected.csv")).Replace(',', ' ').Split('\n', StringSplitOptions.RemoveEmptyEntries);
            foreach (var line in table) Assert.Contains(line, r.Stdout);
            var g = expected[("Global score", "")];
            Assert.Contains(string.Create(CultureInfo.InvariantCulture, $"Global score: J&F: {g.jf:F1} J: {g.j:F1} F: {g.f:F1}"), r.Stdout);

            var j = CliProcess.Run(120_000, (IReadOnlyDictionary<string, string?>?)null, "eval-vos", "--gt", Path.Combine(dir, "gt"), "--pred", Path.Combine(dir, "pred"), "--json");
            Assert.True(j.Code == 0, j.Output);
            using var doc = JsonDocument.Parse(j.Stdout);
            Assert.Equal(g.jf, Math.Round(doc.RootElement.GetProperty("global").GetProperty("j_and_f").GetDouble(), 1), 6);
            int objects = doc.RootElement.GetProperty("videos").EnumerateArray().Sum(v => v.GetProperty("objects").GetArrayLength());
            Assert.Equal(expected.Count - 1, objects);

            // bad input: one line, exit codes 2 (usage) and 1 (data)
            var missing = CliProcess.Run(60_000, (IReadOnlyDictionary<string, string?>?)null, "eval-vos", "--gt", Path.Combine(dir, "nope"), "--pred", Path.Combine(dir, "pred"));
            Assert.Equal(1, missing.Code);
            Assert.Contains("folder not found", missing.Stderr);
            // an input is never overwritten (on a copy of the case)
            string copy = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "voscopy_" + Guid.NewGuid().ToString("N"));
            try
            {
                foreach (var f in Directory.GetFiles(dir, "*", SearchOption.AllDirectories))
                {
                    var dst = Path.Combine(copy, Path.GetRelativePath(dir, f));
                    Directory.CreateDirectory(Path.GetDirectoryName(dst)!);
                    File.Copy(f, dst);
                }
                string victim = Directory.GetFiles(Path.Combine(copy, "pred"), "*.png", SearchOption.AllDirectories).First();
                var before = File.ReadAllBytes(victim);
                var onInput = CliProcess.Run(60_000, (IReadOnlyDictionary<string, string?>?)null, "eval-vos", "--gt", Path.Combine(copy, "gt"), "--pred", Path.Combine(copy, "pred"), "--csv", victim);
                Assert.Equal(2, onInput.Code);
                Assert.Contains("would overwrite the input", onInput.Stderr);
                Assert.Equal(before, File.ReadAllBytes(victim));
            }
            finally
            {
                if (Directory.Exists(copy)) Directory.Delete(copy, true);
            }
        }
        finally
        {
            File.Delete(csv);
        }
    }
}
