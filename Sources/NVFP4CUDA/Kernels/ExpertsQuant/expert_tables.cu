// expert_tables.cu — the offset tables: dense tiles, the block scan, staging in shared memory, device-side validation.
// Part of the expert-quantization kernel: KernelSpecialization joins the parts in the order
// experts_quant.cu lists, so this file sees everything declared before it.

// A 128-row scale tile is dense when more than kDenseRows of its rows are routed: every tile
// of an expert but its last, and the last when it is more than half full. The tuned kernel
// quantizes dense tiles in line units and the rest (each expert's tail) in row units.
constexpr int kDenseRows = 64;
constexpr int kUnitLineSets = 4;                                                   // line sets of a tile
constexpr int kUnitTiles = 8;                                                      // 4-block columns (32 blocks)
constexpr int kChunksPerRow = (kTiles + kUnitTiles - 1) / kUnitTiles;              // line units across a row
constexpr int kLineUnitRounds = 8;                                                 // line units a block, at least
// Line units exist in the swizzled kernels without a gather or SiLU·mul only (offsets or masked
// rows, any block format); forcing them (kAlwaysLineUnits, which the tests do) reaches no other
// kernel, and a block takes them only with kLineUnitThreads threads. Their gain is the whole-line
// scale store, which the linear layout does not have (not timed there). Measured with them, the
// gather + quantize at K = 7168 took 155 µs against row units' 137: a line unit's rows wait on
// their permutation entries between its loads and barrier. bfloat16 SiLU·mul had them from
// K = 4096 (3.5 % faster at M = 32768, K = 7168, session 7) until row units in blocks of 1024
// threads, one staged silu table an SM instead of four, beat them by 8–11 % at K = 4096 and 7168
// (session 13, H200). Compiled in but never taken, their code still cost a kernel 8–10 % (gather
// 148–152 µs, session 5): ptxas then laid out and scheduled the row units around it (gather 2,968
// SASS instructions at K = 2048 against 1,064 without).
constexpr bool kLineUnits = kSwizzled && !kGather && !kSiLUMul;
constexpr int kLineUnitThreads = 256;  // a line unit's block: 8 warps, one per 4-block column of its 32 blocks

// The first row at or past `row` that starts a 128-row scale tile.
__device__ __forceinline__ int64_t roundUpToTile(int64_t row) { return (row + 127) & ~int64_t(127); }

// Whether row m of an expert with `rows` routed rows lies in a dense tile.
__device__ __forceinline__ bool inDenseTile(int64_t m, int64_t rows) { return rows - (m & ~int64_t(127)) > kDenseRows; }

// Dense tiles of an expert with `rows` routed rows: its full tiles, and its last when more than
// kDenseRows of it are routed (inDenseTile of its rows, in 32 bits).
__device__ __forceinline__ int32_t denseTiles(int32_t rows) { return rows / 128 + (rows % 128 > kDenseRows ? 1 : 0); }

// Tail rows of an expert with `rows` routed rows: those of its last tile when that tile is not
// dense (at most kDenseRows), else none.
__device__ __forceinline__ int32_t tailRows(int32_t rows) { return max(0, rows - 128 * denseTiles(rows)); }

// Writes the exclusive prefix of value(0) … value(E − 1) into table[0 … E] (table[E] is the
// total). Each thread sums a run of consecutive entries, the runs' totals are scanned across the
// block (warp shuffles, then the warp totals in `scratch`, 32 words), and each thread writes its
// run's prefixes. Every thread of the block calls it; it ends with a barrier.
template <typename Value>
__device__ __forceinline__ void blockExclusiveScan(int E, int32_t* table, int32_t* scratch, Value value) {
  const int run = (E + blockDim.x - 1) / blockDim.x;
  const int first = min(E, int(threadIdx.x) * run);
  const int last = min(E, first + run);
  int32_t total = 0;
  for (int e = first; e < last; ++e) total += value(e);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int32_t inclusive = total;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int32_t other = __shfl_up_sync(0xFFFFFFFFu, inclusive, d);
    if (lane >= d) inclusive += other;
  }
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  int32_t before = inclusive - total;
  for (int w = 0; w < warp; ++w) before += scratch[w];
  for (int e = first; e < last; ++e) {
    table[e] = before;
    before += value(e);
  }
  if (last == E && first < last) table[E] = before;
  __syncthreads();
}

// Masked layout: a group's rows, c = min(max(mask, 0), Mmax).
__device__ __forceinline__ int32_t maskedRows(const QuantParams& p, int e) {
  return min(max(p.inputOffsets[e], 0), int32_t(p.rowCount));
}

