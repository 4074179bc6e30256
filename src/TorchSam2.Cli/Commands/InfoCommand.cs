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
            var cached = TorchSam2.Pretrained.CheckpointStore.List();
            Console.WriteLine($"checkpoints     {Terminal.Safe(TorchSam2.Pretrained.CheckpointStore.CacheDir())} ({cached.Count(f => !f.Partial)} cached, " +
                              $"{cached.Sum(f => f.Bytes) / 1e6:F1} MB){(TorchSam2.Pretrained.CheckpointStore.IsOffline() ? ", offline" : "")}");
            return 0;
        }));
        return cmd;
    }
}
