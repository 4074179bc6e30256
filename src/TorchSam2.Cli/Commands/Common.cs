using System.CommandLine;
using Spectre.Console;
using TorchSam2.Torch;

namespace TorchSam2.Cli.Commands;

internal static class Common
{
    public static Option<string> Device() => new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };

    public static Option<int> Threads() => new("--threads") { Description = "CPU threads for libtorch (0 = libtorch's default)", DefaultValueFactory = _ => 0 };

    public static Device ParseDevice(string s)
    {
        var d = TorchSam2.Torch.Device.Parse(s);
        if (d.Type == DeviceType.CUDA && !torch.cuda.is_available())
            throw new ArgumentException("CUDA was requested but this libtorch build has no CUDA device (build the shim against a CUDA libtorch: see README)");
        return d;
    }

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
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException
                                       or TorchException or StateDictException or KeyNotFoundException or NotSupportedException
                                       or TorchSam2.Torch.Serialization.CheckpointException or TorchSam2.Configs.Sam2ConfigException)
        {
            AnsiConsole.MarkupLine($"[red]error:[/] {Markup.Escape(e.Message)}");
            return 1;
        }
    }
}
