namespace TorchSam2.Configs;

/// <summary>Hiera trunk (<c>sam2.modeling.backbones.hieradet.Hiera</c>); defaults are Python's.</summary>
public sealed record HieraConfig
{
    public const string DefaultTarget = "sam2.modeling.backbones.hieradet.Hiera";

    public string Target { get; init; } = DefaultTarget;
    public int EmbedDim { get; init; } = 96;
    public int NumHeads { get; init; } = 1;
    public double DropPathRate { get; init; }
    /// <summary>Number of stages that pool q (downsample) at their first block.</summary>
    public int QPool { get; init; } = 3;
    public IReadOnlyList<int> QStride { get; init; } = [2, 2];
    /// <summary>Blocks per stage.</summary>
    public IReadOnlyList<int> Stages { get; init; } = [2, 3, 16, 3];
    public double DimMul { get; init; } = 2.0;
    public double HeadMul { get; init; } = 2.0;
    public IReadOnlyList<int> WindowPosEmbedBkgSpatialSize { get; init; } = [14, 14];
    /// <summary>Window size per stage (blocks not in <see cref="GlobalAttBlocks"/>).</summary>
    public IReadOnlyList<int> WindowSpec { get; init; } = [8, 4, 14, 7];
    public IReadOnlyList<int> GlobalAttBlocks { get; init; } = [12, 16, 20];
    public bool ReturnIntermLayers { get; init; } = true;
    public string? WeightsPath { get; init; }
    public IReadOnlyDictionary<string, object?> Raw { get; init; } = new Dictionary<string, object?>();

    /// <summary>Total number of blocks.</summary>
    public int TotalBlocks => Stages.Sum();

    /// <summary>Channels of each stage's output, as Hiera computes them (int(dim * dim_mul) per stage).</summary>
    public IReadOnlyList<int> StageDims
    {
        get
        {
            var dims = new int[Stages.Count];
            double d = EmbedDim;
            for (int i = 0; i < dims.Length; i++)
            {
                dims[i] = (int)d;
                d = (int)(d * DimMul);
            }
            return dims;
        }
    }

    /// <summary>Attention heads of each stage (int(heads * head_mul) per stage).</summary>
    public IReadOnlyList<int> StageHeads
    {
        get
        {
            var heads = new int[Stages.Count];
            double h = NumHeads;
            for (int i = 0; i < heads.Length; i++)
            {
                heads[i] = (int)h;
                h = (int)(h * HeadMul);
            }
            return heads;
        }
    }

    internal static HieraConfig From(ConfigMap m)
    {
        var d = new HieraConfig();
        var stages = m.Ints("stages", d.Stages, 1, ConfigLimits.MaxBlocksPerStage, 1, ConfigLimits.MaxStages);
        var c = new HieraConfig
        {
            Target = m.CheckedTarget(DefaultTarget, DefaultTarget),
            EmbedDim = m.Int("embed_dim", d.EmbedDim, 1, ConfigLimits.MaxChannels),
            NumHeads = m.Int("num_heads", d.NumHeads, 1, ConfigLimits.MaxHeads),
            DropPathRate = m.Double("drop_path_rate", d.DropPathRate, 0, 1, maxExclusive: true),
            QPool = m.Int("q_pool", d.QPool, 0, stages.Count - 1),
            QStride = m.Ints("q_stride", d.QStride, 1, 8, 2, 2),
            Stages = stages,
            DimMul = m.Double("dim_mul", d.DimMul, 1.0 / 64, 16),
            HeadMul = m.Double("head_mul", d.HeadMul, 1.0 / 64, 16),
            WindowPosEmbedBkgSpatialSize = m.Ints("window_pos_embed_bkg_spatial_size", d.WindowPosEmbedBkgSpatialSize, 1, 1024, 2, 2),
            WindowSpec = m.Ints("window_spec", d.WindowSpec, 1, 1024, stages.Count, stages.Count),
            GlobalAttBlocks = m.Ints("global_att_blocks", d.GlobalAttBlocks, 0, stages.Sum() - 1),
            ReturnIntermLayers = m.Bool("return_interm_layers", d.ReturnIntermLayers),
            WeightsPath = m.Raw.TryGetValue("weights_path", out object? w) ? w as string : null,
            Raw = m.Raw,
        };
        // Defaults must suit the stages given, too.
        if (c.QPool > stages.Count - 1) throw m.Fail("q_pool", $"{c.QPool} must be at most {stages.Count - 1} (one less than the stages)");
        if (c.WindowSpec.Count != stages.Count)
            throw m.Fail("window_spec", $"has {c.WindowSpec.Count} entries for {stages.Count} stages");
        if (c.GlobalAttBlocks.FirstOrDefault(b => b >= c.TotalBlocks, -1) is var g and >= 0)
            throw m.Fail("global_att_blocks", $"block {g} is beyond the {c.TotalBlocks} blocks of the stages");
        // Each stage's width (int(dim * dim_mul) per stage) must stay in range and split evenly over its heads.
        double dim = c.EmbedDim, heads = c.NumHeads;
        for (int i = 0; i < stages.Count; i++)
        {
            if (dim < 1 || dim > ConfigLimits.MaxStageChannels)
                throw m.Fail("dim_mul", $"stage {i} would have {dim:0.###} channels (embed_dim x dim_mul^{i}); allowed 1 to {ConfigLimits.MaxStageChannels:N0}");
            if (heads < 1 || heads > ConfigLimits.MaxHeads)
                throw m.Fail("head_mul", $"stage {i} would have {heads:0.###} heads (num_heads x head_mul^{i}); allowed 1 to {ConfigLimits.MaxHeads:N0}");
            if ((int)dim % (int)heads != 0)
                throw m.Fail("num_heads", $"stage {i} has {(int)dim} channels, which {(int)heads} heads do not divide");
            dim = (int)(dim * c.DimMul);
            heads = (int)(heads * c.HeadMul);
        }
        return c;
    }
}
