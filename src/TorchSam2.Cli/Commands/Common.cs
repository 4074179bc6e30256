using System.CommandLine;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;

namespace TorchSam2.Cli.Commands;

internal static class Common
{
    public static Option<string> Device() => new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };

    public static Option<int> Threads() => new("--threads") { Description = "CPU threads for libtorch (0 = libtorch's default)", DefaultValueFactory = _ => 0 };

    public static torch.Device ParseDevice(string s) => TorchRuntime.ParseDevice(s);

    public static void ApplyThreads(int n)
    {
        if (n > 0) torch.set_num_threads(n);
    }

    /// <summary>Runs a command body, turning expected failures into one red line and exit code 1.</summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (System.Runtime.InteropServices.ExternalException e)
        {
            // libtorch's own failures (TorchSharp raises them untyped): one line, typed for the library's users.
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(TorchErrors.Translate(e).Message)}");
            return 1;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException
                                       or TorchException or StateDictException or KeyNotFoundException or NotSupportedException
                                       or TorchSam2.Checkpoints.CheckpointException or TorchSam2.Configs.Sam2ConfigException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 1;
        }
    }
}
