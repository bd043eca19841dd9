// routing_layout_blocks.cu — the routing layout of many ids over many blocks: three launches.
//
// Purpose: the same values as nvfp4_routing_layout (routing_layout.cu, joined before this part:
// RoutingParams, the batch loaders, countRoutes, scatterRoutes, warpPrefixes and writeSegmentTables
// come from there), for N large enough that one block's counting and scattering would keep a
// single SM busy for tens of microseconds (62.8 µs at T = 4096, topk = 8, E = 256 on an H100).
//
// Legend: as in routing_layout.cu; B blocks, C = blockChunk ids per block. Block b owns the ids
// [b·C, b·C + C), the last block [(B − 1)·C, N) (C ≤ its length < 2C). The host guarantees
// C ≥ E, so every block's range has room for E entries.
//
// Scratch without allocation: between the launches, the per-block tables live in
// destinationRows, block b's at destinationRows[b·C + e] for e < E — inside block b's own id
// range, which only block b's scatter overwrites, and only after it has read its table.
//
// Launches, in stream order (each sees the previous one's writes):
//   1. nvfp4_routing_count_blocks    grid B: block b counts each expert's ids in its range
//                                    (shared-memory atomics: a count does not depend on their
//                                    order) and writes them to its table.
//   2. nvfp4_routing_scan_blocks     one block: expert e's rows over all blocks, the block-wide
//                                    scan of (rows, rounded rows) → counts, both offset tables;
//                                    then block b's table becomes off[e] + the rows of expert e
//                                    in blocks before b (the first row of e that b writes).
//   3. nvfp4_routing_scatter_blocks  grid B: block b reads its table, then counts and scatters
//                                    its range exactly as the one-block kernel does its whole
//                                    range (phases 1–3 and 5), with the table as expertRows.
// Rows of expert e come in increasing flattened order i: blocks in order, warps in order within
// a block, lanes in order within a warp — the CPU builder's stable order.
//
// Shared memory (dynamic): launch 1 E int32; launch 2 (G + 1)·E int32, G = max(1, ⌊blockDim / E⌋)
// groups of blocks summed in parallel per expert; launch 3 (A + 1)·E int32, as the one-block
// kernel. The host sizes all three within 48 KiB.
//
// Numerics: integer only, as routing_layout.cu (N + 128·(E + 1) ≤ INT32_MAX).
//
// Compile-time parameters: none.

// Block b's id range.
__device__ __forceinline__ void blockRange(const RoutingParams& p, int32_t& begin, int32_t& end) {
  begin = int32_t(blockIdx.x) * p.blockChunk;
  end = int32_t(blockIdx.x) + 1 == p.blockCount ? p.idCount : begin + p.blockChunk;
}

extern "C" __global__ void __launch_bounds__(kMaxWarps * kWarpSize) nvfp4_routing_count_blocks(const RoutingParams p) {
  extern __shared__ int32_t shared[];
  int32_t* blockCounts = shared;  // [E]
  int32_t begin, end;
  blockRange(p, begin, end);
  for (int32_t e = threadIdx.x; e < p.expertCount; e += blockDim.x) blockCounts[e] = 0;
  __syncthreads();
  // 64-bit: a batch reaches up to 4·blockDim − 1 ids past the range, more than the host's
  // N + 128·(E + 1) ≤ INT32_MAX leaves room for.
  const int64_t stride = blockDim.x;
  for (int64_t base = begin + int64_t(threadIdx.x); base < end; base += kBatch * stride) {
    int32_t expert[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int64_t i = base + u * stride;
      expert[u] = i < end ? localExpert(p, int32_t(i), end) : kSkipped;
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      if (expert[u] != kSkipped) atomicAdd(blockCounts + expert[u], 1);
    }
  }
  __syncthreads();
  for (int32_t e = threadIdx.x; e < p.expertCount; e += blockDim.x) p.destinationRows[begin + e] = blockCounts[e];
}

extern "C" __global__ void __launch_bounds__(kMaxWarps * kWarpSize) nvfp4_routing_scan_blocks(const RoutingParams p) {
  extern __shared__ int32_t shared[];
  const int32_t experts = p.expertCount, blocks = p.blockCount;
  const int32_t groups = max(1, int32_t(blockDim.x) / experts);
  int32_t* groupRows = shared;                      // [G][E]: rows of e in group g's blocks, then the prefix
  int32_t* expertRows = shared + groups * experts;  // [E]: rows of e, then off[e]
  // Group g sums blocks [g·B / G, (g + 1)·B / G) of expert e; pair j = g·E + e.
  for (int32_t j = threadIdx.x; j < groups * experts; j += blockDim.x) {
    const int32_t g = j / experts, e = j % experts;
    int32_t rows = 0;
#pragma unroll 8
    for (int32_t b = g * blocks / groups; b < (g + 1) * blocks / groups; ++b) rows += p.destinationRows[b * p.blockChunk + e];
    groupRows[j] = rows;
  }
  __syncthreads();
  warpPrefixes(groupRows, groups, experts, expertRows);  // per group instead of per warp
  __syncthreads();
  writeSegmentTables(p, expertRows);
  __syncthreads();

  // Block b's table: off[e] + rows of e in the blocks before b.
  for (int32_t j = threadIdx.x; j < groups * experts; j += blockDim.x) {
    const int32_t g = j / experts, e = j % experts;
    int32_t running = expertRows[e] + groupRows[j];
    for (int32_t b = g * blocks / groups; b < (g + 1) * blocks / groups; ++b) {
      int32_t* entry = p.destinationRows + b * p.blockChunk + e;
      const int32_t rows = *entry;
      *entry = running;
      running += rows;
    }
  }
}

extern "C" __global__ void __launch_bounds__(kMaxWarps * kWarpSize) nvfp4_routing_scatter_blocks(const RoutingParams p) {
  extern __shared__ int32_t shared[];
  const int32_t experts = p.expertCount;
  int32_t* warpCounts = shared;                                // [A][E]
  int32_t* expertRows = shared + p.countingWarps * experts;    // [E]: this block's first row of e
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  int32_t blockBegin, blockEnd;
  blockRange(p, blockBegin, blockEnd);
  const int32_t warpChunk = ((blockEnd - blockBegin + p.countingWarps - 1) / p.countingWarps + 31) & ~31;
  const int32_t begin = int32_t(min(int64_t(blockBegin) + int64_t(warp) * warpChunk, int64_t(blockEnd)));
  const int32_t end = int32_t(min(int64_t(begin) + warpChunk, int64_t(blockEnd)));
  const bool isCountingWarp = warp < p.countingWarps;

  int32_t firstBatch[kBatch];
  loadBatch(p, begin, end, lane, firstBatch);
  for (int32_t j = threadIdx.x; j < p.countingWarps * experts; j += blockDim.x) warpCounts[j] = 0;
  for (int32_t e = threadIdx.x; e < experts; e += blockDim.x) expertRows[e] = p.destinationRows[blockBegin + e];
  __syncthreads();

  if (isCountingWarp) countRoutes(p, warpCounts + warp * experts, begin, end, lane, firstBatch);
  __syncthreads();

  warpPrefixes(warpCounts, p.countingWarps, experts, nullptr);
  __syncthreads();

  // The table was read above; this block's scatter may now overwrite it with rows.
  if (isCountingWarp) scatterRoutes(p, warpCounts + warp * experts, expertRows, begin, end, lane, firstBatch);
}
