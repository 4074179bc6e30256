using System.CommandLine;
using TorchSharp;
using static TorchSharp.torch;
using TorchSharp.Modules;
using TorchSam2.Checkpoints;

namespace TorchSam2.Cli.Commands;

internal static class CheckpointCommands
{
    public static Command CreateInspect()
    {
        var file = new Argument<string>("file") { Description = "a .pt or .safetensors checkpoint" };
        var cmd = new Command("inspect", "Show a checkpoint's variant, tensor count, parameters and dtypes");
        cmd.Arguments.Add(file);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            var path = pr.GetValue(file)!;
            // the header is enough: no tensor data is read
            using var reader = CheckpointReader.Open(path);
            var sd = reader.Tensors;
            string variant;
            try { variant = ModelLoader.DetectVariant(reader); }
            catch (InvalidDataException e) { variant = $"unknown ({e.Message})"; }
            Console.WriteLine($"file        {path} ({new FileInfo(path).Length / 1e6:F1} MB, {reader.Format})");
            Console.WriteLine($"variant     {variant}");
            Console.WriteLine($"tensors     {sd.Count}");
            Console.WriteLine($"parameters  {sd.Values.Sum(r => r.NumElements):N0}");
            foreach (var g in sd.Values.GroupBy(r => r.DType).OrderByDescending(g => g.Count()))
                Console.WriteLine($"dtype       {g.Key.TorchName()}: {g.Count()} tensors");
            return 0;
        }));
        return cmd;
    }

    public static Command CreateConvert()
    {
        var input = new Argument<string>("input") { Description = "the official .pt checkpoint (or a .safetensors)" };
        var output = new Argument<string>("output") { Description = "where to write: .safetensors or .pt" };
        var cmd = new Command("convert", "Convert between the official .pt format and safetensors (official key names kept)");
        cmd.Arguments.Add(input);
        cmd.Arguments.Add(output);
        cmd.SetAction(pr => Common.Guard(() =>
        {
            var src = pr.GetValue(input)!;
            var dst = pr.GetValue(output)!;
            var sd = CheckpointFile.LoadStateDict(src);
            if (dst.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                SafeTensors.Write(dst, sd, new Dictionary<string, string> { ["format"] = "pt", ["source"] = Path.GetFileName(src) });
            else if (dst.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) || dst.EndsWith(".pth", StringComparison.OrdinalIgnoreCase))
                PtCheckpoint.Write(dst, sd);
            else
                throw new ArgumentException("the output must end in .safetensors or .pt");
            Console.WriteLine($"wrote {sd.Count} tensors to {dst}");
            return 0;
        }));
        return cmd;
    }
}
