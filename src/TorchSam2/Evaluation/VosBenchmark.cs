using System.Text;
using TorchSam2.IO;

namespace TorchSam2.Evaluation;

/// <summary>One reported object: its video, its label as the official table prints it ("001"), J and F in percent.</summary>
public sealed record VosObjectScore(string Video, string Object, double J, double F)
{
    public double JF => (J + F) / 2;
}

/// <summary>The objects of one video and their means (the official tools report objects only; the video mean is ours).</summary>
public sealed record VosVideoScore(string Name, IReadOnlyList<VosObjectScore> Objects)
{
    public double J => VosMetrics.NumpyMean(Objects.Select(o => o.J).ToList());
    public double F => VosMetrics.NumpyMean(Objects.Select(o => o.F).ToList());
    public double JF => (J + F) / 2;
}

/// <summary>
/// The result of <see cref="VosBenchmark.Evaluate"/>: per object and video, and the global score (the mean J and the
/// mean F over all objects of all videos; J&amp;F is their mean).
/// </summary>
public sealed record VosBenchmarkResult(IReadOnlyList<VosVideoScore> Videos, bool SkippedFirstAndLast)
{
    public IEnumerable<VosObjectScore> Objects => Videos.SelectMany(v => v.Objects);
    public double GlobalJ => VosMetrics.NumpyMean(Objects.Select(o => o.J).ToList());
    public double GlobalF => VosMetrics.NumpyMean(Objects.Select(o => o.F).ToList());
    public double GlobalJF => (GlobalJ + GlobalF) / 2;

    /// <summary>The official <c>results.csv</c>: header, the Global score row, then one row per object.</summary>
    public string ToCsv()
    {
        static string Right4(double v) => VosMetrics.Format1(v).PadLeft(4);
        int ml = Math.Max("Global score".Length, Videos.Count == 0 ? 0 : Videos.Max(v => v.Name.Length));
        var sb = new StringBuilder();
        sb.Append($"{"sequence".PadRight(ml)},{"obj",3}, {"J&F",4}, {"J",4}, {"F",4}\n");
        sb.Append($"{"Global score".PadRight(ml)},{"",3}, {VosMetrics.Format1(GlobalJF)}, {VosMetrics.Format1(GlobalJ)}, {VosMetrics.Format1(GlobalF)}\n");
        foreach (var v in Videos)
            foreach (var o in v.Objects)
                sb.Append($"{v.Name.PadRight(ml)},{o.Object}, {Right4(o.JF)}, {Right4(o.J)}, {Right4(o.F)}\n");
        return sb.ToString();
    }

    /// <summary>The table as the official evaluator prints it (the CSV with commas as spaces).</summary>
    public string ToTable() => ToCsv().Replace(',', ' ');

    /// <summary>The official summary line.</summary>
    public string Summary => $"Global score: J&F: {VosMetrics.Format1(GlobalJF)} J: {VosMetrics.Format1(GlobalJ)} F: {VosMetrics.Format1(GlobalF)}";
}

/// <summary>Options of <see cref="VosBenchmark.Evaluate"/> (the official evaluator's flags).</summary>
public sealed record VosBenchmarkOptions
{
    /// <summary>Skip the first and the last frame of each video (standard for semi-supervised VOS; --do_not_skip_first_and_last_frame turns it off).</summary>
    public bool SkipFirstAndLast { get; init; } = true;
    /// <summary>Every ground-truth video must have a prediction and vice versa (-s/--strict); else the videos present in both.</summary>
    public bool Strict { get; init; }
    /// <summary>Videos evaluated at once (0 = one per processor).</summary>
    public int Parallelism { get; init; }
}

