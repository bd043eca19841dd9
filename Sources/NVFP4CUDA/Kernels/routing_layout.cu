// routing_layout.cu — the expert-grouped layout of a routed batch, built from top-k ids.
//
// Purpose: the device twin of the CPU `RoutingLayout` (Sources/NVFP4/Layout/RoutingLayout.swift),
// value for value: per-expert row counts, input offsets, scale offsets (either rule), the
// permutation (destination row → source token) and each (t, k)'s destination row. One launch
// (three on the blocks path, routing_layout_blocks.cu), no allocation, no host synchronization,
// deterministic: it can be captured into a CUDA graph.
//
// Legend: T tokens, topk choices per token, N = T·topk flattened ids (i = t·topk + k), E local
// experts, A counting warps, W = blockDim.x / 32 warps in the block (W ≥ A).
//
// Grid mapping of nvfp4_routing_layout (N > 32, below the blocks path of
// routing_layout_blocks.cu, which reuses phases 2–5): ONE block of 32·W threads (W ≤ 32). Warp w < A
// counts, then scatters, the contiguous chunk of ids [w·chunk, min((w+1)·chunk, N)) (chunk a
// multiple of 32, chosen by the host so that A·chunk ≥ N); the threads of the whole block share
// the per-expert work. Phases, separated by __syncthreads:
//   1. zeroCounts      warpCounts[A][E] = 0
//   2. countRoutes     warp w: warpCounts[w][e] = #ids of its chunk equal to e. 32 ids at a
//                      time, grouped by matchingLanes (one ballot per bit of the id: MATCH.ANY
//                      serializes over distinct values and cost 78 µs at T = 4096); each
//                      group's lowest lane adds the group's size (a warp's groups have
//                      distinct ids: no atomics).
//   3. warpPrefixes    thread per expert (strided): warpCounts[w][e] becomes the exclusive
//                      prefix over warps, expertRows[e] the expert's count.
//   4. scanSegments    thread per run of consecutive experts: a block-wide exclusive scan of
//                      counts and of roundUp(count, 128) (warp shuffles, then one shuffle scan
//                      of the warp totals in every warp); writes counts, both offset tables,
//                      and expertRows[e] = off[e].
//   5. scatterRoutes   warp w again over its chunk: an id's row is off[e] + warpCounts[w][e]
//                      + its rank among equal ids earlier in the same 32 (popc(match & lanes
//                      below)); the group's lowest lane advances warpCounts[w][e].
// Rows of expert e therefore come in increasing flattened order i (stable, as on the CPU).
//
// Layouts (all int32):
//   topkIds          [N]      id of (t, k) at t·topk + k; −1 = not a local expert (skipped).
//                             Ids outside −1 ..< E are treated as −1 here (the host API
//                             rejects them before launching).
//   counts           [E]      rows per expert
//   inputOffsets     [E + 1]  off[0] = 0, off[e + 1] = off[e] + counts[e]
//   scaleOffsets     [E + 1]  rounded prefix sum: soff[e + 1] = soff[e] + roundUp(counts[e], 128)
//                             closed form:         soff[e] = roundUp(off[e] + 127·e, 128)
//   permutation      [N] (capacity)  row r < off[E] → source token t; rows ≥ off[E] untouched
//   destinationRows  [N]      i → its row, or −1 when skipped
//
// Numerics: integer only. The host guarantees N + 128·(E + 1) ≤ INT32_MAX, so no sum, offset,
// scale offset or index (the prefetch reads up to N + 255) overflows 32 bits.
//
// Cost: phases 2 and 5 take ⌈chunk / 128⌉ batches per warp (4 ballot-matched groups each, the next
// batch's loads in flight); phases 1 and 3 about A·E / (32·W) shared accesses per thread; the
// scan ⌈E / (32·W)⌉ experts per thread and 2 × 5 shuffle steps. No loop runs over all experts.
//
// Shared memory: dynamic (A + 1)·E int32 (warpCounts, then expertRows), at most 48 KiB less
// the 256 bytes of static warp totals (so E ≤ 6112 with A = 1; the host picks A to fit).
//
// nvfp4_routing_layout_few_ids, for N ≤ 32 (the decode step: T ≤ 4 at topk = 8), has no shared
// memory and no barrier; see its comment. The host picks the entry point (RoutingLaunchPlan).
//
// Compile-time parameters: none (E, A, chunk and the rule are launch arguments, so one module
// serves every shape).

typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;

constexpr int kWarpSize = 32;
constexpr int kMaxWarps = 32;          // a block of at most 1024 threads
constexpr int kBatch = 4;              // 32-id groups per warp loaded before any is processed
constexpr uint32_t kFullMask = 0xffffffffu;
constexpr int32_t kSkipped = -1;

// The one argument of every routing kernel. Mirrored by Swift's `RoutingLayoutParameters`;
// a test checks its size and offsets against these assertions.
struct RoutingParams {
  const int32_t* topkIds;    // [N]
  int32_t* counts;           // [E]
  int32_t* inputOffsets;     // [E + 1]
  int32_t* scaleOffsets;     // [E + 1]
  int32_t* permutation;      // [N] capacity; rows ≥ off[E] untouched
  int32_t* destinationRows;  // [N]
  int32_t idCount;           // N = T·topk
  int32_t topk;              // ≥ 1
  int32_t expertCount;       // E ≥ 1
  int32_t countingWarps;     // A, 1 ≤ A ≤ blockDim.x / 32
  int32_t chunkSize;         // ids per counting warp, a multiple of 32, A·chunk ≥ N (one block;
                             // the blocks path sizes each block's own from its range)
  int32_t closedForm;        // 1: closed-form scale offsets; 0: rounded prefix sum
  int32_t blockCount;        // B: blocks of the three-kernel path (routing_layout_blocks.cu); 1 here
  int32_t blockChunk;        // ids per block there (the last block takes the rest); unused here
};
static_assert(sizeof(RoutingParams) == 80, "RoutingParams layout changed: update Swift");
// NVRTC 13.0 has no __builtin_offsetof; newer ones (and CI's) check the offsets too.
#if defined(__has_builtin)
#if __has_builtin(__builtin_offsetof)
static_assert(__builtin_offsetof(RoutingParams, destinationRows) == 40, "RoutingParams layout changed");
static_assert(__builtin_offsetof(RoutingParams, idCount) == 48, "RoutingParams layout changed");
static_assert(__builtin_offsetof(RoutingParams, countingWarps) == 60, "RoutingParams layout changed");
static_assert(__builtin_offsetof(RoutingParams, closedForm) == 68, "RoutingParams layout changed");
static_assert(__builtin_offsetof(RoutingParams, blockChunk) == 76, "RoutingParams layout changed");
#endif
#endif

__device__ __forceinline__ uint32_t lanesBelow() {
  uint32_t mask;
  asm("mov.u32 %0, %%lanemask_lt;" : "=r"(mask));
  return mask;
}

__device__ __forceinline__ int32_t roundUp128(int32_t rows) { return (rows + 127) & ~127; }

// The lanes whose expert equals this lane's (experts in −1 ..< E, E < 2^bits): one ballot per
// bit of expert + 1, keeping the lanes that agree on every bit.
__device__ __forceinline__ uint32_t matchingLanes(int32_t expert, int bits) {
  const uint32_t key = uint32_t(expert + 1);
  uint32_t same = kFullMask;
  for (int b = 0; b < bits; ++b) {
    const uint32_t ones = __ballot_sync(kFullMask, (key >> b) & 1u);
    same &= ((key >> b) & 1u) ? ones : ~ones;
  }
  return same;
}

// Bits of expert + 1 for experts in −1 ..< E.
__device__ __forceinline__ int keyBits(int32_t experts) { return 32 - __clz(experts); }

// The local expert of flattened id i, or kSkipped (past the chunk, −1, or out of range).
__device__ __forceinline__ int32_t localExpert(const RoutingParams& p, int32_t i, int32_t end) {
  if (i >= end) return kSkipped;
  const int32_t id = __ldg(p.topkIds + i);
  return id >= 0 && id < p.expertCount ? id : kSkipped;
}

