using System.CommandLine;
using System.CommandLine.Invocation;
using System.Globalization;
using TorchSam2.Cli;
using TorchSam2.Cli.Commands;

// torchsam2: SAM 2.1 in .NET on libtorch. Each subcommand lives in Commands/.
// Exit codes: 0 done, 1 the command failed (files, runtime), 2 the command line is wrong (parse errors, option values).
// Every error is one escaped line on standard error; --verbose (or TORCHSAM2_DEBUG=1) adds the stack.
// glibc raises its mmap threshold to the largest block freed (up to 32 MB), after which libtorch's image-sized
// temporaries stay in the heap arenas as fragments: fixing it keeps them mmapped and returned on free
// (README, Benchmarks: 4 MB took peak RSS after video at 512² from 915-947 to 797 MB; 1 MB to 610 MB but cost 30-50 % of
// the time). TORCHSAM2_MMAP_THRESHOLD=0 keeps glibc's default.
TorchSam2.Utils.NativeHeap.FixMmapThreshold(
    int.TryParse(Environment.GetEnvironmentVariable("TORCHSAM2_MMAP_THRESHOLD"), out int mmapThreshold) ? mmapThreshold : 4 << 20);
// Tracking hands free heap pages back when the resident set grew by this much (README, Benchmarks); 0 = only at the end.
if (long.TryParse(Environment.GetEnvironmentVariable("TORCHSAM2_HEAP_TRIM_MB"), out long heapTrimMb) && heapTrimMb >= 0 && heapTrimMb <= 1 << 20)
    TorchSam2.Sam2VideoPredictor.DefaultHeapTrimMarginBytes = heapTrimMb << 20;
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
AppDomain.CurrentDomain.UnhandledException += (_, e) =>
{
    // a failure on another thread (a progress display, a finalizer): still one line, never a stack dump
    int code = e.ExceptionObject is Exception ex ? ErrorReport.Report(ex) : ExitCodes.Failure;
    Console.Error.Flush();
    Environment.Exit(code);
};
try
{
    var verbose = new Option<bool>("--verbose") { Description = "on errors, also print where they happened (as TORCHSAM2_DEBUG=1)", Recursive = true };
    var root = new RootCommand("TorchSam2 — Segment Anything 2.1 in C# on libtorch");
    root.Options.Add(verbose);
    // every command that takes a checkpoint also takes a name ("tiny", "sam2.1_hiera_large", "glyph-demo"): these say where
    // named checkpoints are cached and whether they may be downloaded
    var cacheDir = new Option<string?>("--cache-dir") { Description = "where named checkpoints are cached (default $TORCHSAM2_CACHE, else ~/.cache/torchsam2)", Recursive = true };
    var offline = new Option<bool>("--offline") { Description = "never download: use cached checkpoints only (as TORCHSAM2_OFFLINE=1)", Recursive = true };
    root.Options.Add(cacheDir);
    root.Options.Add(offline);
    root.Subcommands.Add(InfoCommand.Create());
    root.Subcommands.Add(SegmentCommand.Create());
    root.Subcommands.Add(AutoCommand.Create());
    root.Subcommands.Add(TrackCommand.Create());
    root.Subcommands.Add(VosCommand.Create());
    root.Subcommands.Add(EvalVosCommand.Create());
    root.Subcommands.Add(EvalVosCommand.CreateClips());
    root.Subcommands.Add(ParityCommand.Create());
    root.Subcommands.Add(CheckpointCommands.CreateInspect());
    root.Subcommands.Add(CheckpointCommands.CreateConvert());
    root.Subcommands.Add(BenchCommand.Create());
    root.Subcommands.Add(FinetuneCommand.Create());
    root.Subcommands.Add(GlyphsCommand.Create());
    root.Subcommands.Add(GlyphsCommand.CreateSpecimens());
    root.Subcommands.Add(GlyphsCommand.CreateEval());
    root.Subcommands.Add(GlyphsCommand.CreateTrainCentres());
    root.Subcommands.Add(CacheCommands.CreateDownload());
    root.Subcommands.Add(CacheCommands.CreateCache());
    root.Subcommands.Add(ServeCommand.Create());

    var parse = root.Parse(args);
    if (args.Contains("--verbose")) ErrorReport.Verbose = true;
    if (parse.Errors.Count > 0 && parse.Action is ParseErrorAction)
    {
        // System.CommandLine would print every error and the whole help; one line and the way to the help instead
        var command = parse.CommandResult.Command;
        string path = command == root ? "torchsam2" : $"torchsam2 {command.Name}";
        // the most specific first: "Unrecognized command or argument 'x'" before "Required command was not provided"
        var errors = parse.Errors.OrderBy(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal) ? 0
                                               : e.Message.StartsWith("Required command", StringComparison.Ordinal) ? 2 : 1).ToList();
        string first = Terminal.OneLine(errors[0].Message).TrimEnd('.');
        string more = parse.Errors.Count > 1 ? $" (and {parse.Errors.Count - 1} more)" : "";
        Terminal.Error($"{first}{more}; see '{path} --help'");
        return ExitCodes.Usage;
    }
    CacheCommands.Configure(parse.GetValue(cacheDir), parse.GetValue(offline));
    return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
}
catch (Exception e) when (ErrorReport.Remember(e))
{
    return ErrorReport.Report(e);
}
