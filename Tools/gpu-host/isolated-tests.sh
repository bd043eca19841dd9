#!/usr/bin/env bash
# Runs the GPU tests that concern the whole process, each alone in a process of its own: the
# memory-growth test (it measures the process) and the global-mode capture beside host-data calls
# (a global-mode capture is process-wide: any other test's allocation meanwhile invalidates it).
# Together in one process their suites run in parallel and fail each other.
# Usage: isolated-tests.sh [SECONDS]   Needs .gpu-bundle (../shared/tools/gpu-bundle --product nvfp4).
set -u
limit=${1:-300}
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/.gpu-bundle/env.sh"
export NVFP4_CACHE_DIR=${NVFP4_CACHE_DIR:-/tmp/nvfp4-cache} NVFP4_REQUIRE_GPU=1 NVFP4_REQUIRE_NVRTC=1 NVFP4_ISOLATED=1
failed=0
for filter in ResourceHygiene hostCallsBesideGlobalCapture; do
    timeout "$limit" "$root/.gpu-bundle/tests.xctest" --testing-library swift-testing --filter "$filter" >"/tmp/isolated-$filter.log" 2>&1 || failed=1
    echo "$filter: $(grep -E 'Test run with' "/tmp/isolated-$filter.log" | tail -1)"
    grep -E '✘' "/tmp/isolated-$filter.log" | head -5
done
exit $failed