// The local experts of one batch: ids base + u·32 + lane for u < kBatch.
__device__ __forceinline__ void loadBatch(const RoutingParams& p, int32_t base, int32_t end, int lane,
                                          int32_t (&expert)[kBatch]) {
#pragma unroll
  for (int u = 0; u < kBatch; ++u) expert[u] = localExpert(p, base + u * kWarpSize + lane, end);
}

// Phase 2: this warp's count of each expert in [begin, end) into its row `warpCounts`. The next
// batch's ids are loaded before this one is counted, so their latency overlaps the counting.
// `first` is the chunk's first batch, loaded by the caller.
__device__ void countRoutes(const RoutingParams& p, int32_t* warpCounts, int32_t begin, int32_t end,
                            int lane, const int32_t (&first)[kBatch]) {
  const int bits = keyBits(p.expertCount);
  int32_t expert[kBatch], next[kBatch];
#pragma unroll
  for (int u = 0; u < kBatch; ++u) expert[u] = first[u];
  for (int32_t base = begin; base < end; base += kBatch * kWarpSize) {
    loadBatch(p, base + kBatch * kWarpSize, end, lane, next);
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      if (base + u * kWarpSize >= end) break;  // warp-uniform
      const uint32_t group = matchingLanes(expert[u], bits);
      if (expert[u] != kSkipped && (group & lanesBelow()) == 0) warpCounts[expert[u]] += __popc(group);
      __syncwarp();  // the next group's leader may be another lane
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) expert[u] = next[u];
  }
}

// Phase 5: rows for [begin, end). `warpNext[e]` is how many rows of expert e earlier warps and
// earlier groups of this warp took; `expertRows[e]` is off[e].
__device__ void scatterRoutes(const RoutingParams& p, int32_t* warpNext, const int32_t* expertRows,
                              int32_t begin, int32_t end, int lane, const int32_t (&first)[kBatch]) {
  const int bits = keyBits(p.expertCount);
  int32_t expert[kBatch], next[kBatch];
#pragma unroll
  for (int u = 0; u < kBatch; ++u) expert[u] = first[u];
  for (int32_t base = begin; base < end; base += kBatch * kWarpSize) {
    loadBatch(p, base + kBatch * kWarpSize, end, lane, next);
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      if (base + u * kWarpSize >= end) break;  // warp-uniform
      const int32_t i = base + u * kWarpSize + lane;
      const uint32_t group = matchingLanes(expert[u], bits);
      const int leader = __ffs(group) - 1;
      int32_t first = 0;
      if (expert[u] != kSkipped && lane == leader) {
        first = expertRows[expert[u]] + warpNext[expert[u]];
        warpNext[expert[u]] += __popc(group);
      }
      first = __shfl_sync(kFullMask, first, leader);
      if (i < end) {
        int32_t row = kSkipped;
        if (expert[u] != kSkipped) {
          row = first + __popc(group & lanesBelow());
          p.permutation[row] = i / p.topk;
        }
        p.destinationRows[i] = row;
      }
      __syncwarp();
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) expert[u] = next[u];
  }
}

// Phase 3: thread per expert (strided): warpCounts[w][e] becomes the exclusive prefix over
// warps; the expert's count goes to totals[e] when totals is not null.
__device__ void warpPrefixes(int32_t* warpCounts, int32_t countingWarps, int32_t experts, int32_t* totals) {
  for (int32_t e = threadIdx.x; e < experts; e += blockDim.x) {
    int32_t running = 0;
    for (int w = 0; w < countingWarps; ++w) {
      const int32_t count = warpCounts[w * experts + e];
      warpCounts[w * experts + e] = running;
      running += count;
    }
    if (totals != nullptr) totals[e] = running;
  }
}

