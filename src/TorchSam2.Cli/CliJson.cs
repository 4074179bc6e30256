using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace TorchSam2.Cli;

/// <summary>
/// JSON written by the commands. JSON has no NaN or infinity, so a non-finite number (scores of a model with NaN
/// weights, a diverged loss) is written as null instead of failing the whole write.
/// </summary>
internal static class CliJson
{
    public static readonly JsonSerializerOptions Indented = Make(true);
    public static readonly JsonSerializerOptions Compact = Make(false);

    private static JsonSerializerOptions Make(bool indented)
    {
        var o = new JsonSerializerOptions { WriteIndented = indented, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        o.Converters.Add(new FiniteDouble());
        o.Converters.Add(new FiniteSingle());
        return o;
    }

    public static string Serialize<T>(T value, bool indented = true) => JsonSerializer.Serialize(value, indented ? Indented : Compact);

    /// <summary>Whether any number in the values is NaN or infinite (to warn that nulls were written).</summary>
    public static bool AnyNonFinite(IEnumerable<double> values) => values.Any(v => !double.IsFinite(v));

    private sealed class FiniteDouble : JsonConverter<double>
    {
        public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.Null ? double.NaN : reader.GetDouble();

        public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
        {
            if (double.IsFinite(value)) writer.WriteNumberValue(value);
            else writer.WriteNullValue();
        }
    }

    private sealed class FiniteSingle : JsonConverter<float>
    {
        public override float Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.TokenType == JsonTokenType.Null ? float.NaN : reader.GetSingle();

        public override void Write(Utf8JsonWriter writer, float value, JsonSerializerOptions options)
        {
            if (float.IsFinite(value)) writer.WriteNumberValue(value);
            else writer.WriteNullValue();
        }
    }
}
