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
            var path = Common.ExistingFile("file", pr.GetValue(file));
            // the header is enough: no tensor data is read
            using var reader = Common.Doing($"reading the checkpoint '{path}'", () => CheckpointReader.Open(path));
            var sd = reader.Tensors;
            string variant;
            try { variant = ModelLoader.DetectVariant(reader); }
            catch (InvalidDataException e) { variant = $"unknown ({e.Message})"; }
            Terminal.Out($"file        {Terminal.Safe(path)} ({new FileInfo(path).Length / 1e6:F1} MB, {Terminal.Safe(reader.Format.ToString())})");
            Terminal.Out($"variant     {Terminal.Safe(variant)}");
            Terminal.Out($"tensors     {sd.Count}");
            Terminal.Out($"parameters  {sd.Values.Sum(r => r.NumElements):N0}");
            foreach (var g in sd.Values.GroupBy(r => r.DType).OrderByDescending(g => g.Count()))
                Terminal.Out($"dtype       {Terminal.Safe(g.Key.TorchName())}: {g.Count()} tensors");
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
            var src = Common.ExistingFile("input", pr.GetValue(input));
            var dst = pr.GetValue(output)!;
            bool safetensors = dst.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
            if (!safetensors && !dst.EndsWith(".pt", StringComparison.OrdinalIgnoreCase) && !dst.EndsWith(".pth", StringComparison.OrdinalIgnoreCase))
                throw new UsageException($"the output must end in .safetensors or .pt, got '{Terminal.Safe(dst)}'");
            if (Directory.Exists(dst)) throw new UsageException($"output '{Terminal.Safe(dst)}' is a folder");
            PathSafety.CheckNotAnInput("output", dst, [("checkpoint", src)]);
            var sd = Common.Doing($"reading the checkpoint '{src}'", () => CheckpointFile.LoadStateDict(src));
            // written aside and moved into place: a failure leaves no half-written file under the output's name
            var full = Path.GetFullPath(dst);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}{Path.GetExtension(full)}");
            try
            {
                using (Activity.Doing($"writing '{dst}'"))
                {
                    if (safetensors) SafeTensors.Write(tmp, sd, new Dictionary<string, string> { ["format"] = "pt", ["source"] = Path.GetFileName(src) });
                    else PtCheckpoint.Write(tmp, sd);
                }
                File.Move(tmp, full, overwrite: true);
            }
            finally
            {
                if (File.Exists(tmp)) File.Delete(tmp);
            }
            Terminal.Out($"wrote {sd.Count} tensors to {Terminal.Safe(dst)}");
            return 0;
        }));
        return cmd;
    }
}
