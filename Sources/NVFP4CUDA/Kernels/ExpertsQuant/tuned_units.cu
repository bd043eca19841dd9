// tuned_units.cu — the tuned kernel's plan and constants, a block's quantization, and line units
// of dense tiles (row units: tuned_row_units.cu).
// Part of the expert-quantization kernel: KernelSpecialization joins the parts in the order
// experts_quant.cu lists, so this file sees everything declared before it.

// ---------------------------------------------------------------------------------------------
// tuned: up to three phases, each balanced on its own. A 128-row scale tile is dense when more
// than 64 of its rows are routed (see kDenseRows).
//   1. Line units of dense tiles — in the swizzled kernels without a gather or SiLU·mul
//      (kLineUnits) and blocks of 256 threads, when there are at least kLineUnitRounds per block
//      and 64 rows an expert are no more than the routed rows. In the swizzled layout one
//      128-byte line of a tile holds one 4-block column of 32 rows: rows 8j … 8j+7 of each
//      32-row quarter (line set j). A unit is a line set across 32 blocks (8 lines), taken by a
//      block: warp w takes rows 8j + w + 32q, q = 0…3, a lane a block of each (B/8 16-byte
//      loads); the scale bytes are merged in shared memory and stored as 8
//      whole lines, one write request each. Stored from the lanes they were one 4-byte request a
//      word (14.7 M at M = 131072, K = 7168), which cost ~12 % of the time; whole sectors from one
//      warp took the DRAM excess away but not the time: the count of write requests is what
//      costs. Padding rows of the tile get scale 0 here. Units are strided over blocks; the
//      tile's expert is carried forward through the dense table.
//   2. Row units: kTunedUnroll steps of a row a warp unit, strided over warps: a warp takes
//      kRowsPerWarp rows at a time and its lanes walk the unit's blocks, one block per lane and
//      step, with every load of the unit in flight at once; 4 lanes merge a swizzled scale word.
//      After line units, the experts' tail rows (the rows of an expert's last tile when that
//      tile is not dense), numbered through the tail table so that each warp gets as many (a
//      slot per expert and row, 64 an expert, left warps with 4 to 16 units at M = 32768,
//      E = 256: 3 % of the time); otherwise every routed row, the expert carried forward per lane
//      (one comparison unless the row left the expert, then a search of the rest, by the whole
//      warp when it holds one row) and the loads issued before that search. (Line units of mostly empty tiles left most of a block
//      idle, and few large units per block balanced badly: 2.3× slower at M = 1024, E = 256.)
//   3. Padding outside the tiles phase 1 wrote: swizzled 512-byte lines strided over the grid's
//      warps, a lane a 16-byte chunk, a 16-byte zero store wherever a whole chunk is padding,
//      4-byte stores for the padding rows of a chunk that also holds routed rows; linear padding
//      rows, expert by expert.
// The linear layout takes row units and stores a row's scale bytes straight from the lanes.

constexpr int kUnitWarps = 8;                                                      // warps of a line unit's block (256 threads)
constexpr int kLoadsPerBlock = kVectorsPerBlock * (kSiLUMul ? 2 : 1);              // 16-byte loads per block
constexpr int kRowsInFlight = kVectorsPerBlock <= 2 ? 4 : 1;                      // line units: rows loaded at once
constexpr int kLineStride = 128 + 16;  // staged line pitch: a warp's 8 lines fall on distinct banks
static_assert(kUnitWarps * 16 == 128 && kUnitTiles == kUnitWarps, "warp w fills bytes 16w … 16w + 15 of a line, stores line w");
static_assert(kUnitWarps * 32 == kLineUnitThreads, "a line unit takes the whole block");
static_assert(!kLineUnits || !kSiLUMul, "quantizeLineUnit loads no up half: line units are identity only");
static_assert(4 % kRowsInFlight == 0, "rows in flight divide a warp's 4 rows");

constexpr int kScaleColumns = kSwizzled ? 4 * kTiles : kBlocksPerRow;            // scale bytes per row
constexpr int kLanesPerRow =
    kScaleColumns >= 32 ? 32 : (32 % kScaleColumns == 0 ? kScaleColumns : 32);  // row units: lanes on one row