// Phase 4: the block-wide exclusive scan of (rows, scaleRows), one pair per thread.
// Returns the sums over all lower threads; `__syncthreads` inside, so every thread calls it.
__device__ void scanSegments(int32_t rows, int32_t scaleRows, int32_t& rowsBefore, int32_t& scaleRowsBefore) {
  __shared__ int32_t warpRows[kMaxWarps];
  __shared__ int32_t warpScaleRows[kMaxWarps];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int warps = blockDim.x / kWarpSize;
  int32_t rowsThrough = rows, scaleRowsThrough = scaleRows;
#pragma unroll
  for (int d = 1; d < kWarpSize; d *= 2) {
    const int32_t r = __shfl_up_sync(kFullMask, rowsThrough, d);
    const int32_t s = __shfl_up_sync(kFullMask, scaleRowsThrough, d);
    if (lane >= d) {
      rowsThrough += r;
      scaleRowsThrough += s;
    }
  }
  if (lane == kWarpSize - 1) {
    warpRows[warp] = rowsThrough;
    warpScaleRows[warp] = scaleRowsThrough;
  }
  __syncthreads();
  // Every warp scans the warp totals itself (no second barrier), lane j holding warp j's.
  const int32_t totalRows = lane < warps ? warpRows[lane] : 0;
  const int32_t totalScaleRows = lane < warps ? warpScaleRows[lane] : 0;
  int32_t totalRowsThrough = totalRows, totalScaleRowsThrough = totalScaleRows;
#pragma unroll
  for (int d = 1; d < kWarpSize; d *= 2) {
    const int32_t r = __shfl_up_sync(kFullMask, totalRowsThrough, d);
    const int32_t s = __shfl_up_sync(kFullMask, totalScaleRowsThrough, d);
    if (lane >= d) {
      totalRowsThrough += r;
      totalScaleRowsThrough += s;
    }
  }
  rowsBefore = __shfl_sync(kFullMask, totalRowsThrough - totalRows, warp) + rowsThrough - rows;
  scaleRowsBefore = __shfl_sync(kFullMask, totalScaleRowsThrough - totalScaleRows, warp) + scaleRowsThrough - scaleRows;
}

// Phase 4, after the scan: thread t owns experts [first, last), consecutive; the block-wide scan
// of their (rows, rounded rows) gives counts [E], input offsets [E + 1] and scale offsets
// [E + 1] (either rule), and expertRows[e] turns from e's row count into off[e]. Every thread
// of the block calls it (scanSegments has a barrier).
__device__ void writeSegmentTables(const RoutingParams& p, int32_t* expertRows) {
  const int32_t experts = p.expertCount;
  const int32_t perThread = (experts + blockDim.x - 1) / blockDim.x;
  const int32_t first = min(int32_t(threadIdx.x) * perThread, experts);
  const int32_t last = min(first + perThread, experts);
  int32_t rows = 0, scaleRows = 0;
  for (int32_t e = first; e < last; ++e) {
    rows += expertRows[e];
    scaleRows += roundUp128(expertRows[e]);
  }
  int32_t offset, scaleOffset;
  scanSegments(rows, scaleRows, offset, scaleOffset);
  for (int32_t e = first; e < last; ++e) {
    const int32_t count = expertRows[e];
    p.counts[e] = count;
    p.inputOffsets[e] = offset;
    p.scaleOffsets[e] = p.closedForm ? roundUp128(offset + 127 * e) : scaleOffset;
    expertRows[e] = offset;
    offset += count;
    scaleOffset += roundUp128(count);
  }
  if (threadIdx.x == blockDim.x - 1) {  // its sums run through expert E − 1
    p.inputOffsets[experts] = offset;
    p.scaleOffsets[experts] = p.closedForm ? roundUp128(offset + 127 * experts) : scaleOffset;
  }
}