/// <summary>
/// The official SA-V / DAVIS evaluator (sav_dataset/sav_evaluator.py, utils/sav_benchmark.py) over two folders of the
/// same layout: DAVIS (<c>VIDEO/FRAME.png</c>, pixel = object id) or SA-V (<c>VIDEO/OBJECT/FRAME.png</c>, one
/// binary mask per object and frame). Every ground-truth frame must have a prediction of the same size; predicted
/// frames without ground truth are ignored.
/// </summary>
public static class VosBenchmark
{
    /// <summary>The videos that will be evaluated (sorted by name) and the ground-truth root actually used.</summary>
    public static (string gtRoot, IReadOnlyList<string> videos) SelectVideos(string gtRoot, string predRoot, bool strict)
    {
        if (!Directory.Exists(gtRoot)) throw new DirectoryNotFoundException($"ground-truth folder not found: {gtRoot}");
        if (!Directory.Exists(predRoot)) throw new DirectoryNotFoundException($"prediction folder not found: {predRoot}");
        var gtEntries = Directory.EnumerateFileSystemEntries(gtRoot).Select(Path.GetFileName).ToList();
        var predEntries = Directory.EnumerateFileSystemEntries(predRoot).Select(Path.GetFileName).ToList();
        // as the official tool: the dataset root was given instead of its Annotations folder
        if (gtEntries.Count != predEntries.Count && gtEntries.Contains("Annotations"))
        {
            var ann = Path.Combine(gtRoot, "Annotations");
            var first = Directory.EnumerateFileSystemEntries(ann).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).FirstOrDefault();
            if (first is not null && !first.Contains(".png", StringComparison.Ordinal))
            {
                gtRoot = ann;
                gtEntries = Directory.EnumerateFileSystemEntries(gtRoot).Select(Path.GetFileName).ToList();
            }
        }
        var gtVideos = gtEntries.Where(n => Directory.Exists(Path.Combine(gtRoot, n!))).Select(n => n!).ToHashSet(StringComparer.Ordinal);
        var predVideos = predEntries.Where(n => Directory.Exists(Path.Combine(predRoot, n!))).Select(n => n!).ToHashSet(StringComparer.Ordinal);
        List<string> videos;
        if (strict)
        {
            var missing = gtVideos.Except(predVideos).OrderBy(n => n, StringComparer.Ordinal).ToList();
            var extra = predVideos.Except(gtVideos).OrderBy(n => n, StringComparer.Ordinal).ToList();
            if (missing.Count > 0 || extra.Count > 0)
                throw new InvalidDataException(
                    (missing.Count > 0 ? $"{missing.Count} video(s) have no prediction ({Names(missing)})" : "") +
                    (missing.Count > 0 && extra.Count > 0 ? "; " : "") +
                    (extra.Count > 0 ? $"{extra.Count} predicted video(s) have no ground truth ({Names(extra)})" : ""));
            videos = gtVideos.ToList();
        }
        else
        {
            videos = gtVideos.Intersect(predVideos).ToList();
        }
        videos.Sort(StringComparer.Ordinal);
        return (gtRoot, videos);
    }

    private static string Names(List<string> n) => string.Join(", ", n.Take(5)) + (n.Count > 5 ? ", ..." : "");

    /// <summary>Evaluates every selected video; <paramref name="videoDone"/> is called after each (any thread).</summary>
    public static VosBenchmarkResult Evaluate(string gtRoot, string predRoot, VosBenchmarkOptions? options = null, Action<string>? videoDone = null)
    {
        options ??= new VosBenchmarkOptions();
        var (root, videos) = SelectVideos(gtRoot, predRoot, options.Strict);
        var results = new VosVideoScore[videos.Count];
        int par = options.Parallelism > 0 ? options.Parallelism : Environment.ProcessorCount;
        try
        {
            Parallel.For(0, videos.Count, new ParallelOptions { MaxDegreeOfParallelism = par }, i =>
            {
                results[i] = EvaluateVideo(Path.Combine(root, videos[i]), Path.Combine(predRoot, videos[i]), videos[i], options.SkipFirstAndLast);
                videoDone?.Invoke(videos[i]);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            // one error, as a sequential run would report it
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
            throw;
        }
        return new VosBenchmarkResult(results, options.SkipFirstAndLast);
    }

    /// <summary>VideoEvaluator.__call__: one video in either layout.</summary>
    public static VosVideoScore EvaluateVideo(string gtVideo, string predVideo, string name, bool skipFirstAndLast = true)
    {
        var entries = Directory.EnumerateFileSystemEntries(gtVideo).Select(p => Path.GetFileName(p)).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (entries.All(n => n.EndsWith(".png", StringComparison.Ordinal)))
        {
            // DAVIS: one label map per frame, all objects in it
            var ev = new VosSequenceEvaluator();
            foreach (var frame in Frames(entries, skipFirstAndLast))
            {
                var (gt, pred) = Load(gtVideo, predVideo, frame, sav: false);
                ev.FeedFrame(pred.Labels, gt.Labels, gt.Height, gt.Width);
            }
            return new VosVideoScore(name, ev.Conclude().Select(o => new VosObjectScore(name, PyObjectLabel(o.obj), o.j, o.f)).ToList());
        }
        // SA-V: one folder per object, binary masks
        var objects = new List<VosObjectScore>();
        foreach (var obj in entries)
        {
            string gtObj = Path.Combine(gtVideo, obj), predObj = Path.Combine(predVideo, obj);
            if (!Directory.Exists(gtObj))
                throw new InvalidDataException($"'{Path.Combine(gtVideo, obj)}': a video folder holds either only .png frames (DAVIS) or only object folders (SA-V)");
            var frames = Directory.EnumerateFileSystemEntries(gtObj).Select(p => Path.GetFileName(p)).OrderBy(n => n, StringComparer.Ordinal).ToList();
            var ev = new VosSequenceEvaluator();
            foreach (var frame in Frames(frames, skipFirstAndLast))
            {
                var (gt, pred) = Load(gtObj, predObj, frame, sav: true);
                ev.FeedFrame(pred.Labels, gt.Labels, gt.Height, gt.Width);
            }
            var scores = ev.Conclude();
            if (scores.Count != 1)
                throw new InvalidDataException($"video '{name}', object '{obj}': the ground truth is empty on every evaluated frame (the official evaluator stops here too)");
            objects.Add(new VosObjectScore(name, PyStringLabel(obj), scores[0].j, scores[0].f));
        }
        return new VosVideoScore(name, objects);
    }

    private static IEnumerable<string> Frames(List<string> all, bool skip) =>
        skip ? all.Skip(1).Take(Math.Max(0, all.Count - 2)) : all;

    private static (LabelMap gt, LabelMap pred) Load(string gtDir, string predDir, string frame, bool sav)
    {
        string gtPath = Path.Combine(gtDir, frame), predPath = Path.Combine(predDir, frame);
        if (!File.Exists(predPath)) throw new FileNotFoundException($"prediction not found: {predPath} (every ground-truth frame needs one)", predPath);
        var gt = LabelPng.Read(gtPath);
        var pred = LabelPng.Read(predPath);
        if (gt.Height != pred.Height || gt.Width != pred.Width)
            throw new InvalidDataException($"size mismatch: {gtPath} is {gt.Width}x{gt.Height}, {predPath} is {pred.Width}x{pred.Height}");
        if (sav)
        {
            gt = Binary(gt, gtPath);
            pred = Binary(pred, predPath);
        }
        return (gt, pred);
    }

    // SA-V: one object per PNG (at most two distinct values), any non-zero pixel is the object (label 1)
    private static LabelMap Binary(LabelMap m, string path)
    {
        var l = m.Labels;
        var distinct = new HashSet<int>();
        var b = new int[l.Length];
        for (int i = 0; i < l.Length; i++)
        {
            if (distinct.Count < 3) distinct.Add(l[i]);
            if (l[i] != 0) b[i] = 1;
        }
        if (distinct.Count > 2) throw new InvalidDataException($"found more than one object in {path}; the SA-V layout holds one object mask per PNG");
        return m with { Labels = b };
    }

    /// <summary>The obj column of an integer id: f"{id:03}".</summary>
    public static string PyObjectLabel(int id) => id.ToString("D3", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The obj column of an SA-V object folder name: f"{name:03}" on a string pads on the right with '0'.</summary>
    public static string PyStringLabel(string name) => name.PadRight(3, '0');
}
