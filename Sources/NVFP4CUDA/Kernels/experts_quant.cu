// experts_quant.cu — NVFP4 quantization of expert-grouped activations.
//
// Purpose: bf16/fp16 rows grouped by expert → packed E2M1 codes (two per byte), one E4M3 scale
// per 16 values in the 128×4 swizzled (or linear) layout, with expert e's FP32 global scale.
// Three entry points share the spec steps below and the parameter struct:
//   nvfp4_quantize_tuned     the default (one wave, 16 values per thread, carried expert lookup)
//   nvfp4_quantize_seed      the seed algorithm (8 values per thread, flattened grid-stride loop,
//                            offsets in registers or shared memory), out-of-bounds reads fixed
//   nvfp4_quantize_baseline  the pre-optimization algorithm (block per row, linear scan)
// plus nvfp4_round_to_e2m1_all / nvfp4_encode_e4m3_all, which convert a range of float bit
// patterns so that tests can compare every pattern against the CPU encoders.
//
// Legend: M rows, K values per row, E experts; s a scale row, m a row within its expert,
// kb = column / 16 a block, off = input offsets [E+1], soff = scale offsets [E+1].
//
// Layouts:
//   input   [M, K] 16-bit values, row r at input + r·K
//   codes   [M, K/2] bytes; byte j of a row holds element 2j (low nibble) and 2j+1 (high)
//   scales  swizzled: byte (s/128·kTiles + kb/4)·512 + (s%32)·16 + (s/32%4)·4 + kb%4,
//           kTiles = ceil(K/64), for every scale row s < soff[E] and kb < 4·kTiles
//           (scale offsets are multiples of 128, so this is the per-expert formula with the
//           expert's base soff[e]·4·kTiles folded in); linear: byte s·(K/16) + kb.
//   Expert e owns rows off[e]..off[e+1] and scale rows soff[e]..soff[e+1]; its scale rows past
//   its row count, and the padding columns kb ≥ K/16, are written as 0. Rows ≥ off[E] are
//   neither read for output nor written.
//
// Numerics (identical to the CPU reference, Sources/NVFP4/Reference/QuantizationSteps.swift):
//   blockAbsMax      max |x| over 16 values, NaN ignored (fmaxf)
//   blockScale       gs · (amax · r6), r6 = 1/6 rounded to float; two rounded products
//   encodeBlockScale E4M3 (cvt.rn.satfinite.e4m3x2.f32: nearest-even, saturate to 448)
//   outputScale      sf' == 0 ? 0 : 1 / (sf' · (1 / gs)), correctly rounded (__frcp_rn)
//   roundToE2M1      E2M1(x · outScale): nearest-even, saturate to ±6, −0 keeps its sign,
//                    NaN → +6 (0x7), as cvt.rn.satfinite.e2m1x2.f32 documents
//   packNibbles      element 2j in the low nibble
// All products use __fmul_rn so no FMA contraction can change a rounding.
//
// Compile-time parameters (injected by Swift as -D options, each checked below):
//   NVFP4_HIDDEN_SIZE     K, a positive multiple of 16
//   NVFP4_INPUT_BF16      1 for bfloat16 input, 0 for float16
//   NVFP4_SWIZZLED        1 for the 128×4 swizzled scale layout, 0 for linear
//   NVFP4_HARDWARE_E2M1   1 to use cvt.rn.satfinite.e2m1x2.f32 (sm_100a and later), 0 for software

#ifndef NVFP4_HIDDEN_SIZE
#error "NVFP4_HIDDEN_SIZE must be defined"
#endif
#ifndef NVFP4_INPUT_BF16
#error "NVFP4_INPUT_BF16 must be defined"
#endif
#ifndef NVFP4_SWIZZLED
#error "NVFP4_SWIZZLED must be defined"
#endif
#ifndef NVFP4_HARDWARE_E2M1
#error "NVFP4_HARDWARE_E2M1 must be defined"
#endif

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef int int32_t;
typedef unsigned long long uint64_t;
typedef long long int64_t;

