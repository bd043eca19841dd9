#!/usr/bin/env bash
# Builds the harness for each K (from a copy of the kernel with tuning knobs applied) and runs a
# few shapes. Env: UNROLL (loads in flight per lane), THREADS and MINBLOCKS (launch bounds; the
# kernel's by default), BLOCK (threads a launch: 256, or 1024 for row units only), TAG,
# SILU=1 (bfloat16 SiLU·mul + quantize with the stand-in silu table: times and output hashes),
# GATHER=1 (gather + quantize: times and output hashes), GRAPH=1 (graph-replay timing).
set -e
cd "$(dirname "$0")"
# Launch bounds: the kernel's own unless THREADS or MINBLOCKS is given (MINBLOCKS alone: 256 threads).
if [ -n "${THREADS:-}${MINBLOCKS:-}" ]; then bounds="${THREADS:-256}, ${MINBLOCKS:-1}"; else bounds="kTunedMaxThreads, kTunedMinBlocks"; fi
sed -e "s/constexpr int kTunedUnroll = .*;/constexpr int kTunedUnroll = kColumnSteps < ${UNROLL:-2} ? kColumnSteps : ${UNROLL:-2};/" \
    -e "s/__launch_bounds__([^)]*) nvfp4_quantize_tuned/__launch_bounds__($bounds) nvfp4_quantize_tuned/" \
    <(if [ -n "$KERNEL" ]; then cat "$KERNEL"; else SILU_STANDIN=${SILU:-} bash join.sh; fi) > kernel.cu
for K in ${KS:-2048 7168}; do
  nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Xptxas -v -DNVFP4_HIDDEN_SIZE=$K -DNVFP4_INPUT_BF16=1 -DNVFP4_SWIZZLED=1 -DNVFP4_HARDWARE_E2M1=0 -DNVFP4_BLOCK_SIZE=16 -DNVFP4_SCALE_UE8M0=0 -DNVFP4_SILU_MUL=${SILU:-0} -DNVFP4_ROW_MAP=${GATHER:-0} -o h$K harness.cu 2>&1 | grep -A1 "nvfp4_quantize_tuned" | grep Used || true
done
echo "== ${TAG:-default} UNROLL=${UNROLL:-2} bounds ($bounds) BLOCK=${BLOCK:-256}"
for K in ${KS:-2048 7168}; do
  for E in ${ES:-8 256}; do
    for M in ${MS:-16 128 8192 65536}; do ./h$K $M $E; done
  done
done
if [ -n "$E2M1CHECK" ]; then
  nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -DNVFP4_HIDDEN_SIZE=16 -DNVFP4_INPUT_BF16=1 -DNVFP4_SWIZZLED=1 -DNVFP4_HARDWARE_E2M1=0 -DNVFP4_BLOCK_SIZE=16 -DNVFP4_SCALE_UE8M0=0 -DNVFP4_SILU_MUL=0 -DNVFP4_ROW_MAP=0 -o e2m1check e2m1check.cu && ./e2m1check
fi
