// tuned_kernel.cu — the tuned kernel: padding and the entry point.
// Part of the expert-quantization kernel: KernelSpecialization joins the parts in the order
// experts_quant.cu lists, so this file sees everything declared before it.

// ---- Phase 3: padding.

// Zeroes the padding of a swizzled scale buffer, outside dense tiles when phase 1 wrote those whole.
// Line (tile, kTile) — tile · kTiles + kTile — is the 512 bytes of one 4-block column of a 128-row
// tile; its 16-byte chunk r holds rows r, r+32, r+64, r+96 of the tile. Every tile belongs to one
// expert (scale offsets are multiples of 128) and the expert's padding rows are a suffix of its
// rows, so a chunk is all padding when row r is: one 16-byte store clears it, else its padding
// rows get 4-byte stores. Lines are strided over the grid's warps, a lane a chunk (a warp's stores
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
    uint8_t* chunk = scales + line * 512 + lane * 16;  // scaleByteOffset(tileFirstRow + lane, 4 · kTile)
    if (tileFirstRow + lane >= firstPadding) {
      *reinterpret_cast<uint4*>(chunk) = make_uint4(0, 0, 0, 0);
    } else {
#pragma unroll
      for (int j = 1; j < 4; ++j) {
        if (tileFirstRow + lane + 32 * j >= firstPadding) *reinterpret_cast<uint32_t*>(chunk + 4 * j) = 0;
      }
    }
  }
}

// Zeroes the padding rows of a linear scale buffer: blocks take experts in turn (in `slices`
// jobs each when experts are fewer than blocks), threads take bytes.
__device__ __forceinline__ void zeroLinearPadding(uint8_t* scales, const int32_t* inputTable,
                                                  const int32_t* scaleTable, int E) {
  const int slices = max(1, int(gridDim.x) / E);
  for (int64_t job = blockIdx.x; job < int64_t(E) * slices; job += gridDim.x) {
    const int e = int(job / slices);
    const int64_t slice = job % slices;
    const int64_t begin = (int64_t(scaleTable[e]) + (inputTable[e + 1] - inputTable[e])) * kBlocksPerRow;
    const int64_t end = int64_t(scaleTable[e + 1]) * kBlocksPerRow;
    for (int64_t i = begin + slice * blockDim.x + threadIdx.x; i < end; i += int64_t(slices) * blockDim.x) {
      scales[i] = 0;
    }
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

  // Phase 3: padding (of sparse and empty tiles when line units ran).
  if (kSwizzled) {
    zeroSwizzledPadding(p.scales, inputTable, scaleTable, lineUnits, E);
  } else {
    zeroLinearPadding(p.scales, inputTable, scaleTable, E);
  }
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
