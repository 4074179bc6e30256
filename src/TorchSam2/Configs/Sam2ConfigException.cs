namespace TorchSam2.Configs;

/// <summary>A model config that cannot be parsed or is inconsistent; the message names the YAML path.</summary>
public sealed class Sam2ConfigException : Exception
{
    public Sam2ConfigException(string message) : base(message) { }

    public Sam2ConfigException(string message, Exception inner) : base(message, inner) { }
}
