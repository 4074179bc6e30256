using System.Text.Json.Serialization;

namespace TorchSam2.Server;

/// <summary>An error the API answers with <paramref name="status"/> and <c>{ "error": message }</c>.</summary>
public sealed class ApiException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}

/// <summary>The body of every error answer.</summary>
public sealed record ErrorBody([property: JsonPropertyName("error")] string Error);
