#!/usr/bin/env bash
# Runs the GPU fuzz harness as parallel shards on the GPU host: NVRTC compiles dominate a case,
# so shards on separate cores multiply the case rate. Shard i runs `nvfp4 selftest --fuzz CASES
# --seed BASE+i --device cuda`; distinct run seeds give distinct case seeds.
# Usage: fuzz-shards.sh SHARDS CASES BASE_SEED LOG_DIR [SECONDS]
# Needs .gpu-bundle (../shared/tools/gpu-bundle --product nvfp4). Prints one summary line per
# shard and the total; exits non-zero on any mismatch or shard failure.
set -u
shards=$1 cases=$2 base=$3 logs=$4 limit=${5:-540}
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/.gpu-bundle/env.sh"
export NVFP4_CACHE_DIR=${NVFP4_CACHE_DIR:-/tmp/nvfp4-cache} NVFP4_REQUIRE_GPU=1
mkdir -p "$logs"
for i in $(seq 0 $((shards - 1))); do
    seed=$((base + i))
    timeout "$limit" "$root/.gpu-bundle/bin/nvfp4" selftest --fuzz "$cases" --seed "$seed" \
        --device cuda --out "$logs/reproducers-$seed" >"$logs/shard-$seed.out" 2>"$logs/shard-$seed.err" &
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
total=0
for i in $(seq 0 $((shards - 1))); do
    seed=$((base + i))
    line=$(grep '^selftest:' "$logs/shard-$seed.out" | tail -1)
    if [ -n "$line" ]; then
        echo "shard $seed: $line"; total=$((total + cases))
    else
        echo "shard $seed: unfinished; last progress: $(tail -1 "$logs/shard-$seed.err")"
    fi
    grep -h '^MISMATCH' "$logs/shard-$seed.out" | head -5
done
echo "finished cases: $total (shards $shards x $cases, run seeds $base..$((base + shards - 1)))"
exit $failed
