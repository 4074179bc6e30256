using System.CommandLine;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;

namespace TorchSam2.Cli.Commands;

internal static class InfoCommand
{
    public static Command Create()
    {
        var cmd = new Command("info", "Show the libtorch build, BLAS, threads and devices");
        cmd.SetAction(_ => Common.Guard(() =>
        {
            Console.WriteLine($"TorchSharp      {TorchRuntime.TorchSharpVersion}");
            Console.WriteLine($"libtorch        {torch.__version__}  {string.Join(" ", TorchRuntime.MappedLibraries("libtorch_c"))}");
            Console.WriteLine($"libstdc++       {TorchRuntime.GlibcxxStatus()}");
            Console.WriteLine($"threads         {torch.get_num_threads()}");
            Console.WriteLine($"CUDA            {(torch.cuda.is_available() ? $"{torch.cuda.device_count()} device(s)" : "not available (CPU backend package)")}");
            return 0;
        }));
        return cmd;
    }
}
