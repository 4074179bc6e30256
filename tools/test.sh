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
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