constexpr int kHiddenSize = NVFP4_HIDDEN_SIZE;
constexpr bool kInputBF16 = NVFP4_INPUT_BF16 != 0;
constexpr bool kSwizzled = NVFP4_SWIZZLED != 0;
constexpr bool kHardwareE2M1 = NVFP4_HARDWARE_E2M1 != 0;
static_assert(kHiddenSize > 0 && kHiddenSize % 16 == 0, "K must be a positive multiple of 16");
static_assert(NVFP4_INPUT_BF16 == 0 || NVFP4_INPUT_BF16 == 1, "NVFP4_INPUT_BF16 is 0 or 1");
static_assert(NVFP4_SWIZZLED == 0 || NVFP4_SWIZZLED == 1, "NVFP4_SWIZZLED is 0 or 1");
static_assert(NVFP4_HARDWARE_E2M1 == 0 || NVFP4_HARDWARE_E2M1 == 1, "NVFP4_HARDWARE_E2M1 is 0 or 1");

constexpr int kBlocksPerRow = kHiddenSize / 16;            // scales per row
constexpr int kTiles = (kBlocksPerRow + 3) / 4;            // 64-column tiles per row
constexpr int kScaleColumns = kSwizzled ? 4 * kTiles : kBlocksPerRow;  // scale bytes per row
constexpr int kVectorsPerRow = kHiddenSize / 8;            // 16-byte vectors per row

// The one argument of every quantization entry point. Mirrored by Swift's
// `ExpertsQuantParameters`; a test checks its size and offsets against these assertions.
struct QuantParams {
  const uint16_t* input;         // [M, K]
  uint8_t* codes;                // [M, K/2]
  uint8_t* scales;               // scale buffer
  const int32_t* inputOffsets;   // [E + 1]
  const int32_t* scaleOffsets;   // [E + 1]
  const float* globalScales;     // [E]
  int64_t rowCount;              // M
  int32_t expertCount;           // E
  int32_t sharedTables;          // 1: the offset tables fit in dynamic shared memory
};
static_assert(sizeof(QuantParams) == 64, "QuantParams layout changed: update Swift");
// NVRTC 13.0 has no __builtin_offsetof; newer ones (and CI's) check the offsets too.
#if defined(__has_builtin)
#if __has_builtin(__builtin_offsetof)
static_assert(__builtin_offsetof(QuantParams, rowCount) == 48, "QuantParams layout changed");
static_assert(__builtin_offsetof(QuantParams, expertCount) == 56, "QuantParams layout changed");
static_assert(__builtin_offsetof(QuantParams, sharedTables) == 60, "QuantParams layout changed");
#endif
#endif

// Dynamic shared memory: off then soff ([E + 1] each) when p.sharedTables is set.
extern __shared__ int32_t sharedTables[];

// ---------------------------------------------------------------------------------------------
// Spec steps, in the order of the CPU reference.

__device__ __forceinline__ float toFloat(uint16_t bits) {
  if (kInputBF16) {
    return __uint_as_float(uint32_t(bits) << 16);
  } else {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
    return f;
  }
}

// Step 1: running max of |x|; fmaxf ignores NaN, like the reference.
__device__ __forceinline__ float blockAbsMax(float amax, float x) { return fmaxf(amax, fabsf(x)); }

// Step 2.
__device__ __forceinline__ float blockScale(float amax, float globalScale) {
  const float r6 = 1.0f / 6.0f;
  return __fmul_rn(globalScale, __fmul_rn(amax, r6));
}

// Step 3: E4M3, nearest-even, saturated (the hardware conversion, sm_89 and later).
__device__ __forceinline__ uint32_t encodeBlockScale(float scale) {
  uint16_t pair;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(scale));
  return pair & 0xFFu;
}

__device__ __forceinline__ float decodeBlockScale(uint32_t code) {
  uint32_t halves;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(halves) : "h"(uint16_t(code)));
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(uint16_t(halves & 0xFFFFu)));
  return f;
}

// Step 4.
__device__ __forceinline__ float outputScale(float decodedScale, float globalScale) {
  return decodedScale == 0.0f ? 0.0f : __frcp_rn(__fmul_rn(decodedScale, __frcp_rn(globalScale)));
}

