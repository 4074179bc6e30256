using System.CommandLine;
using TorchSam2.Parity;

namespace TorchSam2.Cli.Commands;

internal static class ParityCommand
{
    public static Command Create()
    {
        var dirs = new Argument<string[]>("case-dir") { Description = "parity case folders (each with case.json), or a folder of cases", Arity = ArgumentArity.OneOrMore };
        var threads = Common.Threads();
        var device = Common.Device();
        var cmd = new Command("parity", "Replay PyTorch reference cases and compare every output (shared/parity/README.md)");
        cmd.Arguments.Add(dirs);
        cmd.Options.Add(threads);
        cmd.Options.Add(device);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            Common.ApplyThreads(pr.GetValue(threads));
            var dev = Common.ParseDevice(pr.GetValue(device)!);
            var cases = new List<string>();
            foreach (var d in pr.GetValue(dirs)!)
            {
                if (File.Exists(Path.Combine(d, "case.json"))) cases.Add(d);
                else if (Directory.Exists(d)) cases.AddRange(ParityCase.Discover(d));
                else throw new DirectoryNotFoundException($"no such case folder: '{Terminal.Safe(d)}'");
            }
            if (cases.Count == 0) throw new UsageException("no parity cases found (a case folder holds case.json)");
            int failed = 0;
            foreach (var c in cases)
            {
                Terminal.Out(Terminal.Safe(Path.GetFileName(c.TrimEnd('/'))));
                var report = Common.Doing($"running the parity case '{c}'", () => ParityRunner.Run(c, check => Terminal.Out("  " + Terminal.Safe(check.ToString())), dev));
                foreach (var e in report.Errors) Terminal.Out($"  error {Terminal.Safe(e)}");
                foreach (var n in report.NotImplemented) Terminal.Out($"  not implemented {Terminal.Safe(n)}");
                Terminal.Out($"  {Terminal.Safe(report.Summary)}");
                if (!report.Passed) failed++;
            }
            Terminal.Out($"parity: {cases.Count - failed} passed, {failed} failed");
            return failed == 0 ? 0 : 1;
        }));
        return cmd;
    }
}
