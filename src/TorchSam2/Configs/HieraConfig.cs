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
        return new HieraConfig
        {
            Target = m.Target ?? DefaultTarget,
            EmbedDim = m.Int("embed_dim", d.EmbedDim),
            NumHeads = m.Int("num_heads", d.NumHeads),
            DropPathRate = m.Double("drop_path_rate", d.DropPathRate),
            QPool = m.Int("q_pool", d.QPool),
            QStride = m.Ints("q_stride", d.QStride),
            Stages = m.Ints("stages", d.Stages),
            DimMul = m.Double("dim_mul", d.DimMul),
            HeadMul = m.Double("head_mul", d.HeadMul),
            WindowPosEmbedBkgSpatialSize = m.Ints("window_pos_embed_bkg_spatial_size", d.WindowPosEmbedBkgSpatialSize),
            WindowSpec = m.Ints("window_spec", d.WindowSpec),
            GlobalAttBlocks = m.Ints("global_att_blocks", d.GlobalAttBlocks),
            ReturnIntermLayers = m.Bool("return_interm_layers", d.ReturnIntermLayers),
            WeightsPath = m.Raw.TryGetValue("weights_path", out object? w) ? w as string : null,
            Raw = m.Raw,
        };
    }
}