// Step 5, software: the code of one value, sign in bit 3.
//
// The E2M1 grid has spacing q = 0.5 below 2, 1 in [2, 4) and 2 above. For each spacing the FP32
// adder rounds |y| to a multiple of q, ties to even, when q·2^23 is added; the bit distance of
// the sum from q·2^23 counts the quanta n_q. The candidate codes c = n_0.5, n_1 + 2, n_2 + 4
// follow min(2y, y + 2, y/2 + 4), a concave function whose pieces meet at 2 and 4, so the code
// is min(c_0.5, c_1, c_2, 7) — each candidate rounded once, at its own spacing. The first sum
// carries y's sign: its top nibble is sign·8 + 4 whenever the code is below 7 (exponent 149 or
// 150), so xor 4 leaves the sign; for huge values, ±Inf and NaN the extra low bits fall inside
// the code 7. NaN leaves the adder as the canonical positive NaN: code 0x7. −0 and negative
// values that round to zero keep their sign.
__device__ __forceinline__ uint32_t roundToE2M1Software(float y) {
  const uint32_t magicHalf = 0x4A800000u | (__float_as_uint(y) & 0x80000000u);  // ±2^22
  const uint32_t sumHalf = __float_as_uint(__fadd_rn(y, __uint_as_float(magicHalf)));
  const uint32_t sumOne = __float_as_uint(__fadd_rn(fabsf(y), 8388608.0f));     // + 2^23
  const uint32_t sumTwo = __float_as_uint(__fadd_rn(fabsf(y), 16777216.0f));    // + 2^24
  uint32_t code = sumHalf - magicHalf;
  code = min(code, sumOne - (0x4B000000u - 2u));
  code = min(code, sumTwo - (0x4B800000u - 4u));
  return min(code, 7u) | ((sumHalf >> 28) ^ 4u);
}

// Step 5 for a pair: the packed byte (first in the low nibble).
__device__ __forceinline__ uint32_t roundPairToE2M1(float first, float second) {
  if (kHardwareE2M1) {
    uint32_t byte;
    asm("{\n .reg .b8 pair;\n cvt.rn.satfinite.e2m1x2.f32 pair, %2, %1;\n cvt.u32.u8 %0, pair;\n}"
        : "=r"(byte) : "f"(first), "f"(second));
    return byte;
  } else {
    return roundToE2M1Software(first) | (roundToE2M1Software(second) << 4);
  }
}

// Step 6: codes of 8 values (x · outScale) packed into 4 bytes.
__device__ __forceinline__ uint32_t packNibbles(const float (&x)[8], float outScale) {
  uint32_t word = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    word |= roundPairToE2M1(__fmul_rn(x[2 * j], outScale), __fmul_rn(x[2 * j + 1], outScale)) << (8 * j);
  }
  return word;
}

// Where block kb of scale row s lives.
__device__ __forceinline__ int64_t scaleByteOffset(int64_t s, int kb) {
  if (kSwizzled) {
    return ((s >> 7) * kTiles + (kb >> 2)) * 512 + (s & 31) * 16 + ((s >> 5) & 3) * 4 + (kb & 3);
  } else {
    return s * kBlocksPerRow + kb;
  }
}

// 8 values of one 16-byte vector.
__device__ __forceinline__ void unpack(uint4 v, float (&x)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    x[2 * i] = toFloat(uint16_t(w[i] & 0xFFFFu));
    x[2 * i + 1] = toFloat(uint16_t(w[i] >> 16));
  }
}

// The expert owning scale row s: the last e with table[e] <= s, searching e in [low, E).
__device__ __forceinline__ int findExpert(const int32_t* table, int expertCount, int64_t s, int low) {
  int high = expertCount;  // table[high] > s for the range searched (table[E] = soff[E] > s)
  while (high - low > 1) {
    const int mid = (low + high) >> 1;
    if (int64_t(table[mid]) <= s) low = mid; else high = mid;
  }
  return low;
}

// Copies off and soff into shared memory (when they fit) and returns the tables to search.
__device__ __forceinline__ void stageTables(const QuantParams& p, int32_t* shared,
                                            const int32_t*& inputTable, const int32_t*& scaleTable) {
  if (p.sharedTables) {
    for (int i = threadIdx.x; i <= p.expertCount; i += blockDim.x) {
      shared[i] = p.inputOffsets[i];
      shared[p.expertCount + 1 + i] = p.scaleOffsets[i];
    }
    __syncthreads();
    inputTable = shared;
    scaleTable = shared + p.expertCount + 1;
  } else {
    inputTable = p.inputOffsets;
    scaleTable = p.scaleOffsets;
  }
}