// Whether the tuned kernel may take line units: only a kernel that has them (LineUnits:
// kLineUnits in nvfp4_quantize_tuned, never in the small kernel), in a block of kLineUnitThreads threads, when forced or when 64 rows an expert are no more than the routed rows and the
// most line units the rows allow (a dense tile holds more than 64 of them) reach
// kLineUnitRounds a block. Otherwise no dense table is built, so small problems pay no scan.
template <bool LineUnits>
__device__ __forceinline__ bool mayUseLineUnits(const QuantParams& p, int32_t routedRows) {
  if (!LineUnits || blockDim.x != kLineUnitThreads) return false;
  if ((p.flags & kAlwaysLineUnits) != 0) return true;
  return int64_t(p.expertCount) * kDenseRows <= routedRows &&
         int64_t(routedRows) / (kDenseRows + 1) * kUnitLineSets * kChunksPerRow >= int64_t(kLineUnitRounds) * gridDim.x;
}

// Stages the tables in shared memory when they fit — off and soff copied (masked: off = the
// prefix of c and soff[e] = e·S derived), the dense table, the prefix of each expert's dense
// tiles, and right after it the tail table, the prefix of each expert's tail rows (tailRows) —
// and returns the tables to search. Tables too large for shared memory stay in global
// memory, with no dense table (every row then goes through row units); so do problems too small
// for line units (see mayUseLineUnits).
template <bool LineUnits>
__device__ __forceinline__ void stageTables(const QuantParams& p, int32_t* shared, const int32_t*& inputTable,
                                            const int32_t*& scaleTable, const int32_t*& denseTable) {
  const int E = p.expertCount;
  denseTable = nullptr;
  if (kMasked || (p.flags & kSharedTables)) {  // the masked layout always derives its tables in shared memory
    int32_t* inputShared = shared;
    int32_t* scaleShared = inputShared + E + 1;
    int32_t* denseShared = scaleShared + E + 1;
    int32_t* tailShared = denseShared + E + 1;  // denseTable + E + 1 for its users
    int32_t* scratch = tailShared + E + 1;
    if (kMasked) {
      const int32_t scaleRowsPerGroup = (int32_t(p.rowCount) + 127) / 128 * 128;
      for (int e = threadIdx.x; e <= E; e += blockDim.x) scaleShared[e] = e * scaleRowsPerGroup;
      blockExclusiveScan(E, inputShared, scratch, [&](int e) { return maskedRows(p, e); });
    } else {
      for (int e = threadIdx.x; e <= E; e += blockDim.x) {
        inputShared[e] = p.inputOffsets[e];
        scaleShared[e] = p.scaleOffsets[e];
      }
      __syncthreads();
    }
    if (mayUseLineUnits<LineUnits>(p, inputShared[E])) {
      auto rows = [&](int e) { return kMasked ? maskedRows(p, e) : inputShared[e + 1] - inputShared[e]; };
      blockExclusiveScan(E, denseShared, scratch, [&](int e) { return denseTiles(rows(e)); });
      blockExclusiveScan(E, tailShared, scratch, [&](int e) { return tailRows(rows(e)); });
      denseTable = denseShared;
    }
    inputTable = inputShared;
    scaleTable = scaleShared;
  } else {
    inputTable = p.inputOffsets;
    scaleTable = p.scaleOffsets;
  }
}

// Device-side validation (tuned only, when p.status is set): the violations a block found, OR-ed
// into *p.status. Mirrored by Swift's `DeviceValidationStatus`.
enum : uint32_t {
  kBadInputOffsets = 1u,   // off[0] != 0, decreasing, or off[E] > M
  kBadScaleOffsets = 2u,   // soff[0] != 0, not a multiple of 128, or fewer scale rows than rows
  kScaleCapacity = 4u,     // soff[E] rows do not fit the scale buffer
  kBadPermutation = 8u,    // a gathered row names no input row (the row is skipped either way)
};

// Every block checks the tables before using them; a block that finds a violation reports it
// and returns before reading or writing anything else (all blocks see the same tables, so no
// block writes). Returns whether the block may go on.
__device__ __forceinline__ bool tablesAreValid(const QuantParams& p, const int32_t* inputTable, const int32_t* scaleTable) {
  if (p.status == nullptr || kMasked) return true;  // masked tables are derived, valid by construction
  __shared__ uint32_t blockViolations;
  if (threadIdx.x == 0) blockViolations = 0;
  __syncthreads();
  uint32_t violations = 0;
  const int E = p.expertCount;
  for (int e = threadIdx.x; e <= E; e += blockDim.x) {
    const int32_t off = inputTable[e], soff = scaleTable[e];
    if (e == 0) {
      if (off != 0) violations |= kBadInputOffsets;
      if (soff != 0) violations |= kBadScaleOffsets;
    } else {
      const int32_t rows = off - inputTable[e - 1];
      if (rows < 0) violations |= kBadInputOffsets;
      if (soff % 128 != 0 || int64_t(soff) - scaleTable[e - 1] < int64_t(rows)) violations |= kBadScaleOffsets;
    }
    if (e == E && int64_t(off) > p.rowCount) violations |= kBadInputOffsets;
    if (e == E && int64_t(soff) > p.scaleRowCapacity) violations |= kScaleCapacity;
  }
  if (violations != 0) atomicOr(&blockViolations, violations);
  __syncthreads();
  violations = blockViolations;
  if (violations != 0 && threadIdx.x == 0) atomicOr(p.status, violations);
  return violations == 0;
}

