// tuned_kernel.cu — the tuned kernel: padding and the entry point.
// Part of the expert-quantization kernel: KernelSpecialization joins the parts in the order
// experts_quant.cu lists, so this file sees everything declared before it.

// ---- Phase 3: padding.

// Zeroes the padding rows of chunk r of a tile (rows r, r+32, r+64, r+96 from `row` on): one
// 16-byte store when row r is padding, else 4-byte stores for its padding rows.
__device__ __forceinline__ void zeroChunkPadding(uint8_t* chunk, int64_t row, int64_t firstPadding) {
  if (row >= firstPadding) {
    *reinterpret_cast<uint4*>(chunk) = make_uint4(0, 0, 0, 0);
  } else {
#pragma unroll
    for (int j = 1; j < 4; ++j) {
      if (row + 32 * j >= firstPadding) *reinterpret_cast<uint32_t*>(chunk + 4 * j) = 0;
    }
  }
}

// Zeroes the padding of a swizzled scale buffer, outside dense tiles when phase 1 wrote those whole.
// Line (tile, kTile) — tile · kTiles + kTile — is the 512 bytes of one 4-block column of a 128-row
// tile; its 16-byte chunk r holds rows r, r+32, r+64, r+96 of the tile. Every tile belongs to one
// expert (scale offsets are multiples of 128) and the expert's padding rows are a suffix of its
// rows, so a chunk is all padding when row r is (zeroChunkPadding). Lines are strided over the grid's warps, a lane a chunk (a warp's stores
// cover the line's 512 contiguous bytes), and each warp carries the tile's expert forward. (Chunks
// strided over threads, each finding its line by two 64-bit divisions, took 3–4 % longer where
// padding is most of the work — the masked layout's small masks at K = 7168, the plain kernel at
// M = 1024, K = 7168, E = 256 — in session 16's lab on an H200.)
__device__ __forceinline__ void zeroSwizzledPadding(uint8_t* scales, const int32_t* inputTable,
                                                    const int32_t* scaleTable, bool denseWritten, int E) {
  const int64_t lineCount = int64_t(scaleTable[E]) / 128 * kTiles;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  const int lane = threadIdx.x & 31;
  int expert = 0;
  for (int64_t line = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; line < lineCount; line += warps) {
    const int64_t tileFirstRow = line / kTiles * 128;
    if (int64_t(scaleTable[expert + 1]) <= tileFirstRow) expert = findExpertInWarp(scaleTable, E, tileFirstRow, expert + 1);
    const int64_t rows = int64_t(inputTable[expert + 1]) - inputTable[expert];
    const int64_t firstPadding = int64_t(scaleTable[expert]) + rows;
    if (tileFirstRow + 128 <= firstPadding || (denseWritten && inDenseTile(tileFirstRow - scaleTable[expert], rows))) continue;
    zeroChunkPadding(scales + line * 512 + lane * 16, tileFirstRow + lane, firstPadding);  // scaleByteOffset(tileFirstRow + lane, 4 · kTile)
  }
}

// A tracked masked call's swizzled padding (phase 4 zeroes the whole tiles past it): the
// padding rows of each group's part-filled tile, line (group, kTile) a warp, a lane a chunk.
__device__ __forceinline__ void zeroPartFilledTiles(uint8_t* scales, const int32_t* inputTable,
                                                    const int32_t* scaleTable, bool denseWritten, int E) {
  const int64_t lineCount = int64_t(E) * kTiles;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  const int lane = threadIdx.x & 31;
  for (int64_t line = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; line < lineCount; line += warps) {
    const int e = int(line / kTiles), kTile = int(line % kTiles);
    const int64_t rows = int64_t(inputTable[e + 1]) - inputTable[e];
    const int64_t m = rows & ~int64_t(127);  // the part-filled tile's first row in the group
    if (m == rows || (denseWritten && inDenseTile(m, rows))) continue;
    const int64_t tileFirstRow = scaleTable[e] + m;
    zeroChunkPadding(scales + (tileFirstRow / 128 * kTiles + kTile) * 512 + lane * 16, tileFirstRow + lane,
                     scaleTable[e] + rows);
  }
}

