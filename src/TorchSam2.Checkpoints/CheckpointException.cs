namespace TorchSam2.Checkpoints;

/// <summary>A checkpoint file that cannot be read: corrupt, truncated, unsupported or unsafe.</summary>
public sealed class CheckpointException : Exception
{
    public CheckpointException(string message) : base(message) { }

    public CheckpointException(string message, Exception inner) : base(message, inner) { }
}
