#!/usr/bin/env bash
# The compute-sanitizer matrix on the GPU host: for each tool, the GPU test suite (quick catalog,
# without the 2^32-pattern sweeps) split into shards by suite, and CASES fuzz cases; every run of
# every tool in parallel.
# Usage: sanitizer-matrix.sh LOG_DIR [CASES] [SEED] [TOOLS] [SECONDS]
#
# - The fuzz cases run once without a sanitizer first, so the sanitized run loads its kernels from
#   the disk cache instead of compiling them.
# - `--report-api-errors no`: one driver test provokes CUDA_ERROR_NOT_FOUND on purpose.
# - `--target-processes application-only`: the CLI tests spawn `nvfp4` processes, and following
#   them made compute-sanitizer (CUDA 13.0) itself crash with SIGSEGV (4 of 4 runs, H100,
#   2026-11-27). The CLI's GPU path is sanitized through the fuzz cases, which run the unwrapped
#   binary (`.real/nvfp4`; `bin/nvfp4` is a shell wrapper the sanitizer would not follow).
# - Shards: with every GPU suite in one process, racecheck made no progress for 515 s; one shard
#   per GPU suite finishes in at most ~140 s.
# Exits non-zero when any run reports an error or is cut off.
set -u
logs=$1 cases=${2:-200} seed=${3:-2026112701} tools=${4:-"memcheck racecheck initcheck synccheck"} limit=${5:-540}
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/.gpu-bundle/env.sh"
export NVFP4_CACHE_DIR=${NVFP4_CACHE_DIR:-/tmp/nvfp4-cache} NVFP4_REQUIRE_GPU=1 NVFP4_REQUIRE_NVRTC=1
export NVFP4_GPU_CATALOG=quick NVFP4_CLI="$root/.gpu-bundle/bin/nvfp4"
cli="$root/.gpu-bundle/.real/nvfp4" tests="$root/.gpu-bundle/tests.xctest"
gpuSuites="FusedGPUTests QuantizerGPUTests ConcurrencyGPUTests RoutingLayoutGPUTests WideBlockGPUTests SmallKernelGPUTests DeviceValidationGPUTests|HostileDeviceCallTests|DriverGPUTests|CurrentContextGPUTests|HugeShapeGPUTests|ResourceHygieneGPUTests"
mkdir -p "$logs"
"$cli" selftest --fuzz "$cases" --seed "$seed" --device cuda >"$logs/prewarm.out" 2>&1
sanitize() {
    timeout "$limit" compute-sanitizer --tool "$1" --report-api-errors no --target-processes application-only \
        --error-exitcode 9 "${@:2}"
}
for tool in $tools; do
    for shard in $gpuSuites; do
        sanitize "$tool" "$tests" --testing-library swift-testing --filter "$shard" --skip AllPatterns \
            >"$logs/$tool-suite-${shard%%|*}.log" 2>&1 &
    done
    sanitize "$tool" "$tests" --testing-library swift-testing --skip "AllPatterns|${gpuSuites// /|}" \
        >"$logs/$tool-suite-rest.log" 2>&1 &
    sanitize "$tool" "$cli" selftest --fuzz "$cases" --seed "$seed" --device cuda >"$logs/$tool-fuzz.log" 2>&1 &
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
for log in "$logs"/*-suite-*.log "$logs"/*-fuzz.log; do
    echo "$(basename "$log" .log): $(grep -E '^========= (ERROR|RACECHECK) SUMMARY' "$log" | tail -1)" \
        "| $(grep -E '^selftest:|Test run with' "$log" | tail -1 | cut -c1-110)"
done
exit $failed