// Zeroes the padding rows of a linear scale buffer (with `partFilledOnly`, those of part-filled
// tiles): blocks take experts in turn (in `slices` jobs each when experts are fewer than blocks),
// threads take bytes.
__device__ __forceinline__ void zeroLinearPadding(uint8_t* scales, const int32_t* inputTable,
                                                  const int32_t* scaleTable, bool partFilledOnly, int E) {
  const int slices = max(1, int(gridDim.x) / E);
  for (int64_t job = blockIdx.x; job < int64_t(E) * slices; job += gridDim.x) {
    const int e = int(job / slices);
    const int64_t slice = job % slices;
    const int64_t firstPadding = int64_t(scaleTable[e]) + (inputTable[e + 1] - inputTable[e]);
    const int64_t begin = firstPadding * kBlocksPerRow;
    const int64_t end = (partFilledOnly ? roundUpToTile(firstPadding) : int64_t(scaleTable[e + 1])) * kBlocksPerRow;
    for (int64_t i = begin + slice * blockDim.x + threadIdx.x; i < end; i += int64_t(slices) * blockDim.x) {
      scales[i] = 0;
    }
  }
}

// ---- The masked layout's scale tracker (kTrackedScales).
//
// A caller that quantizes into one scale buffer call after call may pass a tracker: a 16-byte
// record a group, {key, cleanFrom + 1 (0: nothing known), 0}, vouching that the group's scale
// rows from cleanFrom on are zero in the buffer and layout its key names. A call zeroes the
// padding rows of each group's part-filled tile as always (the valid rows' sectors are then
// written whole), and the group's whole tiles past it only up to the row its record vouches for
// (all of them where the record is zeros or names another buffer); then it records the group's
// valid rows as the new cleanFrom. With small masks a call writes one tile a group instead of
// S/128: rows past the mask stay zero as the contract says, at a cost that follows the valid
// rows of this call and the last. Block b owns groups b, b + grid, …: only it reads and writes
// their records, so no block sees a record written by another block of the same call.
struct __align__(16) ScaleRecord {
  unsigned long long key;
  int32_t cleanFromPlusOne;
  int32_t unused;
};

__device__ __forceinline__ ScaleRecord* scaleRecords(const QuantParams& p) {
  return reinterpret_cast<ScaleRecord*>(const_cast<int32_t*>(p.scaleOffsets));  // the masked layout's spare slot
}

