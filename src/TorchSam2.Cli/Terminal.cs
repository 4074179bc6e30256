using System.Text;

namespace TorchSam2.Cli;

/// <summary>
/// Plain-text output. Text that comes from the user or from files (paths, tensor keys, font names, messages that
/// quote them) is escaped before it reaches the terminal: control characters (escape sequences, carriage returns,
/// bidi overrides) are shown as \uXXXX, and nothing goes through Spectre.Console markup, which would read [brackets]
/// as styles and :shortcodes: as emoji ("glyph-crops:train:0" became "glyph-crops🚆0").
/// </summary>
internal static class Terminal
{
    /// <summary>The text on one line with every control or invisible direction character escaped.</summary>
    public static string Safe(string? s)
    {
        if (string.IsNullOrEmpty(s)) return s ?? "";
        StringBuilder? sb = null;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                sb?.Append(c).Append(s[i + 1]);
                i++;
                continue;
            }
            string? rep = c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => " ",
                _ when char.IsControl(c) || char.IsSurrogate(c) || IsBidiOrInvisible(c) => $"\\u{(int)c:x4}",
                _ => null,
            };
            if (rep is null)
            {
                sb?.Append(c);
                continue;
            }
            sb ??= new StringBuilder(s, 0, i, s.Length + 16);
            sb.Append(rep);
        }
        return sb?.ToString() ?? s;
    }

    /// <summary>A message as one line: line breaks become "; " (a C++ backtrace after the first line is dropped by the caller), the rest escaped.</summary>
    public static string OneLine(string? message)
    {
        if (string.IsNullOrEmpty(message)) return "";
        // a lone carriage return (in a file name) is escaped below; line breaks join the lines
        var lines = message.Replace("\r\n", "\n").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return Safe(string.Join("; ", lines));
    }

    private static bool IsBidiOrInvisible(char c) =>
        c is '\u200B' or '\u200C' or '\u200D' or '\u200E' or '\u200F' or '\u2028' or '\u2029' or '\uFEFF' or '\u061C'
        || (c >= '\u202A' && c <= '\u202E') || (c >= '\u2066' && c <= '\u2069');

    /// <summary>Writes a line to standard output; the parts in <paramref name="userText"/> positions must already be escaped with <see cref="Safe"/>.</summary>
    public static void Out(string line) => Console.Out.WriteLine(line);

    /// <summary>"error: message" on standard error, "error:" in red on a colour terminal.</summary>
    public static void Error(string message) => Console.Error.WriteLine($"{Paint("error:", "31")} {message}");

    /// <summary>"warning: message" on standard error.</summary>
    public static void Warning(string message) => Console.Error.WriteLine($"{Paint("warning:", "33")} {message}");

    /// <summary>"note: message" on standard error.</summary>
    public static void Note(string message) => Console.Error.WriteLine($"{Paint("note:", "33")} {message}");

    private static string Paint(string s, string sgr) =>
        Console.IsErrorRedirected || Environment.GetEnvironmentVariable("NO_COLOR") is { Length: > 0 } || Environment.GetEnvironmentVariable("TERM") == "dumb"
            ? s
            : $"\u001b[{sgr}m{s}\u001b[0m";
}
