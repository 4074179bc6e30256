using TorchSam2.Configs;
using Xunit;

namespace TorchSam2.Tests.Configs;

public class YamlTreeTests
{
    [Theory]
    [InlineData("1e-6", 1e-6)]
    [InlineData("1e-06", 1e-6)]
    [InlineData("-1.5E+3", -1500.0)]
    [InlineData("10000.0", 10000.0)]
    [InlineData(".5", 0.5)]
    [InlineData("20.", 20.0)]
    public void ExponentAndDecimalFloatsAreNumbers(string text, double expected) =>
        Assert.Equal(expected, Assert.IsType<double>(YamlTree.ResolvePlain(text)));

    [Theory]
    [InlineData("7", 7L)]
    [InlineData("-10", -10L)]
    [InlineData("1_000", 1000L)]
    [InlineData("0x1F", 31L)]
    public void Integers(string text, long expected) => Assert.Equal(expected, YamlTree.ResolvePlain(text));

    [Theory]
    [InlineData("null")]
    [InlineData("~")]
    [InlineData("")]
    [InlineData("Null")]
    public void Nulls(string text) => Assert.Null(YamlTree.ResolvePlain(text));

    [Theory]
    [InlineData("True", true)]
    [InlineData("true", true)]
    [InlineData("FALSE", false)]
    [InlineData("no", false)]
    public void Booleans(string text, bool expected) => Assert.Equal(expected, YamlTree.ResolvePlain(text));

    [Theory]
    [InlineData("nearest")]
    [InlineData("sam2.modeling.sam2_base.SAM2Base")]
    [InlineData("1.2.3")]
    [InlineData("Infinity")]
    [InlineData("e5")]
    public void OtherTextStaysString(string text) => Assert.Equal(text, YamlTree.ResolvePlain(text));

    [Fact]
    public void AnchorsAliasesHeaderAndQuotedScalars()
    {
        const string yaml = """
            # @package _global_
            a:
              sizes: &id001
              - 16
              - 16
              quoted: "1e-6"
              single: 'true'
            b:
              sizes: *id001
              eps: 1e-6
            """;
        var root = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(YamlTree.Parse(yaml));
        var a = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(root["a"]);
        var b = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(root["b"]);
        Assert.Equal(new List<object?> { 16L, 16L }, b["sizes"]);
        Assert.Same(a["sizes"], b["sizes"]); // an alias is the anchored node, converted once
        Assert.Equal("1e-6", a["quoted"]); // quoting keeps strings
        Assert.Equal("true", a["single"]);
        Assert.Equal(1e-6, b["eps"]);
        Assert.Equal(["a", "b"], root.Keys);
    }

    [Fact]
    public void InvalidYamlReportsLine()
    {
        var e = Assert.Throws<Sam2ConfigException>(() => YamlTree.Parse("a: 1\n  - b: [\n"));
        Assert.Contains("invalid YAML at line 2", e.Message);
        var eof = Assert.Throws<Sam2ConfigException>(() => YamlTree.Parse("a: [1, 2\nb: 3\n"));
        Assert.Contains("invalid YAML", eof.Message);
    }

    [Fact]
    public void DuplicateKeysAreRejected()
    {
        var e = Assert.Throws<Sam2ConfigException>(() => YamlTree.Parse("a: 1\na: 2\n"));
        Assert.Contains("line 2", e.Message);
        Assert.Contains("Duplicate key", e.Message);
    }
}
