using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace TorchSam2.Tests.Pretrained;

/// <summary>
/// A small HTTP/1.1 server on 127.0.0.1 (a free port) for the download tests: serves byte arrays by path, honours
/// "Range: bytes=N-", and can fail with a status, cut the first response after some bytes, or send slowly.
/// Every request is recorded (path and Range header). One request per connection.
/// </summary>
internal sealed class FixtureServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private int _cutsLeft;

    public ConcurrentDictionary<string, byte[]> Files { get; } = new(StringComparer.Ordinal);
    public ConcurrentQueue<(string Path, string? Range)> Requests { get; } = new();

    /// <summary>Every request answers this status with an empty body.</summary>
    public int? FailStatus { get; set; }

    /// <summary>The first <see cref="CutCount"/> responses announce the whole length, send this many bytes and close.</summary>
    public long? CutAt { get; set; }
    public int CutCount { get => _cutsLeft; set => _cutsLeft = value; }

    /// <summary>A pause after each 256 KiB chunk (slow downloads for the concurrency tests).</summary>
    public TimeSpan ChunkDelay { get; set; } = TimeSpan.Zero;

    public string BaseUrl { get; }

    public FixtureServer()
    {
        _listener.Start();
        BaseUrl = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";
        _ = Task.Run(AcceptLoop);
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using var _ = client;
        try
        {
            var stream = client.GetStream();
            string? requestLine = null, range = null;
            var line = new StringBuilder();
            // headers up to the empty line, byte by byte (GET has no body)
            while (true)
            {
                int b = stream.ReadByte();
                if (b < 0) return;
                if (b == '\n')
                {
                    string l = line.ToString().TrimEnd('\r');
                    line.Clear();
                    if (l.Length == 0) break;
                    if (requestLine is null) requestLine = l;
                    else if (l.StartsWith("Range:", StringComparison.OrdinalIgnoreCase)) range = l["Range:".Length..].Trim();
                }
                else line.Append((char)b);
            }
            string path = requestLine!.Split(' ')[1];
            Requests.Enqueue((path, range));
            if (FailStatus is int status)
            {
                await Write(stream, $"HTTP/1.1 {status} Failure\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            if (!Files.TryGetValue(path, out var data))
            {
                await Write(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            long from = 0;
            if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
                from = long.Parse(range["bytes=".Length..^1]);
            if (from >= data.Length && data.Length > 0)
            {
                await Write(stream, $"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{data.Length}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                return;
            }
            string head = from > 0
                ? $"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{data.Length - 1}/{data.Length}\r\nContent-Length: {data.Length - from}\r\n"
                : $"HTTP/1.1 200 OK\r\nContent-Length: {data.Length}\r\n";
            await Write(stream, head + "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n");
            long end = data.Length;
            if (CutAt is long cut && Interlocked.Decrement(ref _cutsLeft) >= 0) end = Math.Min(end, from + cut);
            for (long at = from; at < end; at += 256 << 10)
            {
                int n = (int)Math.Min(256 << 10, end - at);
                await stream.WriteAsync(data.AsMemory((int)at, n));
                if (ChunkDelay > TimeSpan.Zero) await Task.Delay(ChunkDelay);
            }
            await stream.FlushAsync();
        }
        catch (IOException)
        {
            // the client went away
        }
    }

    private static Task Write(NetworkStream s, string text) => s.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask();

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }
}
