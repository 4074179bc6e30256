namespace TorchSam2.Utils;

/// <summary>The mode names of the official configs ("nearest", "bilinear", ...) as TorchSharp's enum.</summary>
public static class InterpolationModes
{
    public static TorchSharp.torch.InterpolationMode Parse(string mode) => mode switch
    {
        "nearest" => TorchSharp.torch.InterpolationMode.Nearest,
        "bilinear" => TorchSharp.torch.InterpolationMode.Bilinear,
        "bicubic" => TorchSharp.torch.InterpolationMode.Bicubic,
        "area" => TorchSharp.torch.InterpolationMode.Area,
        "nearest-exact" => TorchSharp.torch.InterpolationMode.NearestExact,
        _ => throw new ArgumentException($"unknown interpolation mode '{mode}' (expected nearest, bilinear, bicubic, area or nearest-exact)"),
    };
}