constexpr int kRowsPerWarp = 32 / kLanesPerRow;                                  // row units: rows per warp step
constexpr int kColumnSteps = (kScaleColumns + kLanesPerRow - 1) / kLanesPerRow;  // row units: blocks per lane
constexpr int kMaxUnroll = kLoadsPerBlock <= 2 ? 2 : 1;                          // ≤ 4 loads in flight per lane
constexpr int kTunedUnroll = kColumnSteps < kMaxUnroll ? kColumnSteps : kMaxUnroll;  // steps per row unit
// Row units of `Steps` steps a row takes: nvfp4_quantize_tuned's take kTunedUnroll, the small
// kernel's one (tuned_kernel.cu).
template <int Steps>
constexpr int kUnitsPerRow = (kColumnSteps + Steps - 1) / Steps;
// The small kernel exists where the tuned kernel's row units take more than one step: 16-value
// blocks without SiLU·mul (two loads a block) on rows of more than 32 scale columns. The same
// test in the preprocessor, which compiles the entry point in or out, and in Swift
// (KernelSpecialization.hasSmallKernel; the compile test checks the three agree).
#define NVFP4_SMALL_KERNEL                                                                          \
  (NVFP4_BLOCK_SIZE == 16 && NVFP4_SILU_MUL == 0 && NVFP4_ROW_MAP != 2 &&                          \
   (NVFP4_SWIZZLED ? 4 * ((NVFP4_HIDDEN_SIZE / 16 + 3) / 4) : NVFP4_HIDDEN_SIZE / 16) > 32)
static_assert(bool(NVFP4_SMALL_KERNEL) == (kTunedUnroll > 1 && !kMasked), "the small kernel's condition");
static_assert(!kSwizzled || kLanesPerRow % 4 == 0, "4-lane scale groups must not straddle rows");
// The launch bounds: 64 registers a thread for the kernels that are not register-tight
// (kWideBlocks: 4 blocks of 256 threads an SM, or one of 1024) — on an H200 the plain kernel's
// E = 256 line units ran 2 % faster than at 80 registers at K = 7168 and 6.5 % at K = 2048,
// M = 32768 (session 11), and once the codes' signs came from the input words (session 12)
// SiLU·mul + quantize 2–4 % and the masked layout 2–15 % faster; the gather's 256-thread blocks
// within ±2 % either way at 64 and at 80 (sessions 12 and 14); float16's 256-thread blocks 0–9 %
// faster at 64 than at 80 but for one gather shape (session 14); ptxas fits them in 64 registers with no spill at every
// hidden size the compile sweep tried. 128 (2 blocks of 256) where 80 registers spill — a lane
// holding more than 4 loads of a row unit (32-value SiLU·mul blocks), and every hardware-E2M1
// (sm_100a) target: NVRTC 13.0's ptxas spilled 8–16 bytes there (the gather and 32-value blocks
// since session 3; the plain line units since they hold 4 rows' loads), where 13.5's did not.
// Untimed: no Blackwell card was at hand.
// Blocks of 1024 threads (kWideBlocks: the host launches them for large problems,
// LaunchPlan.takesWideBlocks; row units only) put 32 consecutive row units on one SM and stage
// one silu table an SM instead of four: on an H200, row units at 1024 threads against 256
// (kernel lab and nvfp4 bench) took SiLU·mul + quantize 7–11 % and the plain kernel at K = 7168,
// M ≥ 8192 3–8.5 % below the best of 256-thread blocks (session 13), the gather 5–10 % at
// 16,384 and 32,768 rows and the float16 kernels 4–13 % at 4,096–32,768 (session 14), but
// small problems 25–70 % above it (M = 128).
constexpr bool kTightRegisters = kLoadsPerBlock > 4 || kHardwareE2M1;
constexpr bool kWideBlocks = !kTightRegisters;
constexpr int kTunedMaxThreads = kWideBlocks ? 1024 : 256;
constexpr int kTunedMinBlocks = kWideBlocks ? 1 : 2;

// The 4·kVectors 32-bit words of kVectors 16-byte vectors from v on (two 16-bit values a word).
template <int kVectors>
__device__ __forceinline__ void wordsOf(const uint4* v, uint32_t (&words)[4 * kVectors]) {
#pragma unroll
  for (int i = 0; i < kVectors; ++i) {
    words[4 * i] = v[i].x, words[4 * i + 1] = v[i].y, words[4 * i + 2] = v[i].z, words[4 * i + 3] = v[i].w;
  }
}