// ---------------------------------------------------------------------------------------------
// tuned: two phases, each balanced on its own.
//   1. Routed rows r < off[E], split into units of kTunedUnroll steps of a row, strided over
//      warps: a warp takes kRowsPerWarp rows at a time and its lanes walk the unit's blocks, 16
//      values (32 bytes in, 8 bytes of codes out) per lane and step, with every load of the unit
//      in flight at once.
//   2. Padding scale rows (past each expert's row count): swizzled 16-byte chunks strided over
//      the whole grid, a 16-byte zero store wherever a whole chunk is padding.
// The expert of a row is carried forward per lane (rows only grow): one comparison unless the
// row left the expert, then a binary search of the rest. The 4 lanes holding kb = 4q..4q+3 of a
// swizzled row merge their scale bytes; one stores the word.

constexpr int kLanesPerRow =
    kScaleColumns >= 32 ? 32 : (32 % kScaleColumns == 0 ? kScaleColumns : 32);  // lanes on one row
constexpr int kRowsPerWarp = 32 / kLanesPerRow;                                  // rows per warp step
constexpr int kColumnSteps = (kScaleColumns + kLanesPerRow - 1) / kLanesPerRow;  // blocks per lane
constexpr int kTunedUnroll = kColumnSteps < 2 ? kColumnSteps : 2;                // steps per unit
constexpr int kUnitsPerRow = (kColumnSteps + kTunedUnroll - 1) / kTunedUnroll;
static_assert(!kSwizzled || kLanesPerRow % 4 == 0, "4-lane scale groups must not straddle rows");

// One lane's block: quantizes 16 values (when `quantize`) and returns the scale byte (0 otherwise).
__device__ __forceinline__ uint32_t quantizeBlock(const uint4 (&v)[2], bool quantize, float gs, float inverseGs,
                                                  uint8_t* codes) {
  if (!quantize) return 0;
  float x[2][8];
  unpack(v[0], x[0]);
  unpack(v[1], x[1]);
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < 8; ++i) amax = blockAbsMax(blockAbsMax(amax, x[0][i]), x[1][i]);
  const uint32_t scaleByte = encodeBlockScale(blockScale(amax, gs));
  const float decoded = decodeBlockScale(scaleByte);
  const float outScale = decoded == 0.0f ? 0.0f : __frcp_rn(__fmul_rn(decoded, inverseGs));
  *reinterpret_cast<uint2*>(codes) = make_uint2(packNibbles(x[0], outScale), packNibbles(x[1], outScale));
  return scaleByte;
}

// Stores the scale byte of block kb of scale row s; swizzled rows merge 4 lanes into one word.
// Every lane of the 4-lane group must call it together.
__device__ __forceinline__ void storeScale(uint8_t* scales, int64_t s, int kb, uint32_t scaleByte, uint32_t groupMask) {
  if (kSwizzled) {
    uint32_t word = scaleByte << (8 * (kb & 3));
    word |= __shfl_xor_sync(groupMask, word, 1);
    word |= __shfl_xor_sync(groupMask, word, 2);
    if ((kb & 3) == 0) *reinterpret_cast<uint32_t*>(scales + scaleByteOffset(s, kb)) = word;
  } else {
    scales[scaleByteOffset(s, kb)] = uint8_t(scaleByte);
  }
}

// A unit of phase 1: kTunedUnroll steps of one routed row, located before its loads are issued.
struct RoutedUnit {
  const uint16_t* input;  // the row's first value
  uint8_t* codes;         // the row's first code byte
  int64_t scaleRow;
  float gs;
  int firstStep;
  bool valid;
};