__device__ __forceinline__ unsigned long long mixBits(unsigned long long x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The buffer and the geometry that place a group's rows in it (S, the row's scale bytes, the
// layout); never 0, the key of a record that vouches for nothing.
__device__ __forceinline__ unsigned long long scaleTrackerKey(const QuantParams& p) {
  const unsigned long long S = (unsigned long long)(p.rowCount + 127) / 128 * 128;
  const unsigned long long geometry = (unsigned long long)(2 * kScaleColumns + (kSwizzled ? 1 : 0));
  return mixBits(mixBits(mixBits(reinterpret_cast<unsigned long long>(p.scales)) ^ S) ^ geometry) | 1;
}

// Zeroes the whole tiles of group e's scale rows from..<to (multiples of 128) with the block.
__device__ __forceinline__ void zeroGroupTiles(uint8_t* scales, int64_t groupFirstRow, int64_t from, int64_t to) {
  if (kSwizzled) {  // tiles are kTiles contiguous 512-byte lines
    uint4* chunks = reinterpret_cast<uint4*>(scales);
    const int64_t end = (groupFirstRow + to) / 128 * kTiles * 32;
    for (int64_t c = (groupFirstRow + from) / 128 * kTiles * 32 + threadIdx.x; c < end; c += blockDim.x) {
      chunks[c] = make_uint4(0, 0, 0, 0);
    }
  } else {
    const int64_t end = (groupFirstRow + to) * kBlocksPerRow;
    for (int64_t i = (groupFirstRow + from) * kBlocksPerRow + threadIdx.x; i < end; i += blockDim.x) scales[i] = 0;
  }
}

// Phase 4 of a tracked masked call: each block, for the groups it owns, zeroes the whole tiles
// past the part-filled one that the record does not vouch for, then records the valid rows.
// `first` is the record of group blockIdx.x, loaded at the kernel's start.
__device__ __forceinline__ void clearUntrackedTiles(const QuantParams& p, const int32_t* inputTable, int E,
                                                    ScaleRecord first) {
  __shared__ int64_t untracked[2];
  ScaleRecord* records = scaleRecords(p);
  const unsigned long long key = scaleTrackerKey(p);
  const int64_t S = (p.rowCount + 127) / 128 * 128;
  for (int e = blockIdx.x; e < E; e += gridDim.x) {
    const int32_t rows = inputTable[e + 1] - inputTable[e];
    if (threadIdx.x == 0) {
      const ScaleRecord record = e == int(blockIdx.x) ? first : records[e];
      const int64_t cleanFrom = record.key == key && record.cleanFromPlusOne > 0 ? min(int64_t(record.cleanFromPlusOne - 1), S) : S;
      untracked[0] = roundUpToTile(rows);
      untracked[1] = roundUpToTile(cleanFrom);
    }
    __syncthreads();
    zeroGroupTiles(p.scales, int64_t(e) * S, untracked[0], untracked[1]);
    __syncthreads();  // untracked[] is read by every thread before the next group's values
    if (threadIdx.x == 0) records[e] = ScaleRecord{key, rows + 1, 0};
  }
}

// The tuned kernel's phases, with row units of `Steps` steps and line units where `LineUnits`.
template <int Steps, bool LineUnits>
__device__ __forceinline__ void quantizeTuned(const QuantParams& p) {
  const int lane = threadIdx.x & 31;
  const int warpInBlock = threadIdx.x >> 5;
  const int slot = lane / kLanesPerRow;    // row units: which of the warp's rows
  const int column = lane % kLanesPerRow;  // row units: first block of this lane
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  // A problem of at most one row unit a warp: its rows are asked of L2 before the tables. (Every
  // warp's first unit of a larger problem as well cost 2–6 % at K = 2048, M ≥ 8192, and 0.9 µs
  // at M = 1024, K = 7168, E = 256: the prefetches queue ahead of the tables' loads.)
  if (!kGather && !kMasked && (p.rowCount + kRowsPerWarp - 1) / kRowsPerWarp * kUnitsPerRow<Steps> <= warps) {
    prefetchRowUnit<Steps>(p, warp, slot, column);
  }

  // A tracked masked call: the record of the block's first group, asked for now, used last.
  const bool tracked = kMasked && (p.flags & kTrackedScales) != 0;
  ScaleRecord firstRecord{0, 0, 0};
  if (tracked && threadIdx.x == 0 && int(blockIdx.x) < p.expertCount) firstRecord = scaleRecords(p)[blockIdx.x];

#if NVFP4_SILU_TABLE
  stageSiLUTable();
#endif
  const int32_t* inputTable;
  const int32_t* scaleTable;
  const int32_t* denseTable;
  stageTables<LineUnits>(p, sharedTables, inputTable, scaleTable, denseTable);
  if (!tablesAreValid(p, inputTable, scaleTable)) return;

  const int E = p.expertCount;

  // Line units pay where they are many (at least kLineUnitRounds a block: one fewer or one more
  // per block then matters little) and 64 rows an expert are no more than the routed rows;
  // otherwise every row goes through row units. (mayUseLineUnits tested the second already, or no
  // dense table exists; testing it again here kept ptxas's code for the tails 112 instructions
  // shorter at K = 7168.)
  const int64_t routedRows = inputTable[E];
  const int64_t lineUnitCount =
      LineUnits && denseTable != nullptr ? int64_t(denseTable[E]) * kUnitLineSets * kChunksPerRow : 0;
  const bool lineUnits = lineUnitCount > 0 && ((p.flags & kAlwaysLineUnits) != 0 ||
                                               (lineUnitCount >= int64_t(kLineUnitRounds) * gridDim.x &&
                                                int64_t(E) * kDenseRows <= routedRows));

  // Phase 1: line units of dense tiles, a block at a time; the staged lines alternate between
  // two buffers, so one barrier a unit keeps a buffer from being refilled while it is stored.
  __shared__ __align__(16) uint8_t staged[2][kUnitTiles * kLineStride];
  int expert = 0;
  int buffer = 0;
  for (int64_t unit = blockIdx.x; lineUnits && unit < lineUnitCount; unit += gridDim.x) {
    const LineUnit u = numberLineUnit(p, inputTable, scaleTable, denseTable, unit, expert);
    quantizeLineUnit(p, u, warpInBlock, lane, staged[buffer]);
    __syncthreads();
    storeLines(p, u, warpInBlock, lane, staged[buffer]);
    buffer ^= 1;
  }

  // Phase 2: row units, a warp at a time: every load of the unit in flight, then quantize. After
  // line units, the tail rows in the tail table's order (numbered from it: as many units as tail
  // rows, spread evenly over the warps); else every routed row, its loads issued before its
  // expert search (the row is the routed index but when masked).
  const uint32_t groupMask = 0xFu << (lane & ~3);
  const int32_t* tailTable = lineUnits ? denseTable + E + 1 : nullptr;  // stageTables puts it there
  const int64_t rowUnitCount =
      ((lineUnits ? int64_t(tailTable[E]) : routedRows) + kRowsPerWarp - 1) / kRowsPerWarp * kUnitsPerRow<Steps>;
  expert = 0;
  int32_t nextSource = kGather ? sourceOfUnit<Steps>(p, warp, slot, routedRows) : 0;
  for (int64_t unit = warp; unit < rowUnitCount; unit += warps) {
    uint4 loaded[Steps][kLoadsPerBlock];
    RoutedUnit u;
    if (lineUnits || kMasked) {  // the row follows from the expert (no gather: kLineUnits excludes it)
      int64_t m = 0;
      if (lineUnits) {
        m = numberTailUnit(p, inputTable, scaleTable, tailTable, unit, slot, u, expert);
      } else {
        u = numberUnit<Steps>(unit, slot, routedRows);
        if (u.valid) m = bindExpert(p, inputTable, scaleTable, u, expert);
      }
      if (u.valid) placeRow(p, u, kMasked ? int64_t(expert) * p.rowCount + m : u.routed, 0);
      loadUnit<Steps>(u, column, loaded);
    } else {  // the row is the routed index: its loads are in flight while the expert is found
      u = numberUnit<Steps>(unit, slot, routedRows);
      const int32_t source = nextSource;
      if (kGather) nextSource = sourceOfUnit<Steps>(p, unit + warps, slot, routedRows);
      if (u.valid) placeRow(p, u, u.routed, source);
      loadUnit<Steps>(u, column, loaded);
      if (u.valid) bindExpert(p, inputTable, scaleTable, u, expert);
    }
    storeUnit<Steps>(u, column, loaded, p.scales, groupMask);
  }

  // Phase 3: padding (of sparse and empty tiles when line units ran; of part-filled tiles only
  // when tracked, and phase 4 the whole tiles past them that the tracker does not vouch for).
  if (kSwizzled && tracked) {
    zeroPartFilledTiles(p.scales, inputTable, scaleTable, lineUnits, E);
  } else if (kSwizzled) {
    zeroSwizzledPadding(p.scales, inputTable, scaleTable, lineUnits, E);
  } else {
    zeroLinearPadding(p.scales, inputTable, scaleTable, tracked, E);
  }
  if (tracked) clearUntrackedTiles(p, inputTable, E, firstRecord);
}

extern "C" __global__ void __launch_bounds__(kTunedMaxThreads, kTunedMinBlocks) nvfp4_quantize_tuned(const QuantParams p) {
  quantizeTuned<kTunedUnroll, kLineUnits>(p);
}

#if NVFP4_SMALL_KERNEL
// The small kernel: the tuned kernel with row units of one step (a block a lane) and no line
// units, for problems whose rows fit one wave of 8-warp blocks at a step a thread
// (LaunchPlan.takesSmallKernel). Its units are twice as many as nvfp4_quantize_tuned's, so such a
// problem spreads over twice the warps and each lane waits on one block's loads instead of two
// (kernel lab, H200, graph replay: M = 16 3.3 → 2.8 µs at K = 7168, 3.0 → 2.7 µs at K = 2048;
// M = 128, E = 256 4.9 → 4.5 µs; M = 1024, K = 2048 4.6 → 4.2 µs). Offsets and gathered rows,
// the row-unit kernels whose units take two steps (NVFP4_SMALL_KERNEL); the masked layout, whose
// valid rows the host does not know, keeps nvfp4_quantize_tuned.
extern "C" __global__ void __launch_bounds__(kTunedMaxThreads, kTunedMinBlocks) nvfp4_quantize_tuned_small(const QuantParams p) {
  quantizeTuned<1, false>(p);
}
#endif