// Step 0 for one block: its B values of the input type, two a word (value 2i in the low half of
// word i), from B/8 vectors (identity) or gate and up vectors (silu by the staged table for
// bfloat16 gates, by the exponential for float16).
__device__ __forceinline__ void activateBlock(const uint4 (&v)[kLoadsPerBlock], uint32_t (&words)[kBlockSize / 2]) {
#if NVFP4_SILU_TABLE
  uint32_t gates[kBlockSize / 2], ups[kBlockSize / 2];
  wordsOf<kVectorsPerBlock>(v, gates);
  wordsOf<kVectorsPerBlock>(v + kVectorsPerBlock, ups);
  activateWordsFromTable(gates, ups, words);
#else
  wordsOf<kVectorsPerBlock>(v, words);
  if (kSiLUMul) {
    uint32_t ups[kBlockSize / 2];
    wordsOf<kVectorsPerBlock>(v + kVectorsPerBlock, ups);
#pragma unroll
    for (int w = 0; w < kBlockSize / 2; ++w) {
      words[w] = activatePair(lowValue(words[w]), lowValue(ups[w]), highValue(words[w]), highValue(ups[w]));
    }
  }
#endif
}

// One lane's block: quantizes B values (when `quantize`) and returns the scale byte (0 otherwise).
// The amax comes from the values still packed two a word, with a NaN or an infinity showing as a
// non-finite result (then blockAbsMax is taken value by value); a block whose values and output
// scale are all finite (every block in practice) takes its codes' signs from the words
// (packFiniteNibbles: 149 SASS instructions for 16 values against 193 at K = 7168), any other
// from the products (packNibbles).
__device__ __forceinline__ uint32_t quantizeBlock(const uint4 (&v)[kLoadsPerBlock], bool quantize, float gs,
                                                  float inverseGs, uint8_t* codes) {
  if (!quantize) return 0;
  uint32_t words[kBlockSize / 2];
  activateBlock(v, words);
  float amax = packedBlockAbsMaxOrNaN(words);
  const bool finite = amax <= kFloatMax;
  if (!finite) {  // NaN ignored, a value at a time (rare)
    amax = 0.0f;
#pragma unroll
    for (int j = 0; j < kBlockSize; ++j) amax = blockAbsMax(amax, valueAt(words, j));
  }
  const uint32_t scaleByte = encodeBlockScale(blockScale(amax, gs));
  const float outScale = outputScale(scaleByte, inverseGs);
  const bool signsFromWords = !kHardwareE2M1 && finite && outScale <= kFloatMax;  // no product NaN, each of its value's sign
#pragma unroll
  for (int h = 0; h < kBlockSize / 16; ++h) {  // 8 bytes of codes per 16 values
    *reinterpret_cast<uint2*>(codes + 8 * h) =
        signsFromWords
            ? make_uint2(packFiniteNibbles(words + 8 * h, outScale), packFiniteNibbles(words + 8 * h + 4, outScale))
            : codesFromProducts(words + 8 * h, outScale);
  }
  return scaleByte;
}

// ---- Phase 1: line units.

// A line unit: line set `lineSet` of a dense tile, blocks 32·chunk … 32·chunk + 31.
struct LineUnit {
  int64_t tile;        // the tile's index in the scale buffer (its first scale row / 128)
  int64_t firstRow;    // row 8·lineSet of the tile, as a row within the expert
  int64_t rows;        // the expert's row count
  int64_t routedBase;  // off[e] (the routed index of the expert's row 0)
  int expert;
  int lineSet;
  int chunk;
};

