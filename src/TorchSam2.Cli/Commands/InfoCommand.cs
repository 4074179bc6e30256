using System.CommandLine;
using TorchSam2.Torch;
using TorchSam2.Torch.Native;

namespace TorchSam2.Cli.Commands;

internal static class InfoCommand
{
    public static Command Create()
    {
        var cmd = new Command("info", "Show the libtorch build, BLAS, threads and devices");
        cmd.SetAction(_ =>
        {
            Console.WriteLine($"libtorch        {torch.Version}");
            var blas = BlasCheck.LoadedBlas();
            Console.WriteLine($"BLAS            {blas ?? "(none mapped)"}{(BlasCheck.IsReferenceBlas(blas) ? "  <- reference BLAS: slow, install libopenblas0-openmp" : "")}");
            Console.WriteLine($"threads         {torch.get_num_threads()}");
            Console.WriteLine($"CUDA            {(torch.cuda.is_available() ? $"{torch.cuda.device_count()} device(s)" : "not available")}");
            Console.WriteLine($"fused attention {(torch.nn.functional.HasFusedAttention ? "yes (scaled_dot_product_attention)" : "no (explicit softmax attention)")}");
            return 0;
        });
        return cmd;
    }
}