// Locates unit `unit` for this lane (rows grow with units, so `expert` is carried forward).
__device__ __forceinline__ RoutedUnit locateUnit(const QuantParams& p, const int32_t* inputTable,
                                                 const int32_t* scaleTable, int64_t unit, int64_t unitCount,
                                                 int slot, int& expert) {
  RoutedUnit u;
  const int64_t group = unit / kUnitsPerRow;
  const int64_t row = group * kRowsPerWarp + slot;
  const int64_t routedRows = inputTable[p.expertCount];
  u.valid = unit < unitCount && row < routedRows;
  if (!u.valid) return u;
  u.firstStep = int(unit - group * kUnitsPerRow) * kTunedUnroll;
  if (int64_t(inputTable[expert + 1]) <= row) expert = findExpert(inputTable, p.expertCount, row, expert + 1);
  u.scaleRow = scaleTable[expert] + (row - inputTable[expert]);
  u.gs = __ldg(p.globalScales + expert);
  u.input = p.input + row * kHiddenSize;
  u.codes = p.codes + row * (kHiddenSize / 2);
  return u;
}

// Issues every load of a unit (nothing for an invalid one).
__device__ __forceinline__ void loadUnit(const RoutedUnit& u, int column, uint4 (&loaded)[kTunedUnroll][2]) {
#pragma unroll
  for (int k = 0; k < kTunedUnroll; ++k) {
    const int kb = (u.firstStep + k) * kLanesPerRow + column;
    if (u.valid && u.firstStep + k < kColumnSteps && kb < kBlocksPerRow) {
      const uint4* source = reinterpret_cast<const uint4*>(u.input + kb * 16);
      loaded[k][0] = __ldg(source);
      loaded[k][1] = __ldg(source + 1);
    }
  }
}

// Quantizes a loaded unit and stores its codes and scales.
__device__ __forceinline__ void storeUnit(const RoutedUnit& u, int column, const uint4 (&loaded)[kTunedUnroll][2],
                                          uint8_t* scales, uint32_t groupMask) {
  if (!u.valid) return;  // uniform across each row's lanes
  const float inverseGs = __frcp_rn(u.gs);
#pragma unroll
  for (int k = 0; k < kTunedUnroll; ++k) {
    const int kb = (u.firstStep + k) * kLanesPerRow + column;
    if (u.firstStep + k >= kColumnSteps || kb >= kScaleColumns) break;  // uniform per 4-lane group
    const uint32_t scaleByte = quantizeBlock(loaded[k], kb < kBlocksPerRow, u.gs, inverseGs, u.codes + kb * 8);
    storeScale(scales, u.scaleRow, kb, scaleByte, groupMask);
  }
}