extern "C" __global__ void __launch_bounds__(kMaxWarps * kWarpSize) nvfp4_routing_layout(const RoutingParams p) {
  extern __shared__ int32_t shared[];
  const int32_t experts = p.expertCount;
  int32_t* warpCounts = shared;                                // [A][E]
  int32_t* expertRows = shared + p.countingWarps * experts;    // [E]
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int32_t begin = int32_t(min(int64_t(warp) * p.chunkSize, int64_t(p.idCount)));
  const int32_t end = int32_t(min(int64_t(begin) + p.chunkSize, int64_t(p.idCount)));
  const bool isCountingWarp = warp < p.countingWarps;

  // The first batch of the chunk, in flight while the counters are zeroed; kept for phase 5.
  int32_t firstBatch[kBatch];
  loadBatch(p, begin, end, lane, firstBatch);

  // 1. zeroCounts
  for (int32_t j = threadIdx.x; j < p.countingWarps * experts; j += blockDim.x) warpCounts[j] = 0;
  __syncthreads();

  // 2. countRoutes
  if (isCountingWarp) countRoutes(p, warpCounts + warp * experts, begin, end, lane, firstBatch);
  __syncthreads();

  // 3. warpPrefixes
  warpPrefixes(warpCounts, p.countingWarps, experts, expertRows);
  __syncthreads();

  // 4. scanSegments
  writeSegmentTables(p, expertRows);
  __syncthreads();

  // 5. scatterRoutes
  if (isCountingWarp) scatterRoutes(p, warpCounts + warp * experts, expertRows, begin, end, lane, firstBatch);
}

// ---------------------------------------------------------------------------------------------
// nvfp4_routing_layout_few_ids: N ≤ kWarpSize. Grid: thread e = blockIdx.x·blockDim.x +
// threadIdx.x owns expert e ≤ E (the host launches ⌈(E + 1) / blockDim.x⌉ blocks). Every warp
// loads all N ids itself (lane j holds id j, j < N), so no id passes through shared memory and
// nothing waits for another warp. Equal ids are grouped by one __match_any_sync (it serializes
// over distinct values, at most 32 here; measured 0.1 µs faster than 9 ballots at E = 256, and
// unrolling the ballots and the loop below was 0.2 µs slower). A thread derives its expert's
// entries by looking at the N ids one shuffle at a time:
//   counts[e]       #{j : id_j = e}
//   inputOffsets[e] #{j : id_j < e} over local ids (e = E: all of them)
//   scaleOffsets[e] rounded prefix: 128 · #{distinct local ids < e} (a count is at most N ≤ 32,
//                   so it rounds up to 128 or is 0); closed form: roundUp(off[e] + 127·e, 128)
// and lane j < N of block 0 (warp 0) writes id j's row, off[id_j] + #{k < j : id_k = id_j},
// the same stable order as the general kernel.
extern "C" __global__ void __launch_bounds__(kMaxWarps * kWarpSize) nvfp4_routing_layout_few_ids(const RoutingParams p) {
  const int lane = threadIdx.x % kWarpSize;
  const int32_t own = localExpert(p, lane, p.idCount);  // kSkipped for lanes j ≥ N
  const uint32_t same = __match_any_sync(kFullMask, own);  // one instruction over ≤ 32 ids
  const bool firstOfExpert = own != kSkipped && (same & lanesBelow()) == 0;
  const int32_t e = int32_t(blockIdx.x * blockDim.x + threadIdx.x);

  int32_t count = 0, below = 0, distinctBelow = 0, ownBelow = 0;
  for (int32_t j = 0; j < p.idCount; ++j) {  // N ≤ 32, uniform
    const int32_t packed = __shfl_sync(kFullMask, own * 2 + (firstOfExpert ? 1 : 0), j);
    const int32_t id = packed >> 1;  // kSkipped stays −1
    const bool local = id != kSkipped;
    count += id == e ? 1 : 0;
    below += local && id < e ? 1 : 0;
    distinctBelow += (packed & 1) != 0 && id < e ? 1 : 0;
    ownBelow += local && id < own ? 1 : 0;
  }

  if (e < p.expertCount) p.counts[e] = count;
  if (e <= p.expertCount) {
    p.inputOffsets[e] = below;
    p.scaleOffsets[e] = p.closedForm ? roundUp128(below + 127 * e) : 128 * distinctBelow;
  }
  if (blockIdx.x == 0 && int32_t(threadIdx.x) < p.idCount) {
    int32_t row = kSkipped;
    if (own != kSkipped) {
      row = ownBelow + __popc(same & lanesBelow());
      p.permutation[row] = int32_t(threadIdx.x) / p.topk;
    }
    p.destinationRows[threadIdx.x] = row;
  }
}