// Numbers line unit `unit` (uniform across the block): dense tile d = unit / (4·chunks) is tile
// d − dense[e] of expert e (an expert's dense tiles are its first), found by carrying the expert
// forward and searching the dense table when the tile left it.
__device__ __forceinline__ LineUnit numberLineUnit(const QuantParams& p, const int32_t* inputTable,
                                                   const int32_t* scaleTable, const int32_t* denseTable,
                                                   int64_t unit, int& expert) {
  LineUnit u;
  const int64_t lineSetIndex = unit / kChunksPerRow;
  u.chunk = int(unit - lineSetIndex * kChunksPerRow);
  u.lineSet = int(lineSetIndex % kUnitLineSets);
  const int64_t denseTile = lineSetIndex / kUnitLineSets;
  if (int64_t(denseTable[expert + 1]) <= denseTile) expert = findExpertInWarp(denseTable, p.expertCount, denseTile, expert + 1);
  u.expert = expert;
  const int64_t tileFirst = (denseTile - denseTable[expert]) * 128;  // the tile's first row within the expert
  u.tile = int64_t(scaleTable[expert]) / 128 + (denseTile - denseTable[expert]);
  u.firstRow = tileFirst + 8 * u.lineSet;
  u.routedBase = inputTable[expert];
  u.rows = int64_t(inputTable[expert + 1]) - u.routedBase;
  return u;
}

// Quantizes this warp's rows of a line unit (rows 8·lineSet + w + 32q of the tile),
// kRowsInFlight at a time with every load in flight, codes stored from the lanes; each 4-lane
// group merges a row's scale bytes into its word, and the group's first lane writes the 16 bytes
// of rows 8·lineSet + w (quarters 0…3) into its staged line. Only the kernels with line units
// (kLineUnits: swizzled, no gather or SiLU·mul) call it.
__device__ __forceinline__ void quantizeLineUnit(const QuantParams& p, const LineUnit& u, int warpInBlock, int lane,
                                                 uint8_t* staged) {
  const float gs = __ldg(p.globalScales + u.expert);
  const float inverseGs = __frcp_rn(gs);
  const int kb = u.chunk * 32 + lane;
  const bool columnExists = kb < kBlocksPerRow;
  uint32_t words[4];
#pragma unroll
  for (int batch = 0; batch < 4; batch += kRowsInFlight) {
    uint4 loaded[kRowsInFlight][kLoadsPerBlock];
    int64_t outputRow[kRowsInFlight];
    bool routed[kRowsInFlight];
#pragma unroll
    for (int r = 0; r < kRowsInFlight; ++r) {
      const int64_t m = u.firstRow + warpInBlock + 32 * (batch + r);
      routed[r] = m < u.rows;
      outputRow[r] = kMasked ? int64_t(u.expert) * p.rowCount + m : u.routedBase + m;
    }
#pragma unroll
    for (int r = 0; r < kRowsInFlight; ++r) {
      if (routed[r] && columnExists) {
        const uint4* input = reinterpret_cast<const uint4*>(p.input + outputRow[r] * kInputRowWidth + kb * kBlockSize);
#pragma unroll
        for (int v = 0; v < kVectorsPerBlock; ++v) loaded[r][v] = __ldg(input + v);
      }
    }
#pragma unroll
    for (int r = 0; r < kRowsInFlight; ++r) {
      const uint32_t scaleByte = quantizeBlock(loaded[r], routed[r] && columnExists, gs, inverseGs,
                                               p.codes + outputRow[r] * (kHiddenSize / 2) + kb * (kBlockSize / 2));
      uint32_t word = scaleByte << (8 * (lane & 3));
      word |= __shfl_xor_sync(0xFFFFFFFFu, word, 1);
      word |= __shfl_xor_sync(0xFFFFFFFFu, word, 2);
      words[batch + r] = word;
    }
  }
  if ((lane & 3) == 0) {
    *reinterpret_cast<uint4*>(staged + (lane >> 2) * kLineStride + warpInBlock * 16) =
        make_uint4(words[0], words[1], words[2], words[3]);
  }
}

// Stores a swizzled line unit's staged lines (after the block's barrier): warp t stores line t,
// the 4-block column 8·chunk + t, when the row has it.
__device__ __forceinline__ void storeLines(const QuantParams& p, const LineUnit& u, int warpInBlock, int lane,
                                           const uint8_t* staged) {
  const int kTile = u.chunk * kUnitTiles + warpInBlock;
  if (kTile >= kTiles) return;
  const uint32_t word = *reinterpret_cast<const uint32_t*>(staged + warpInBlock * kLineStride + lane * 4);
  *reinterpret_cast<uint32_t*>(p.scales + (u.tile * kTiles + kTile) * 512 + u.lineSet * 128 + lane * 4) = word;
}
