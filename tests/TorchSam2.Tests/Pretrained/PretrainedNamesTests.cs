using TorchSam2.Checkpoints;
using TorchSam2.Configs;
using TorchSam2.Modeling;
using TorchSam2.Pretrained;

namespace TorchSam2.Tests.Pretrained;

/// <summary>Checkpoint names, their URLs and configs, the shipped manifests, and the embedded demo model.</summary>
public class PretrainedNamesTests
{
    [Theory]
    [InlineData("tiny", "sam2.1_hiera_tiny", "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt", "sam2.1_hiera_t")]
    [InlineData("small", "sam2.1_hiera_small", "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt", "sam2.1_hiera_s")]
    [InlineData("base-plus", "sam2.1_hiera_base_plus", "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt", "sam2.1_hiera_b+")]
    [InlineData("base_plus", "sam2.1_hiera_base_plus", "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_base_plus.pt", "sam2.1_hiera_b+")]
    [InlineData("Large", "sam2.1_hiera_large", "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_large.pt", "sam2.1_hiera_l")]
    [InlineData("sam2.1_hiera_tiny.pt", "sam2.1_hiera_tiny", "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt", "sam2.1_hiera_t")]
    [InlineData("facebook/sam2.1-hiera-small", "sam2.1_hiera_small", "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_small.pt", "sam2.1_hiera_s")]
    [InlineData("sam2_hiera_tiny", "sam2_hiera_tiny", "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_tiny.pt", "sam2_hiera_t")]
    [InlineData("sam2_hiera_b+", "sam2_hiera_base_plus", "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_base_plus.pt", "sam2_hiera_b+")]
    [InlineData("sam2_hiera_large", "sam2_hiera_large", "https://dl.fbaipublicfiles.com/segment_anything_2/072824/sam2_hiera_large.pt", "sam2_hiera_l")]
    public void NamesResolveToTheOfficialUrlsAndConfigs(string name, string canonical, string url, string config)
    {
        Assert.True(PretrainedCheckpoints.TryFind(name, out var c));
        Assert.Equal(canonical, c.Name);
        Assert.Equal(url, CheckpointStore.DownloadUrl(c, new CheckpointStoreOptions { DownloadBase = CheckpointStore.DefaultDownloadBase }).ToString());
        Assert.Equal(config, c.Config);
        Assert.Equal(canonical + ".pt", c.FileName);
    }

    [Theory]
    [InlineData("huge")]
    [InlineData("models/tiny")]
    [InlineData("sam3_hiera_tiny")]
    [InlineData("")]
    public void OtherStringsAreNoNames(string name) => Assert.False(PretrainedCheckpoints.TryFind(name, out _));

    [Fact]
    public void TheDownloadBaseComesFromTheEnvironmentWhenNotGiven()
    {
        var c = PretrainedCheckpoints.Find("tiny");
        Assert.Equal("http://127.0.0.1:9/mirror/092824/sam2.1_hiera_tiny.pt",
                     CheckpointStore.DownloadUrl(c, new CheckpointStoreOptions { DownloadBase = "http://127.0.0.1:9/mirror/" }).ToString());
    }

