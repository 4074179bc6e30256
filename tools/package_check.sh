#!/usr/bin/env bash
# The packages as a .NET user gets them (tools/test.sh runs this after the tests; needs the Release build):
#   1. dotnet pack: TorchSam2, TorchSam2.Checkpoints and the tool TorchSam2.Cli into a local folder, under a version of
#      this run's own (NuGet caches packages by id and version: a fixed one would be served stale);
#   2. installs the tool from that folder into a temporary tool path and runs `torchsam2 info` and a `segment` with the
#      shipped demo model (--checkpoint glyph-demo) through it;
#   3. builds samples/TorchSam2.Sample against the local TorchSam2 package plus libtorch-cpu-linux-x64 and segments the
#      same image with the same click: score and mask area must be the tool's.
# Nothing is downloaded: the feed is the local folder, everything else comes from the NuGet cache the build filled.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${CONFIGURATION:-Release}"
version="0.1.0-local.$(date -u +%Y%m%d%H%M%S).$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/torchsam2-packages.XXXXXX")"
nuget_cache="${NUGET_PACKAGES:-$HOME/.nuget/packages}"
cleanup() {
  rm -rf "$work" "$nuget_cache/torchsam2/$version" "$nuget_cache/torchsam2.checkpoints/$version"
}
trap cleanup EXIT
step() { echo "package_check: $* ($(date -u +%T))"; }

step "packing $version"
# the tool packs what Publish leaves in the publish folder: start it empty
rm -rf "src/TorchSam2.Cli/bin/$config/net10.0/publish"
dotnet pack TorchSam2.sln -c "$config" --no-build -nologo -v:q -p:PackageVersion="$version" -p:NuspecOutputPath="$work/nuspec/" -o "$work/feed"
for p in TorchSam2 TorchSam2.Checkpoints TorchSam2.Cli; do
  [ -f "$work/feed/$p.$version.nupkg" ] && [ -f "$work/feed/$p.$version.snupkg" ] || { echo "package_check: $p.$version.nupkg/.snupkg missing" >&2; exit 1; }
done
# the library carries no libtorch backend; the tool carries the CPU one
grep -q '<dependency id="TorchSharp" ' "$work/nuspec/TorchSam2.$version.nuspec" \
  || { echo "package_check: the TorchSam2 package must depend on TorchSharp" >&2; exit 1; }
if grep -Eqi '<dependency id="(libtorch|TorchSharp-)' "$work/nuspec/TorchSam2.$version.nuspec"; then
  echo "package_check: the TorchSam2 package must not depend on a libtorch backend" >&2; exit 1
fi
cat > "$work/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$work/feed" />
  </packageSources>
</configuration>
XML

step "installing the tool"
dotnet tool install --tool-path "$work/tool" --configfile "$work/nuget.config" TorchSam2.Cli --version "$version" >/dev/null
export DOTNET_ROOT="${DOTNET_ROOT:-$(dirname "$(readlink -f "$(command -v dotnet)")")}"
export TORCHSAM2_CACHE="$work/cache"
tool="$work/tool/torchsam2"
"$tool" info
"$tool" info | grep -q "^libtorch .*$work/tool/" || { echo "package_check: the installed tool did not load its own libtorch" >&2; exit 1; }

image=weights/glyph-demo/specimen.png
step "segment with the installed tool"
"$tool" segment "$image" --checkpoint glyph-demo --point 44,26 --out "$work/out"
read -r tool_score tool_area < <(grep -o '"score": *[-0-9.eE+]*\|"area": *[0-9]*' "$work/out/masks.json" | head -2 | awk -F: '{printf "%s ", $2} END {print ""}')

step "building samples/TorchSam2.Sample on the TorchSam2 package"
sample=samples/TorchSam2.Sample
dotnet restore "$sample" --configfile "$work/nuget.config" -p:TorchSam2Version="$version" -v:q -nologo
dotnet build "$sample" -c Release --no-restore -nologo -v:q -p:TorchSam2Version="$version" -o "$work/sample"
line=$(dotnet "$work/sample/TorchSam2.Sample.dll" "$image" 44 26 glyph-demo)
echo "$line"
sample_score=$(sed -n 's/.*score \([-0-9.]*\),.*/\1/p' <<<"$line")
sample_area=$(sed -n 's/.*mask area \([0-9]*\) px.*/\1/p' <<<"$line")
awk -v a="$tool_score" -v b="$sample_score" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-4) }' \
  || { echo "package_check: the sample's score $sample_score is not the tool's $tool_score" >&2; exit 1; }
[ "$sample_area" = "$tool_area" ] || { echo "package_check: the sample's mask area $sample_area is not the tool's $tool_area" >&2; exit 1; }
step "ok: packages $version, tool and sample agree (score $sample_score, area $sample_area px)"
