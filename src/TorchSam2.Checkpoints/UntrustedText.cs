using System.Globalization;
using System.Text;

namespace TorchSam2.Checkpoints;

/// <summary>
/// Text read from a file (tensor and entry names, keys, globals, header snippets), made fit for a one-line
/// error message: control, format and separator characters and unpaired surrogates are escaped (<c>\n</c>,
/// <c>\x1b</c>, <c>\u202e</c>), and long text is cut with a note of its full length. A hostile file can then
/// neither break a message over lines, nor drive a terminal, nor flood a log.
/// </summary>
public static class UntrustedText
{
    /// <summary>Longest text shown (in characters, before escaping).</summary>
    public const int DefaultMaxLength = 120;

    /// <summary>The text in single quotes, escaped and cut to <paramref name="maxLength"/> characters.</summary>
    public static string Quote(string? text, int maxLength = DefaultMaxLength) => "'" + Escape(text, maxLength) + "'";

    /// <summary>The text escaped and cut to <paramref name="maxLength"/> characters (null shows as "None").</summary>
    public static string Escape(string? text, int maxLength = DefaultMaxLength)
    {
        if (text is null) return "None";
        int keep = text.Length;
        if (keep > maxLength)
        {
            keep = Math.Max(0, maxLength);
            if (keep > 0 && char.IsHighSurrogate(text[keep - 1])) keep--; // do not split a pair
        }
        StringBuilder? sb = null;
        for (int i = 0; i < keep; i++)
        {
            char c = text[i];
            string? esc = null;
            if (char.IsHighSurrogate(c) && i + 1 < keep && char.IsLowSurrogate(text[i + 1]))
            {
                sb?.Append(c).Append(text[i + 1]);
                i++;
                continue;
            }
            if (NeedsEscape(c)) esc = EscapeChar(c);
            if (esc is null)
            {
                sb?.Append(c);
                continue;
            }
            sb ??= new StringBuilder(text, 0, i, keep + 16);
            sb.Append(esc);
        }
        string shown = sb?.ToString() ?? (keep == text.Length ? text : text[..keep]);
        return keep == text.Length ? shown : $"{shown}... ({text.Length.ToString("N0", CultureInfo.InvariantCulture)} characters)";
    }

    /// <summary>A message from elsewhere (a parser, the OS) on one line, control characters escaped.</summary>
    public static string OneLine(string? message, int maxLength = 300) => Escape(message, maxLength);

    private static bool NeedsEscape(char c) =>
        char.IsSurrogate(c) || CharUnicodeInfo.GetUnicodeCategory(c) is
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator or
            UnicodeCategory.ParagraphSeparator or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;

    private static string EscapeChar(char c) => c switch
    {
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        '\0' => "\\0",
        < '\u0100' => $"\\x{(int)c:x2}",
        _ => $"\\u{(int)c:x4}",
    };
}
