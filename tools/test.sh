#!/usr/bin/env bash
# Sets up (idempotent) and runs every test. Parity cases come from $TORCHSAM2_PARITY_DIR
# (default ../shared/parity beside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
status=0
dotnet test TorchSam2.sln -c "${CONFIGURATION:-Release}" --no-build -nologo -v:q 2>&1 | tee /tmp/torchsam2-test.log || status=$?
# A closing line CI can read.
passed=$(grep -Eo "Passed: +[0-9]+" /tmp/torchsam2-test.log | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo "Failed: +[0-9]+" /tmp/torchsam2-test.log | awk '{s+=$2} END {print s+0}')
skipped=$(grep -Eo "Skipped: +[0-9]+" /tmp/torchsam2-test.log | awk '{s+=$2} END {print s+0}')
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
tests_ok=0
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] && tests_ok=1
# The NuGet packages, the dotnet tool installed from them, and a sample project on the library package
# (tools/package_check.sh, about 1.5 min on 2 cores; TORCHSAM2_SKIP_PACKAGES=1 skips it locally).
packages=0
if [ "${TORCHSAM2_SKIP_PACKAGES:-}" != "1" ]; then
  bash tools/package_check.sh || packages=$?
  echo "packages: $([ "$packages" -eq 0 ] && echo ok || echo "FAILED (exit $packages)")"
fi
[ "$tests_ok" -eq 1 ] && [ "$packages" -eq 0 ]