// Zeroes the padding of a swizzled scale buffer. Chunk (tile, kTile, r) is the 16 bytes holding
// rows r, r+32, r+64, r+96 of a 128-row tile; every tile belongs to one expert (scale offsets are
// multiples of 128) and the expert's padding rows are a suffix of its rows, so the chunk is all
// padding when row r is: one 16-byte store clears it, else its padding rows get 4-byte stores.
// Chunks are strided over the whole grid, r fastest (a warp's stores cover 512 contiguous bytes),
// and each thread carries the tile's expert forward.
__device__ __forceinline__ void zeroSwizzledPadding(uint8_t* scales, const int32_t* inputTable,
                                                    const int32_t* scaleTable, int E) {
  const int64_t chunkCount = int64_t(scaleTable[E]) / 128 * 32 * kTiles;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int expert = 0;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < chunkCount; c += stride) {
    const int64_t tile = c / (32 * kTiles);
    const int64_t tileFirstRow = tile * 128;
    if (int64_t(scaleTable[expert + 1]) <= tileFirstRow) expert = findExpert(scaleTable, E, tileFirstRow, expert + 1);
    const int64_t firstPadding = int64_t(scaleTable[expert]) + (int64_t(inputTable[expert + 1]) - inputTable[expert]);
    if (tileFirstRow + 128 <= firstPadding) continue;  // no padding row in this tile
    const int r = int(c % 32);
    uint8_t* chunk = scales + scaleByteOffset(tileFirstRow + r, int(c / 32 % kTiles) * 4);
    if (tileFirstRow + r >= firstPadding) {
      *reinterpret_cast<uint4*>(chunk) = make_uint4(0, 0, 0, 0);
    } else {
#pragma unroll
      for (int j = 1; j < 4; ++j) {
        if (tileFirstRow + r + 32 * j >= firstPadding) *reinterpret_cast<uint32_t*>(chunk + 4 * j) = 0;
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

extern "C" __global__ void __launch_bounds__(256, 3) nvfp4_quantize_tuned(const QuantParams p) {
  const int32_t* inputTable;
  const int32_t* scaleTable;
  stageTables(p, sharedTables, inputTable, scaleTable);

  const int E = p.expertCount;
  const int lane = threadIdx.x & 31;
  const int slot = lane / kLanesPerRow;    // which of the warp's rows
  const int column = lane % kLanesPerRow;  // first block of this lane
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  const uint32_t groupMask = 0xFu << (lane & ~3);

  // Phase 1: routed rows, a unit at a time: every load of the unit in flight, then quantize.
  const int64_t routedRows = inputTable[E];
  const int64_t unitCount = (routedRows + kRowsPerWarp - 1) / kRowsPerWarp * kUnitsPerRow;
  int expert = 0;
  for (int64_t unit = warp; unit < unitCount; unit += warps) {
    uint4 loaded[kTunedUnroll][2];
    const RoutedUnit u = locateUnit(p, inputTable, scaleTable, unit, unitCount, slot, expert);
    loadUnit(u, column, loaded);
    storeUnit(u, column, loaded, p.scales, groupMask);
  }

  // Phase 2: padding.
  if (kSwizzled) {
    zeroSwizzledPadding(p.scales, inputTable, scaleTable, E);
  } else {
    zeroLinearPadding(p.scales, inputTable, scaleTable, E);
  }
}

// ---------------------------------------------------------------------------------------------
// seed and baseline: 8 values (one vector) per thread; lanes 2j and 2j+1 hold one 16-value
// block and exchange their partial amax with a shuffle. Padding is not written by these
// kernels: the launcher zeroes the scale buffer first (as engines do with a zeroed allocation).

enum class Lookup { registers, shared, globalScan };

// The expert owning input row `row`, or -1 when row >= off[E].
template <Lookup kLookup>
__device__ __forceinline__ int expertOfRow(const int32_t* table, const int32_t* global, int E, int64_t row) {
  if (kLookup == Lookup::shared) {
    if (row >= int64_t(table[E])) return -1;
    int low = 0, high = E;  // last e with table[e] <= row among non-empty segments
    while (high - low > 1) {
      const int mid = (low + high) >> 1;
      if (int64_t(table[mid]) <= row) low = mid; else high = mid;
    }
    return low;
  } else if (kLookup == Lookup::registers) {
    // 16 offsets at a time into registers; the chunk tail past off[E] reads nothing.
    for (int base = 0; base < E; base += 16) {
      int32_t chunk[17];
#pragma unroll
      for (int i = 0; i < 17; ++i) chunk[i] = (base + i <= E) ? __ldg(global + base + i) : 0x7FFFFFFF;
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        if (base + i < E && row >= chunk[i] && row < chunk[i + 1]) return base + i;
      }
    }
    return -1;
  } else {
    for (int e = 0; e < E; ++e) {
      if (row >= int64_t(global[e]) && row < int64_t(global[e + 1])) return e;
    }
    return -1;
  }
}

// The lanes that exist in this thread's warp (a block smaller than 32 threads has fewer).
__device__ __forceinline__ uint32_t warpLanes() {
  const uint32_t present = blockDim.x - (threadIdx.x & ~31u);
  return present >= 32 ? 0xFFFFFFFFu : (1u << present) - 1u;
}

// Quantizes vector `column` of input row `row` (8 values); the even lane of a pair writes the
// scale. Every lane of the warp calls it together (the shuffle); `active` marks real work.
template <Lookup kLookup>
__device__ __forceinline__ void quantizeVector(const QuantParams& p, const int32_t* table, int64_t row,
                                               int column, bool active) {
  const int expert = active ? expertOfRow<kLookup>(table, p.inputOffsets, p.expertCount, row) : -1;
  float x[8];
  float amax = 0.0f;
  if (expert >= 0) {
    unpack(__ldg(reinterpret_cast<const uint4*>(p.input + row * kHiddenSize + int64_t(column) * 8)), x);
#pragma unroll
    for (int i = 0; i < 8; ++i) amax = blockAbsMax(amax, x[i]);
  }
  amax = fmaxf(amax, __shfl_xor_sync(warpLanes(), amax, 1));
  if (expert < 0) return;
  const float gs = __ldg(p.globalScales + expert);
  const uint32_t scaleByte = encodeBlockScale(blockScale(amax, gs));
  const float outScale = outputScale(decodeBlockScale(scaleByte), gs);
  *reinterpret_cast<uint32_t*>(p.codes + row * (kHiddenSize / 2) + int64_t(column) * 4) = packNibbles(x, outScale);
  if ((column & 1) == 0) {
    const int32_t* scaleOffsets = p.scaleOffsets;
    const int32_t* inputOffsets = kLookup == Lookup::shared ? table : p.inputOffsets;
    const int64_t s = int64_t(scaleOffsets[expert]) + (row - inputOffsets[expert]);
    p.scales[scaleByteOffset(s, column >> 1)] = uint8_t(scaleByte);
  }
}

// The seed's flattened grid-stride loop over M·K/8 vectors; one kernel for both lookups.
template <Lookup kLookup>
__device__ __forceinline__ void seedLoop(const QuantParams& p) {
  if (kLookup == Lookup::shared) {
    for (int i = threadIdx.x; i <= p.expertCount; i += blockDim.x) sharedTables[i] = p.inputOffsets[i];
    __syncthreads();
  }
  const int64_t total = p.rowCount * kVectorsPerRow;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  // Whole warps iterate together so the pair shuffle always has both lanes.
  const int64_t warpStart = int64_t(blockIdx.x) * blockDim.x + (threadIdx.x & ~31u);
  for (int64_t base = warpStart; base < total; base += stride) {
    const int64_t index = base + (threadIdx.x & 31);
    const int64_t row = index / kVectorsPerRow;
    quantizeVector<kLookup>(p, sharedTables, row, int(index - row * kVectorsPerRow), index < total);
  }
}

extern "C" __global__ void nvfp4_quantize_seed(const QuantParams p) {
  if (p.sharedTables) seedLoop<Lookup::shared>(p); else seedLoop<Lookup::registers>(p);
}

// The pre-optimization algorithm: blocks stride over rows, threads over the row's vectors, and
// every vector scans all experts' offsets in global memory.
extern "C" __global__ void nvfp4_quantize_baseline(const QuantParams p) {
  const int columnsRounded = (kVectorsPerRow + blockDim.x - 1) / blockDim.x * blockDim.x;  // warp-uniform trips
  for (int64_t row = blockIdx.x; row < p.rowCount; row += gridDim.x) {
    for (int column = threadIdx.x; column < columnsRounded; column += blockDim.x) {
      quantizeVector<Lookup::globalScan>(p, nullptr, row, column, column < kVectorsPerRow);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive checks: convert `count` float bit patterns starting at `first` (count is even).

// The argument of the conversion checks. Mirrored by Swift's `ConversionCheckParameters`.
struct ConversionParams {
  uint8_t* out;
  uint64_t count;
  uint32_t first;
  uint32_t reserved;
};
static_assert(sizeof(ConversionParams) == 24, "ConversionParams layout changed: update Swift");

// E2M1 codes of patterns first + i, two per byte (pattern first + 2j in the low nibble).
extern "C" __global__ void nvfp4_round_to_e2m1_all(const ConversionParams p) {
  for (uint64_t j = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < p.count / 2;
       j += uint64_t(gridDim.x) * blockDim.x) {
    const float a = __uint_as_float(p.first + uint32_t(2 * j));
    const float b = __uint_as_float(p.first + uint32_t(2 * j + 1));
    p.out[j] = uint8_t(roundPairToE2M1(a, b));
  }
}

// E4M3 codes of patterns first + i.
extern "C" __global__ void nvfp4_encode_e4m3_all(const ConversionParams p) {
  for (uint64_t j = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < p.count;
       j += uint64_t(gridDim.x) * blockDim.x) {
    p.out[j] = uint8_t(encodeBlockScale(__uint_as_float(p.first + uint32_t(j))));
  }
}
