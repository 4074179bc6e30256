// Segments an image from one click with a checkpoint given by name or path:
//   dotnet run -- IMAGE X Y [CHECKPOINT]      (CHECKPOINT: glyph-demo (default, shipped), tiny, small, base_plus, large, or a file)
// A name is downloaded into ~/.cache/torchsam2 on first use and checked against its manifest.
using TorchSam2;
using TorchSam2.IO;
using static TorchSharp.torch;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: TorchSam2.Sample IMAGE X Y [CHECKPOINT]");
    return 2;
}
string checkpoint = args.Length > 3 ? args[3] : "glyph-demo";
float x = float.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
float y = float.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);

using var model = ModelLoader.Load(checkpoint);                 // the name picks the config too
using var predictor = new Sam2ImagePredictor(model);
predictor.SetImage(RgbImage.Load(args[0]));
using var prediction = predictor.Predict([[x, y]], [1], multimaskOutput: false);
using var mask = prediction.Masks[0];
long area;
using (NewDisposeScope()) area = mask.to(ScalarType.Bool).sum().item<long>(); // the temporaries go with the scope
Console.WriteLine($"checkpoint {checkpoint}: score {prediction.Scores[0]:F4}, mask area {area} px of {mask.shape[1]}x{mask.shape[0]}");
return 0;