    [Fact]
    public void TheCacheFolderFollowsTheOptionThenTheEnvironment()
    {
        Assert.Equal(Path.GetFullPath("/tmp/x/y"), CheckpointStore.CacheDir(new CheckpointStoreOptions { CacheDir = "/tmp/x/y" }));
        // without the option: TORCHSAM2_CACHE if set, else XDG_CACHE_HOME/torchsam2 or ~/.cache/torchsam2
        string dir = CheckpointStore.CacheDir(new CheckpointStoreOptions());
        string? env = Environment.GetEnvironmentVariable(CheckpointStore.CacheVariable);
        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string expected = !string.IsNullOrEmpty(env) ? Path.GetFullPath(env)
            : !string.IsNullOrEmpty(xdg) ? Path.Combine(xdg, "torchsam2")
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "torchsam2");
        Assert.Equal(expected, dir);
    }

    [Fact]
    public void EveryCatalogEntryHasItsManifestAndConfig()
    {
        foreach (var c in PretrainedCheckpoints.All.Where(c => !c.IsEmbedded))
        {
            var m = c.Manifest!();
            // the size's trunk width: tiny/small 96, base+ 112, large 144 (the first patch-embedding dimension)
            long width = m.Tensors["image_encoder.trunk.patch_embed.proj.weight"].Shape[0];
            Assert.Equal(c.Name.EndsWith("tiny") || c.Name.EndsWith("small") ? 96 : c.Name.EndsWith("base_plus") ? 112 : 144, width);
            Assert.Equal(c.Name.StartsWith("sam2.1"), m.Tensors.ContainsKey("no_obj_embed_spatial"));
            Assert.All(m.Tensors.Values, t => Assert.Equal("float32", t.DType));
            Assert.NotNull(Sam2ConfigLoader.LoadBuiltIn(c.Config));
        }
        Assert.Equal(471, PretrainedCheckpoints.Find("tiny").Manifest!().Tensors.Count);
        Assert.Equal(468, PretrainedCheckpoints.Find("sam2_hiera_tiny").Manifest!().Tensors.Count);
    }

    [Fact]
    public void TheShippedTinyManifestMatchesTheReferenceTinyWeightsButForTheirDtype()
    {
        // tiny_full_image holds the official tiny weights (as float16): same keys and shapes as the manifest
        string weights = Path.Combine(TestPaths.ParityDir, "tiny_full_image", "weights.safetensors");
        if (!ParityData.Require(weights)) return;
        using var reader = CheckpointReader.Open(weights);
        var diffs = PretrainedCheckpoints.Find("tiny").Manifest!().Differences(reader, max: 1000);
        Assert.Equal(471, diffs.Count);
        Assert.All(diffs, d => Assert.EndsWith(" is float16, expected float32", d));
    }

    [Fact]
    public void TheSam20ManifestIsWhatTheSam20ConfigBuilds()
    {
        // the SAM 2.0 manifests are derived from SAM 2.1's (no official SAM 2.0 manifest is shipped): the model the
        // sam2_hiera_t config builds must have exactly those keys and shapes
        using var model = BuildSam.build_sam2("sam2_hiera_t");
        var sd = model.state_dict();
        var manifest = PretrainedCheckpoints.Find("sam2_hiera_tiny").Manifest!();
        Assert.Equal(manifest.Tensors.Keys.Order(StringComparer.Ordinal), sd.Keys.Order(StringComparer.Ordinal));
        foreach (var (k, t) in manifest.Tensors) Assert.Equal(t.Shape, sd[k].shape);
    }

    [Fact]
    public void TheEmbeddedDemoModelIsWrittenToTheCacheAndBringsItsConfig()
    {
        string cache = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "cache_" + Guid.NewGuid().ToString("N"));
        try
        {
            var o = new CheckpointStoreOptions { CacheDir = cache, Offline = true, DownloadBase = "http://127.0.0.1:9" };
            string path = CheckpointStore.Resolve("glyph-demo", o);
            Assert.Equal(cache, Path.GetDirectoryName(path));
            Assert.Equal(File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "weights", "glyph-demo", "model.safetensors")), File.ReadAllBytes(path));
            Assert.Equal("sam2_glyph_demo", CheckpointStore.ConfigFor("glyph-demo", o));
            Assert.Equal("sam2_glyph_demo", CheckpointStore.ConfigFor(path, o));
            Assert.Equal("sam2_glyph_demo", ModelLoader.ConfigFor(path, o));
            using var model = ModelLoader.Load("glyph-demo", options: o);
            Assert.Equal(256, model.image_size); // configs/glyph/sam2_glyph_demo.yaml
            Assert.Equal(path, CheckpointStore.Resolve("glyph-demo", o)); // written once
            Assert.Equal("glyph-demo", Assert.Single(CheckpointStore.List(o)).Name);
            Assert.Single(CheckpointStore.Clear(null, o));
            Assert.Empty(CheckpointStore.List(o));
        }
        finally
        {
            if (Directory.Exists(cache)) Directory.Delete(cache, true);
        }
    }

    [Fact]
    public void TheVideoPredictorBuildsFromAName()
    {
        string cache = Path.Combine(Path.GetTempPath(), "torchsam2-tests", "cache_" + Guid.NewGuid().ToString("N"));
        var saved = CheckpointStore.Defaults;
        try
        {
            // Build(name) with no checkpoint loads the named checkpoint with its config (through the default options)
            CheckpointStore.Defaults = new CheckpointStoreOptions { CacheDir = cache, Offline = true };
            using (var p = Sam2VideoPredictor.Build("glyph-demo")) Assert.Equal(256, p.ImageSize);
            using (var p = Sam2VideoPredictor.FromPretrained("glyph-demo")) Assert.Equal(256, p.ImageSize);
            Assert.Single(CheckpointStore.List());
            // a config path (or a config given as such) still builds what it says
            using (var p = Sam2VideoPredictor.Build(BuildSam.LoadConfig("sam2_glyph_demo"))) Assert.Equal(256, p.ImageSize);
        }
        finally
        {
            CheckpointStore.Defaults = saved;
            if (Directory.Exists(cache)) Directory.Delete(cache, true);
        }
    }

    [Fact]
    public void AnUnknownCheckpointSaysItIsNeitherAFileNorAName()
    {
        var e = Assert.Throws<FileNotFoundException>(() => CheckpointStore.Resolve("no_such_model.pt", new CheckpointStoreOptions { Offline = true }));
        Assert.Contains("neither a file nor a known name", e.Message);
        Assert.Contains("sam2.1_hiera_large", e.Message);
    }
}
