using System.CommandLine;
using TorchSam2.Cli.Commands;

// torchsam2: SAM 2.1 in .NET on libtorch. Each subcommand lives in Commands/.
var root = new RootCommand("TorchSam2 — Segment Anything 2.1 in C# on libtorch");
root.Subcommands.Add(InfoCommand.Create());
root.Subcommands.Add(SegmentCommand.Create());
root.Subcommands.Add(AutoCommand.Create());
root.Subcommands.Add(TrackCommand.Create());
root.Subcommands.Add(ParityCommand.Create());
root.Subcommands.Add(CheckpointCommands.CreateInspect());
root.Subcommands.Add(CheckpointCommands.CreateConvert());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(FinetuneCommand.Create());
root.Subcommands.Add(GlyphsCommand.Create());
root.Subcommands.Add(GlyphsCommand.CreateSpecimens());
root.Subcommands.Add(GlyphsCommand.CreateEval());
return root.Parse(args).Invoke();
