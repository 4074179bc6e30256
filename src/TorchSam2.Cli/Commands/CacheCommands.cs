using System.CommandLine;
using Spectre.Console;
using TorchSam2.Pretrained;

namespace TorchSam2.Cli.Commands;

/// <summary>Checkpoints by name: the global --cache-dir / --offline, `download NAME...` and `cache list|size|clear`.</summary>
internal static class CacheCommands
{
    /// <summary>Sets where named checkpoints are cached, whether the network may be used, and the progress bar (on stderr).</summary>
    public static void Configure(string? cacheDir, bool offline)
    {
        CheckpointStore.Defaults = new CheckpointStoreOptions
        {
            CacheDir = string.IsNullOrWhiteSpace(cacheDir) ? null : cacheDir,
            Offline = offline ? true : null,
            ShowProgress = ShowProgress,
            Log = line => Console.Error.WriteLine($"torchsam2: {Terminal.Safe(line)}"),
        };
    }

    // Progress goes to stderr so that stdout stays the command's own output (bench --json).
    private static void ShowProgress(PretrainedCheckpoint checkpoint, Action<IProgress<DownloadProgress>?> download)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        using var _ = Activity.Doing($"downloading {checkpoint.Name}");
        console.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(),
                     new TransferSpeedColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask($"downloading {checkpoint.Name}", maxValue: 1);
                download(new SyncProgress<DownloadProgress>(p =>
                {
                    if (p.Total is long t && t > 0) task.MaxValue = t;
                    else task.IsIndeterminate = true;
                    task.Value = p.Received;
                }));
                task.Value = task.MaxValue;
            });
    }

    /// <summary>A checkpoint argument: a name, or a usage error listing the names.</summary>
    private static PretrainedCheckpoint Named(string name) =>
        PretrainedCheckpoints.TryFind(name, out var c) ? c
            : throw new UsageException($"unknown checkpoint name '{Terminal.Safe(name)}'; known: {PretrainedCheckpoints.KnownNames}");

    public static Command CreateDownload()
    {
        var names = new Argument<string[]>("names") { Description = "checkpoint names: tiny, small, base_plus, large, sam2.1_hiera_*, sam2_hiera_* (SAM 2.0), glyph-demo", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("download", "Download named checkpoints into the cache (verified against their manifests) and print their paths");
        cmd.Arguments.Add(names);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            var wanted = pr.GetValue(names)!.Select(Named).Distinct().ToList();
            foreach (var c in wanted)
            {
                string path = Common.Doing($"fetching {c.Name}", () => CheckpointStore.Fetch(c));
                Terminal.Out($"{c.Name,-22} {new FileInfo(path).Length / 1e6,8:F1} MB  {Terminal.Safe(path)}");
            }
            return 0;
        }));
        return cmd;
    }

    private static int ListCache()
    {
        Terminal.Out($"cache {Terminal.Safe(CheckpointStore.CacheDir())}");
        var files = CheckpointStore.List();
        if (files.Count == 0) Terminal.Out("(empty)");
        foreach (var f in files)
            Terminal.Out($"{Terminal.Safe(f.Name ?? "-"),-22} {f.Bytes / 1e6,8:F1} MB  {Terminal.Safe(Path.GetFileName(f.Path))}{(f.Partial ? "  (partial download, resumed on next use)" : "")}");
        return 0;
    }

    public static Command CreateCache()
    {
        var cmd = new Command("cache", "Show or clear the checkpoint cache (list, size, clear)");
        var list = new Command("list", "The cached checkpoints and partial downloads, with sizes");
        list.SetAction(_ => Common.Guard(ListCache));
        cmd.SetAction(_ => Common.Guard(ListCache)); // `torchsam2 cache` alone lists

        var size = new Command("size", "The bytes the cache holds");
        size.SetAction(_ => Common.Guard(() =>
        {
            var files = CheckpointStore.List();
            long bytes = files.Sum(f => f.Bytes);
            Terminal.Out($"{bytes / 1e6:F1} MB in {files.Count} file(s) in {Terminal.Safe(CheckpointStore.CacheDir())}");
            return 0;
        }));
        var names = new Argument<string[]>("names") { Description = "only these checkpoints (default: everything)", Arity = ArgumentArity.ZeroOrMore };
        var clear = new Command("clear", "Delete cached checkpoints (all, or the named ones) and partial downloads");
        clear.Arguments.Add(names);
        clear.SetAction(pr => Common.Guard(() =>
        {
            var only = pr.GetValue(names) is { Length: > 0 } n ? n.Select(x => Named(x).Name).ToList() : null;
            var deleted = CheckpointStore.Clear(only);
            Terminal.Out($"deleted {deleted.Count} file(s), {deleted.Sum(f => f.Bytes) / 1e6:F1} MB, from {Terminal.Safe(CheckpointStore.CacheDir())}");
            return 0;
        }));
        cmd.Subcommands.Add(list);
        cmd.Subcommands.Add(size);
        cmd.Subcommands.Add(clear);
        return cmd;
    }
}
