// experts_quant.cu — NVFP4 quantization of expert-grouped activations.
//
// Purpose: bf16/fp16 rows grouped by expert → packed E2M1 codes (two per byte), one scale per
// block of 16 (or 32) values in the 128×4 swizzled (or linear) layout, with expert e's FP32
// global scale. Entry points share the spec steps below and the parameter struct:
//   nvfp4_quantize_tuned     the default and the only fused one: every option below (one wave,
//                            line units writing whole scale lines for dense tiles, row units a
//                            block per lane and step with a carried expert lookup, padding zeroed)
//   nvfp4_quantize_seed      the seed algorithm (8 values per thread, flattened grid-stride loop,
//                            offsets in registers or shared memory), out-of-bounds reads fixed
//   nvfp4_quantize_baseline  the pre-optimization algorithm (block per row, linear scan)
//   (seed and baseline exist only for the plain configuration: 16-value E4M3 blocks, identity)
// The unfused steps an engine would otherwise run, for the benchmark's comparisons:
//   nvfp4_gather_rows        output row r = input row permutation[r] (W values)
//   nvfp4_silu_mul_rows      output [R, K] = SiLU·mul of input rows [gate K | up K], in the input
//                            type (the fused kernel's exact step 0)
// plus nvfp4_round_to_e2m1_all, nvfp4_encode_e4m3_all, nvfp4_encode_ue8m0_all and
// nvfp4_silu_all, which convert a range of float bit patterns so that tests can compare every
// pattern against the CPU functions.
//
// Legend: M rows, K values per row, E experts (L groups when masked), B values per block,
// s a scale row, m a row within its expert, kb = column / B a block, off = input offsets [E+1],
// soff = scale offsets [E+1], W = K (identity) or 2K (SiLU·mul: a row is [gate K | up K]).
//
// Layouts (Documentation/FusedVariants.md has the contract):
//   input   [M, W] 16-bit values (gather: [T, W], output row r reads row permutation[r];
//           masked: [L, Mmax, W])
//   codes   [M, K/2] bytes (masked: [L, Mmax, K/2]); byte j holds element 2j (low nibble), 2j+1
//   scales  swizzled: byte (s/128·kTiles + kb/4)·512 + (s%32)·16 + (s/32%4)·4 + kb%4,
//           kTiles = ceil(K/B/4), for every scale row s < soff[E] and kb < 4·kTiles (scale
//           offsets are multiples of 128, so this is the per-expert formula with the expert's
//           base soff[e]·4·kTiles folded in); linear: byte s·(K/B) + kb.
//   Offsets layout: expert e owns rows off[e]..off[e+1] and scale rows soff[e]..soff[e+1].
//   Masked layout: group e owns rows e·Mmax + m, m < min(mask[e], Mmax), and scale rows
//   e·S + m, S = roundUp(Mmax, 128); the kernel derives off (the prefix of the clamped mask,
//   the "routed index" of a valid row) and soff = e·S in shared memory.
//   Scale rows past an expert's row count, and padding columns kb ≥ K/B, are written as 0.
//   Rows that no expert owns are neither read nor written.
//
// Numerics (identical to the CPU reference, Sources/NVFP4/Reference/QuantizationSteps.swift):
//   activate         identity, or y = silu(g)·u with silu(g) = g / (1 + expSiLU(−g)), rounded
//                    to the input type (nearest-even) and back (Documentation/FusedVariants.md)
//   blockAbsMax      max |x| over B values, NaN ignored (fmaxf)
//   blockScale       gs · (amax · r6), r6 = 1/6 rounded to float; two rounded products
//   encodeBlockScale E4M3 (cvt.rn.satfinite.e4m3x2.f32: nearest-even, saturate to 448) or UE8M0
//                    (rounded up to a power of two, saturated at 254)
//   outputScale      code == 0 ? 0 : 1 / (sf' · (1 / gs)), correctly rounded (__frcp_rn)
//   roundToE2M1      E2M1(x · outScale): nearest-even, saturate to ±6, −0 keeps its sign,
//                    NaN → +6 (0x7), as cvt.rn.satfinite.e2m1x2.f32 documents
//   packNibbles      element 2j in the low nibble
// All products use __fmul_rn (sums __fadd_rn) so no FMA contraction can change a rounding; the
// exp's fused multiply-adds are explicit (__fmaf_rn), as the specification writes them.
//
// Compile-time parameters (injected by Swift as -D options, each checked below):
//   NVFP4_HIDDEN_SIZE     K, a positive multiple of NVFP4_BLOCK_SIZE
//   NVFP4_INPUT_BF16      1 for bfloat16 input, 0 for float16
//   NVFP4_SWIZZLED        1 for the 128×4 swizzled scale layout, 0 for linear
//   NVFP4_HARDWARE_E2M1   1 to use cvt.rn.satfinite.e2m1x2.f32 (sm_100a and later), 0 for software
//   NVFP4_BLOCK_SIZE      B: 16, or 32 (UE8M0 scales only)
//   NVFP4_SCALE_UE8M0     1 for UE8M0 scales, 0 for E4M3
//   NVFP4_SILU_MUL        1 when input rows are [gate | up] and the kernel applies SiLU·mul
//   NVFP4_ROW_MAP         0: offsets layout, row r reads input row r; 1: offsets layout with a
//                         gather (row r reads input row permutation[r]); 2: masked layout

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
#ifndef NVFP4_BLOCK_SIZE
#error "NVFP4_BLOCK_SIZE must be defined"
#endif
#ifndef NVFP4_SCALE_UE8M0
#error "NVFP4_SCALE_UE8M0 must be defined"
#endif
#ifndef NVFP4_SILU_MUL
#error "NVFP4_SILU_MUL must be defined"
#endif
#ifndef NVFP4_ROW_MAP
#error "NVFP4_ROW_MAP must be defined"
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
constexpr int kBlockSize = NVFP4_BLOCK_SIZE;
constexpr bool kScaleUE8M0 = NVFP4_SCALE_UE8M0 != 0;
constexpr bool kSiLUMul = NVFP4_SILU_MUL != 0;
constexpr bool kGather = NVFP4_ROW_MAP == 1;
constexpr bool kMasked = NVFP4_ROW_MAP == 2;
static_assert(NVFP4_ROW_MAP >= 0 && NVFP4_ROW_MAP <= 2, "NVFP4_ROW_MAP is 0, 1 or 2");
static_assert(NVFP4_INPUT_BF16 == 0 || NVFP4_INPUT_BF16 == 1, "NVFP4_INPUT_BF16 is 0 or 1");
static_assert(NVFP4_SWIZZLED == 0 || NVFP4_SWIZZLED == 1, "NVFP4_SWIZZLED is 0 or 1");
static_assert(NVFP4_HARDWARE_E2M1 == 0 || NVFP4_HARDWARE_E2M1 == 1, "NVFP4_HARDWARE_E2M1 is 0 or 1");
static_assert(NVFP4_SCALE_UE8M0 == 0 || NVFP4_SCALE_UE8M0 == 1, "NVFP4_SCALE_UE8M0 is 0 or 1");
static_assert(NVFP4_SILU_MUL == 0 || NVFP4_SILU_MUL == 1, "NVFP4_SILU_MUL is 0 or 1");
static_assert(kBlockSize == 16 || (kBlockSize == 32 && kScaleUE8M0), "B is 16, or 32 with UE8M0 scales");
static_assert(kHiddenSize > 0 && kHiddenSize % kBlockSize == 0, "K must be a positive multiple of B");

#define NVFP4_PLAIN (NVFP4_BLOCK_SIZE == 16 && NVFP4_SCALE_UE8M0 == 0 && NVFP4_SILU_MUL == 0 && NVFP4_ROW_MAP == 0)

constexpr int kBlocksPerRow = kHiddenSize / kBlockSize;    // scales per row
constexpr int kTiles = (kBlocksPerRow + 3) / 4;            // 4-block tiles per row
constexpr int kVectorsPerBlock = kBlockSize / 8;           // 16-byte vectors per block
constexpr int kInputRowWidth = kSiLUMul ? 2 * kHiddenSize : kHiddenSize;  // W

// The one argument of every quantization entry point. Mirrored by Swift's
// `ExpertsQuantParameters`; a test checks its size and offsets against these assertions.
struct QuantParams {
  const uint16_t* input;         // [M, W] (gather: [T, W]; masked: [L, Mmax, W])
  uint8_t* codes;                // [M, K/2]
  uint8_t* scales;               // scale buffer
  const int32_t* inputOffsets;   // [E + 1] (masked: the mask [L])
  const int32_t* scaleOffsets;   // [E + 1] (masked: unused)
  const float* globalScales;     // [E]
  const int32_t* permutation;    // gather: source row of each output row (else unused)
  int64_t rowCount;              // M (masked: Mmax)
  int64_t sourceRowCount;        // rows of the input a gathered row may name (T)
  int32_t expertCount;           // E (masked: L)
  int32_t flags;                 // kSharedTables | kAlwaysLineUnits
  uint32_t* status;              // non-null: validate the tables on the device, OR violations in here
  int64_t scaleRowCapacity;      // rows the scale buffer holds (checked when validating)
};
static_assert(sizeof(QuantParams) == 96, "QuantParams layout changed: update Swift");
// NVRTC 13.0 has no __builtin_offsetof; newer ones (and CI's) check the offsets too.
#if defined(__has_builtin)
#if __has_builtin(__builtin_offsetof)
static_assert(__builtin_offsetof(QuantParams, permutation) == 48, "QuantParams layout changed");
static_assert(__builtin_offsetof(QuantParams, rowCount) == 56, "QuantParams layout changed");
static_assert(__builtin_offsetof(QuantParams, sourceRowCount) == 64, "QuantParams layout changed");
static_assert(__builtin_offsetof(QuantParams, expertCount) == 72, "QuantParams layout changed");
static_assert(__builtin_offsetof(QuantParams, flags) == 76, "QuantParams layout changed");
static_assert(__builtin_offsetof(QuantParams, status) == 80, "QuantParams layout changed");
static_assert(__builtin_offsetof(QuantParams, scaleRowCapacity) == 88, "QuantParams layout changed");
#endif
#endif

// QuantParams.flags. Mirrored by Swift's `ExpertsQuantParameters.Flags`.
enum : int32_t {
  kSharedTables = 1,     // the tables fit dynamic shared memory (the masked layout always sets it)
  kAlwaysLineUnits = 2,  // tuned: line units for every dense tile, however few (tests; same bytes)
};

// Dynamic shared memory, when kSharedTables is set (always when masked): off, soff and the dense
// table ([E + 1] each), then 32 words of scratch for the block scans that build them.
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

// Nearest-even to the input type's bits (overflow to ±Inf).
__device__ __forceinline__ uint16_t toInputBits(float y) {
  uint16_t bits;
  if (kInputBF16) {
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(y));
  } else {
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(y));
  }
  return bits;
}

// Nearest-even to the input type and back.
__device__ __forceinline__ float roundToInputType(float y) { return toFloat(toInputBits(y)); }

// 2^k for k in [-126, 127], from the exponent bits.
__device__ __forceinline__ float powerOfTwo(int k) { return __int_as_float((k + 127) << 23); }

// exp(x) as FusedVariants.md writes it: correctly rounded FP32 operations (fused multiply-adds in
// the range reduction and the polynomial), the same ones Swift runs.
__device__ __forceinline__ float expSiLU(float x) {
  if (x != x) return x;
  x = fminf(fmaxf(x, -104.0f), 89.0f);
  // n = rint(x · log2 e) through the FP32 adder: t + 1.5·2^23 rounds t to an integer, ties to
  // even, for |t| < 2^22 (here |t| ≤ 151), and the sum's bits give that integer — no FRND or
  // F2I, which issue at a quarter of the FP32 rate. (rint gives −0 where this gives +0; r and
  // every later step see the same values either way: n·c is then ±0 beside a nonzero term.)
  const float shifted = __fadd_rn(__fmul_rn(x, __int_as_float(0x3FB8AA3B)), 12582912.0f);
  const float n = __fsub_rn(shifted, 12582912.0f);
  const int ni = int(__float_as_uint(shifted) - 0x4B400000u);
  const float r = __fmaf_rn(-n, __int_as_float(0x35BFBE8E), __fmaf_rn(-n, __int_as_float(0x3F317200), x));
  float p = __fmaf_rn(__int_as_float(0x3AB60B61), r, __int_as_float(0x3C088889));
  p = __fmaf_rn(p, r, __int_as_float(0x3D2AAAAB));
  p = __fmaf_rn(p, r, __int_as_float(0x3E2AAAAB));
  p = __fmaf_rn(p, r, 0.5f);
  p = __fmaf_rn(p, r, 1.0f);
  p = __fmaf_rn(p, r, 1.0f);
  // p·2^n rounded once, p in [0.7, 1.42]. Any exact route to that one rounding gives the same
  // bits as the specification's (p·2^n1)·2^n2: for n in [−125, 127] the product is normal (or
  // overflows to +Inf only at n = 128, outside this range), so adding n to the exponent bits is
  // exact; the rare rest takes the specification's two steps.
  if (ni >= -125 && ni <= 127) return __int_as_float(__float_as_int(p) + (ni << 23));
  const int n1 = ni / 2;
  return __fmul_rn(__fmul_rn(p, powerOfTwo(n1)), powerOfTwo(ni - n1));
}

// silu(g) = g / (1 + exp(−g)), the division correctly rounded.
__device__ __forceinline__ float silu(float g) { return __fdiv_rn(g, __fadd_rn(1.0f, expSiLU(-g))); }

// Step 0 for SiLU·mul before rounding: silu(g)·u in FP32.
__device__ __forceinline__ float siluMul(float gate, float up) { return __fmul_rn(silu(gate), up); }

// Step 0 for SiLU·mul: the value the block sees, rounded to the input type.
__device__ __forceinline__ float activate(float gate, float up) { return roundToInputType(siluMul(gate, up)); }

// Step 1: running max of |x|; fmaxf ignores NaN, like the reference.
__device__ __forceinline__ float blockAbsMax(float amax, float x) { return fmaxf(amax, fabsf(x)); }

// Step 2.
__device__ __forceinline__ float blockScale(float amax, float globalScale) {
  const float r6 = 1.0f / 6.0f;
  return __fmul_rn(globalScale, __fmul_rn(amax, r6));
}

// Step 3, E4M3: nearest-even, saturated (the hardware conversion, sm_89 and later).
__device__ __forceinline__ uint32_t encodeE4M3(float scale) {
  uint16_t pair;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(pair) : "f"(0.0f), "f"(scale));
  return pair & 0xFFu;
}

// Step 3, UE8M0: rounded up to a power of two; 0 at or below 2^-127, 254 from 2^127 up, 255 NaN.
__device__ __forceinline__ uint32_t encodeUE8M0(float scale) {
  const uint32_t bits = __float_as_uint(scale) & 0x7FFFFFFFu;
  if (bits > 0x7F800000u) return 255u;
  if (bits <= 0x00400000u) return 0u;
  if (bits < 0x00800000u) return 1u;
  return min((bits >> 23) + ((bits & 0x7FFFFFu) != 0u ? 1u : 0u), 254u);
}

__device__ __forceinline__ uint32_t encodeBlockScale(float scale) {
  return kScaleUE8M0 ? encodeUE8M0(scale) : encodeE4M3(scale);
}

__device__ __forceinline__ float decodeBlockScale(uint32_t code) {
  if (kScaleUE8M0) return __uint_as_float(code == 0u ? 0x00400000u : code << 23);
  uint32_t halves;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(halves) : "h"(uint16_t(code)));
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(uint16_t(halves & 0xFFFFu)));
  return f;
}

// Step 4 (1 / gs computed once per row by the caller).
__device__ __forceinline__ float outputScale(uint32_t scaleByte, float inverseGlobalScale) {
  return scaleByte == 0u ? 0.0f : __frcp_rn(__fmul_rn(decodeBlockScale(scaleByte), inverseGlobalScale));
}

// Step 5, software: the code of one value y = x · outScale, sign in bit 3.
//
// The E2M1 grid has spacing q = 0.5 below 2, 1 in [2, 4) and 2 above. For each spacing the FP32
// adder rounds |y| to a multiple of q, ties to even, when q·2^23 is added; the bit distance of
// the sum from q·2^23 counts the quanta n_q. The candidate codes c = n_0.5, n_1 + 2, n_2 + 4
// follow min(2y, y + 2, y/2 + 4), a concave function whose pieces meet at 2 and 4, so the code
// is min(c_0.5, c_1, c_2, 7) — each candidate rounded once, at its own spacing (each subtraction
// and min one VIADDMNMX). ±Inf and huge values give huge candidates: code 7. The sign is y's
// sign bit, so −0 and negative values that round to zero keep it. y is always a product, and the
// FP32 multiplier returns every NaN as the canonical positive NaN (0x7FFFFFFF): a NaN y has
// huge candidates and no sign, code 0x7 (the exhaustive check converts products for this reason).
__device__ __forceinline__ uint32_t roundToE2M1Software(float y) {
  const float magnitude = fabsf(y);
  const uint32_t half = __float_as_uint(__fadd_rn(magnitude, 4194304.0f)) - 0x4A800000u;         // n_0.5
  const uint32_t one = __float_as_uint(__fadd_rn(magnitude, 8388608.0f)) - (0x4B000000u - 2u);   // n_1 + 2
  const uint32_t two = __float_as_uint(__fadd_rn(magnitude, 16777216.0f)) - (0x4B800000u - 4u);  // n_2 + 4
  return min(min(min(one, 7u), half), two) | ((__float_as_uint(y) >> 28) & 8u);
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
__device__ __forceinline__ uint32_t packNibbles(const float* x, float outScale) {
  uint32_t word = 0;
  if (kHardwareE2M1) {
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      word |= roundPairToE2M1(__fmul_rn(x[2 * j], outScale), __fmul_rn(x[2 * j + 1], outScale)) << (8 * j);
    }
  } else {  // last value first: each code enters with one multiply-add (the nibbles are disjoint)
#pragma unroll
    for (int j = 7; j >= 0; --j) word = word * 16u + roundToE2M1Software(__fmul_rn(x[j], outScale));
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
__device__ __forceinline__ void unpack(uint4 v, float* x) {
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

// A 128-row scale tile is dense when more than kDenseRows of its rows are routed: every tile
// of an expert but its last, and the last when it is more than half full. The tuned kernel
// quantizes dense tiles in line units and the rest (each expert's tail) in row units.
constexpr int kDenseRows = 64;
constexpr int kUnitLineSets = 4;                                                   // line sets of a tile
constexpr int kUnitTiles = 8;                                                      // 4-block columns (32 blocks)
constexpr int kChunksPerRow = (kTiles + kUnitTiles - 1) / kUnitTiles;              // line units across a row
constexpr int kLineUnitRounds = 8;                                                 // line units a block, at least
// Line units are chosen for the swizzled identity without a gather only (any kernel takes them
// when forced, which the tests do). Their gain is the whole-line scale store, which the linear
// layout does not have (not timed there). Measured with them, the gather + quantize at K = 7168
// took 155 µs against row units' 137 and SiLU·mul + quantize 631 against 574: a line unit's rows
// wait on their permutation entries, or on the SiLU arithmetic, between its loads and barrier.
constexpr bool kLineUnits = kSwizzled && !kGather && !kSiLUMul;

// Dense tiles of an expert with `rows` routed rows.
__device__ __forceinline__ int32_t denseTiles(int32_t rows) { return rows / 128 + (rows % 128 > kDenseRows ? 1 : 0); }

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

// Whether the tuned kernel may take line units: forced, or — for the identity without a gather
// (kLineUnits) — the tails' row slots (64 an expert) are no more than the routed rows and the
// most line units the rows allow (a dense tile holds more than 64 of them) reach
// kLineUnitRounds a block. Otherwise no dense table is built, so small problems pay no scan.
__device__ __forceinline__ bool mayUseLineUnits(const QuantParams& p, int32_t routedRows) {
  if ((p.flags & kAlwaysLineUnits) != 0) return true;
  return kLineUnits &&
         (int64_t(p.expertCount) * kDenseRows <= routedRows &&
          int64_t(routedRows) / (kDenseRows + 1) * kUnitLineSets * kChunksPerRow >= int64_t(kLineUnitRounds) * gridDim.x);
}

// Stages the tables in shared memory when they fit — off and soff copied (masked: off = the
// prefix of c and soff[e] = e·S derived) and the dense table, the prefix of each expert's dense
// tiles — and returns the tables to search. Tables too large for shared memory stay in global
// memory, with no dense table (every row then goes through row units); so do problems too small
// for line units (see mayUseLineUnits).
__device__ __forceinline__ void stageTables(const QuantParams& p, int32_t* shared, const int32_t*& inputTable,
                                            const int32_t*& scaleTable, const int32_t*& denseTable) {
  const int E = p.expertCount;
  denseTable = nullptr;
  if (kMasked || (p.flags & kSharedTables)) {  // the masked layout always derives its tables in shared memory
    int32_t* inputShared = shared;
    int32_t* scaleShared = inputShared + E + 1;
    int32_t* denseShared = scaleShared + E + 1;
    int32_t* scratch = denseShared + E + 1;
    if (kMasked) {
      const int32_t scaleRowsPerGroup = (int32_t(p.rowCount) + 127) / 128 * 128;
      for (int e = threadIdx.x; e <= E; e += blockDim.x) scaleShared[e] = e * scaleRowsPerGroup;
      blockExclusiveScan(E, inputShared, scratch, [&](int e) { return maskedRows(p, e); });
      if (mayUseLineUnits(p, inputShared[E])) {
        blockExclusiveScan(E, denseShared, scratch, [&](int e) { return denseTiles(maskedRows(p, e)); });
        denseTable = denseShared;
      }
    } else {
      for (int e = threadIdx.x; e <= E; e += blockDim.x) {
        inputShared[e] = p.inputOffsets[e];
        scaleShared[e] = p.scaleOffsets[e];
      }
      __syncthreads();
      if (mayUseLineUnits(p, inputShared[E])) {
        blockExclusiveScan(E, denseShared, scratch,
                           [&](int e) { return denseTiles(inputShared[e + 1] - inputShared[e]); });
        denseTable = denseShared;
      }
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

// ---------------------------------------------------------------------------------------------
// tuned: up to three phases, each balanced on its own. A 128-row scale tile is dense when more
// than 64 of its rows are routed (see kDenseRows).
//   1. Line units of dense tiles — when there are at least kLineUnitRounds per block and the
//      tails' row slots (64 an expert) are no more than the routed rows. In the swizzled layout one
//      128-byte line of a tile holds one 4-block column of 32 rows: rows 8j … 8j+7 of each
//      32-row quarter (line set j). A unit is a line set across 32 blocks (8 lines), taken by a
//      block: warp w takes rows 8j + w + 32q, q = 0…3, a lane a block of each (B/8 16-byte
//      loads, twice with SiLU·mul); the scale bytes are merged in shared memory and stored as 8
//      whole lines, one write request each. Stored from the lanes they were one 4-byte request a
//      word (14.7 M at M = 131072, K = 7168), which cost ~12 % of the time; whole sectors from one
//      warp took the DRAM excess away but not the time: the count of write requests is what
//      costs. Padding rows of the tile get scale 0 here. Units are strided over blocks; the
//      tile's expert is carried forward through the dense table.
//   2. Row units: kTunedUnroll steps of a row a warp unit, strided over warps: a warp takes
//      kRowsPerWarp rows at a time and its lanes walk the unit's blocks, one block per lane and
//      step, with every load of the unit in flight at once; 4 lanes merge a swizzled scale word.
//      After line units, the row slots of each expert's tail (the rows of its last tile when
//      that tile is not dense); otherwise every routed row, the expert carried forward per lane
//      (one comparison unless the row left the expert, then a binary search of the rest) and the
//      loads issued before that search. (Line units of mostly empty tiles left most of a block
//      idle, and few large units per block balanced badly: 2.3× slower at M = 1024, E = 256.)
//   3. Padding outside the tiles phase 1 wrote: swizzled 16-byte chunks strided over the whole
//      grid, a 16-byte zero store wherever a whole chunk is padding, 4-byte stores for the
//      padding rows of a chunk that also holds routed rows; linear padding rows, expert by expert.
// The linear layout takes the same units and stores a row's scale bytes straight from the lanes.

constexpr int kUnitWarps = 8;                                                      // warps of a block (256 threads)
constexpr int kLoadsPerBlock = kVectorsPerBlock * (kSiLUMul ? 2 : 1);              // 16-byte loads per block
constexpr int kRowsInFlight = kLoadsPerBlock <= 2 ? 4 : 1;                         // line units: rows loaded at once
constexpr int kLineStride = 128 + 16;  // staged line pitch: a warp's 8 lines fall on distinct banks
static_assert(kUnitWarps * 16 == 128 && kUnitTiles == kUnitWarps, "warp w fills bytes 16w … 16w + 15 of a line, stores line w");
static_assert(4 % kRowsInFlight == 0, "rows in flight divide a warp's 4 rows");

constexpr int kScaleColumns = kSwizzled ? 4 * kTiles : kBlocksPerRow;            // scale bytes per row
constexpr int kLanesPerRow =
    kScaleColumns >= 32 ? 32 : (32 % kScaleColumns == 0 ? kScaleColumns : 32);  // row units: lanes on one row
constexpr int kRowsPerWarp = 32 / kLanesPerRow;                                  // row units: rows per warp step
constexpr int kColumnSteps = (kScaleColumns + kLanesPerRow - 1) / kLanesPerRow;  // row units: blocks per lane
constexpr int kMaxUnroll = kLoadsPerBlock <= 2 ? 2 : 1;                          // ≤ 4 loads in flight per lane
constexpr int kTunedUnroll = kColumnSteps < kMaxUnroll ? kColumnSteps : kMaxUnroll;  // steps per row unit
constexpr int kUnitsPerRow = (kColumnSteps + kTunedUnroll - 1) / kTunedUnroll;
static_assert(!kSwizzled || kLanesPerRow % 4 == 0, "4-lane scale groups must not straddle rows");
static_assert(kDenseRows % kRowsPerWarp == 0, "a warp step of tail slots never straddles experts");
// Blocks per SM the kernel is compiled for: 3 (the measured best on the H100), 2 where 80
// registers spill — a lane holding more than 4 loads of a row unit (32-value SiLU·mul blocks),
// and every hardware-E2M1 (sm_100a) target: NVRTC 13.0's ptxas spilled 8–16 bytes there (the
// gather and 32-value blocks since session 3; the plain line units since they hold 4 rows'
// loads), where 13.5's did not. Untimed: no Blackwell card was at hand.
constexpr bool kTightRegisters = kLoadsPerBlock > 4 || kHardwareE2M1;
constexpr int kTunedMinBlocks = kTightRegisters ? 2 : 3;

// Step 0 for one block: its B values, from B/8 vectors (identity) or gate and up vectors.
__device__ __forceinline__ void activateBlock(const uint4 (&v)[kLoadsPerBlock], float (&x)[kBlockSize]) {
#pragma unroll
  for (int i = 0; i < kVectorsPerBlock; ++i) unpack(v[i], x + 8 * i);
  if (kSiLUMul) {
#pragma unroll
    for (int i = 0; i < kVectorsPerBlock; ++i) {
      float up[8];
      unpack(v[kVectorsPerBlock + i], up);
#pragma unroll
      for (int j = 0; j < 8; ++j) x[8 * i + j] = activate(x[8 * i + j], up[j]);
    }
  }
}

// One lane's block: quantizes B values (when `quantize`) and returns the scale byte (0 otherwise).
__device__ __forceinline__ uint32_t quantizeBlock(const uint4 (&v)[kLoadsPerBlock], bool quantize, float gs,
                                                  float inverseGs, uint8_t* codes) {
  if (!quantize) return 0;
  float x[kBlockSize];
  activateBlock(v, x);
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < kBlockSize; ++i) amax = blockAbsMax(amax, x[i]);
  const uint32_t scaleByte = encodeBlockScale(blockScale(amax, gs));
  const float outScale = outputScale(scaleByte, inverseGs);
#pragma unroll
  for (int h = 0; h < kBlockSize / 16; ++h) {  // 8 bytes of codes per 16 values
    *reinterpret_cast<uint2*>(codes + 8 * h) =
        make_uint2(packNibbles(x + 16 * h, outScale), packNibbles(x + 16 * h + 8, outScale));
  }
  return scaleByte;
}

// Whether row m of an expert with `rows` routed rows lies in a dense tile.
__device__ __forceinline__ bool inDenseTile(int64_t m, int64_t rows) { return rows - (m & ~int64_t(127)) > kDenseRows; }

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
  if (int64_t(denseTable[expert + 1]) <= denseTile) expert = findExpert(denseTable, p.expertCount, denseTile, expert + 1);
  u.expert = expert;
  const int64_t tileFirst = (denseTile - denseTable[expert]) * 128;  // the tile's first row within the expert
  u.tile = int64_t(scaleTable[expert]) / 128 + (denseTile - denseTable[expert]);
  u.firstRow = tileFirst + 8 * u.lineSet;
  u.routedBase = inputTable[expert];
  u.rows = int64_t(inputTable[expert + 1]) - u.routedBase;
  return u;
}

// Quantizes this warp's rows of a line unit (rows 8·lineSet + w + 32q of the tile),
// kRowsInFlight at a time with every load in flight, codes stored from the lanes. Swizzled: each
// 4-lane group merges a row's scale bytes into its word, and the group's first lane writes the
// 16 bytes of rows 8·lineSet + w (quarters 0…3) into its staged line. Linear: the lanes store
// the bytes of routed rows.
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
    bool routed[kRowsInFlight], readable[kRowsInFlight];
    int32_t token[kRowsInFlight];  // gather: the rows' permutation entries, all loaded before any input
#pragma unroll
    for (int r = 0; r < kRowsInFlight; ++r) {
      const int64_t m = u.firstRow + warpInBlock + 32 * (batch + r);
      routed[r] = m < u.rows;
      outputRow[r] = kMasked ? int64_t(u.expert) * p.rowCount + m : u.routedBase + m;
      token[r] = kGather && routed[r] ? __ldg(p.permutation + u.routedBase + m) : 0;
    }
#pragma unroll
    for (int r = 0; r < kRowsInFlight; ++r) {
      int64_t source = outputRow[r];
      readable[r] = routed[r];
      if (kGather && routed[r]) {
        readable[r] = uint32_t(token[r]) < uint32_t(p.sourceRowCount);  // T < 2^31: the host checks it
        if (!readable[r] && p.status != nullptr && lane == 0) atomicOr(p.status, kBadPermutation);
        source = token[r];
      }
      if (readable[r] && columnExists) {
        const uint4* input = reinterpret_cast<const uint4*>(p.input + source * kInputRowWidth + kb * kBlockSize);
#pragma unroll
        for (int v = 0; v < kVectorsPerBlock; ++v) loaded[r][v] = __ldg(input + v);
        if (kSiLUMul) {
          const uint4* up = reinterpret_cast<const uint4*>(p.input + source * kInputRowWidth + kHiddenSize + kb * kBlockSize);
#pragma unroll
          for (int v = 0; v < kVectorsPerBlock; ++v) loaded[r][kVectorsPerBlock + v] = __ldg(up + v);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRowsInFlight; ++r) {
      const uint32_t scaleByte = quantizeBlock(loaded[r], readable[r] && columnExists, gs, inverseGs,
                                               p.codes + outputRow[r] * (kHiddenSize / 2) + kb * (kBlockSize / 2));
      if (kSwizzled) {
        uint32_t word = scaleByte << (8 * (lane & 3));
        word |= __shfl_xor_sync(0xFFFFFFFFu, word, 1);
        word |= __shfl_xor_sync(0xFFFFFFFFu, word, 2);
        words[batch + r] = word;
      } else if (routed[r] && columnExists) {
        p.scales[(u.tile * 128 + 8 * u.lineSet + warpInBlock + 32 * (batch + r)) * kBlocksPerRow + kb] = uint8_t(scaleByte);
      }
    }
  }
  if (kSwizzled && (lane & 3) == 0) {
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

// ---- Phase 2: row units.

// A swizzled scale word: 4 bytes of a 32-byte sector that rows s, s+1, s+32, s+33, …, s+97 share
// and different warps write, stored with an L2 evict-last policy so that the sector stays in L2
// until it is whole (at M = 131072, K = 7168 the L2 otherwise wrote partial sectors back and read
// them again: ~2 × the scale tensor of extra DRAM traffic).
__device__ __forceinline__ void storeScaleWord(uint8_t* address, uint32_t word) {
  uint64_t policy;
  asm("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(policy));
  asm volatile("st.global.L2::cache_hint.b32 [%0], %1, %2;" ::"l"(address), "r"(word), "l"(policy) : "memory");
}

// Stores the scale byte of block kb of scale row s; swizzled rows merge 4 lanes into one word.
// Every lane of the 4-lane group must call it together.
__device__ __forceinline__ void storeScale(uint8_t* scales, int64_t s, int kb, uint32_t scaleByte, uint32_t groupMask) {
  if (kSwizzled) {
    uint32_t word = scaleByte << (8 * (kb & 3));
    word |= __shfl_xor_sync(groupMask, word, 1);
    word |= __shfl_xor_sync(groupMask, word, 2);
    if ((kb & 3) == 0) storeScaleWord(scales + scaleByteOffset(s, kb), word);
  } else {
    scales[scaleByteOffset(s, kb)] = uint8_t(scaleByte);
  }
}

// A row unit: kTunedUnroll steps of one routed row.
struct RoutedUnit {
  const uint16_t* input;  // the source row's first value
  uint8_t* codes;         // the output row's first code byte
  int64_t routed;         // routed index (the output row itself in the offsets layout)
  int64_t scaleRow;
  float gs;
  int firstStep;
  bool valid;     // the unit exists: its scale bytes are written
  bool readable;  // its source row exists (false only for an out-of-range gather entry)
};

// Unit `unit` of this lane's slot; it exists while its routed index is below off[E].
__device__ __forceinline__ RoutedUnit numberUnit(int64_t unit, int slot, int64_t routedRows) {
  RoutedUnit u;
  const int64_t group = unit / kUnitsPerRow;
  u.routed = group * kRowsPerWarp + slot;
  u.firstStep = int(unit - group * kUnitsPerRow) * kTunedUnroll;
  u.valid = u.routed < routedRows;
  u.readable = u.valid;
  return u;
}

// Tail unit `unit` of this lane's slot: row slots are (expert, j < 64), kRowsPerWarp of them a
// warp step (a step never straddles experts: kRowsPerWarp divides 64), and the lane's row is the
// expert's tail row j when it has one — the tail being the rows of its last tile when that tile
// is not dense. The expert follows from the slot: no search. Returns the row within the expert.
__device__ __forceinline__ int64_t numberTailUnit(const QuantParams& p, const int32_t* inputTable,
                                                  const int32_t* scaleTable, int64_t unit, int slot, RoutedUnit& u,
                                                  int& expert) {
  const int64_t group = unit / kUnitsPerRow;
  u.firstStep = int(unit - group * kUnitsPerRow) * kTunedUnroll;
  expert = int(group * kRowsPerWarp / kDenseRows);
  const int64_t rows = int64_t(inputTable[expert + 1]) - inputTable[expert];
  const int64_t lastTile = rows & ~int64_t(127);
  const int64_t m = lastTile + group * kRowsPerWarp % kDenseRows + slot;
  u.valid = rows - lastTile <= kDenseRows && m < rows;
  u.readable = u.valid;
  u.routed = int64_t(inputTable[expert]) + m;
  if (u.valid) {
    u.scaleRow = scaleTable[expert] + m;
    u.gs = __ldg(p.globalScales + expert);
  }
  return m;
}

// The permutation entry (the source row) of unit `unit` of this lane's slot, 0 past off[E]:
// loaded one unit ahead when gathering, so a unit's input loads need not wait for it.
__device__ __forceinline__ int32_t sourceOfUnit(const QuantParams& p, int64_t unit, int slot, int64_t routedRows) {
  const RoutedUnit u = numberUnit(unit, slot, routedRows);
  return u.valid ? __ldg(p.permutation + u.routed) : 0;
}

// Points a valid unit at output row `row` and its source row (`token`, when gathering).
__device__ __forceinline__ void placeRow(const QuantParams& p, RoutedUnit& u, int64_t row, int32_t token) {
  int64_t source = row;
  if (kGather) {
    u.readable = uint32_t(token) < uint32_t(p.sourceRowCount);  // T < 2^31: the host checks it
    source = token;
    if (!u.readable && p.status != nullptr) atomicOr(p.status, kBadPermutation);
  }
  u.input = p.input + source * kInputRowWidth;
  u.codes = p.codes + row * (kHiddenSize / 2);
}

// A valid unit's expert, scale row and global scale. Routed indices grow with units, so `expert`
// is carried forward: one comparison unless the row left the expert, then a binary search of
// the rest. Returns the row within the expert.
__device__ __forceinline__ int64_t bindExpert(const QuantParams& p, const int32_t* inputTable,
                                              const int32_t* scaleTable, RoutedUnit& u, int& expert) {
  if (int64_t(inputTable[expert + 1]) <= u.routed) expert = findExpert(inputTable, p.expertCount, u.routed, expert + 1);
  const int64_t m = u.routed - inputTable[expert];
  u.scaleRow = scaleTable[expert] + m;
  u.gs = __ldg(p.globalScales + expert);
  return m;
}

// Issues every load of a unit (nothing for an invalid or unreadable one).
__device__ __forceinline__ void loadUnit(const RoutedUnit& u, int column, uint4 (&loaded)[kTunedUnroll][kLoadsPerBlock]) {
#pragma unroll
  for (int k = 0; k < kTunedUnroll; ++k) {
    const int kb = (u.firstStep + k) * kLanesPerRow + column;
    if (u.readable && u.firstStep + k < kColumnSteps && kb < kBlocksPerRow) {
      const uint4* source = reinterpret_cast<const uint4*>(u.input + kb * kBlockSize);
#pragma unroll
      for (int i = 0; i < kVectorsPerBlock; ++i) loaded[k][i] = __ldg(source + i);
      if (kSiLUMul) {
        const uint4* up = reinterpret_cast<const uint4*>(u.input + kHiddenSize + kb * kBlockSize);
#pragma unroll
        for (int i = 0; i < kVectorsPerBlock; ++i) loaded[k][kVectorsPerBlock + i] = __ldg(up + i);
      }
    }
  }
}

// Quantizes a loaded unit and stores its codes and scales.
__device__ __forceinline__ void storeUnit(const RoutedUnit& u, int column,
                                          const uint4 (&loaded)[kTunedUnroll][kLoadsPerBlock], uint8_t* scales,
                                          uint32_t groupMask) {
  if (!u.valid) return;  // uniform across each row's lanes
  const float inverseGs = __frcp_rn(u.gs);
#pragma unroll
  for (int k = 0; k < kTunedUnroll; ++k) {
    const int kb = (u.firstStep + k) * kLanesPerRow + column;
    if (u.firstStep + k >= kColumnSteps || kb >= kScaleColumns) break;  // uniform per 4-lane group
    const uint32_t scaleByte = quantizeBlock(loaded[k], u.readable && kb < kBlocksPerRow, u.gs, inverseGs,
                                             u.codes + kb * (kBlockSize / 2));
    storeScale(scales, u.scaleRow, kb, scaleByte, groupMask);
  }
}

// ---- Phase 3: padding.

// Zeroes the padding of a swizzled scale buffer, outside dense tiles when phase 1 wrote those whole.
// Chunk (tile, kTile, r) is the 16 bytes holding rows r, r+32, r+64, r+96 of a 128-row tile;
// every tile belongs to one expert (scale offsets are multiples of 128) and the expert's padding
// rows are a suffix of its rows, so the chunk is all padding when row r is: one 16-byte store
// clears it, else its padding rows get 4-byte stores. Chunks are strided over the whole grid, r
// fastest (a warp's stores cover 512 contiguous bytes), and each thread carries the tile's
// expert forward.
__device__ __forceinline__ void zeroSwizzledPadding(uint8_t* scales, const int32_t* inputTable,
                                                    const int32_t* scaleTable, bool denseWritten, int E) {
  const int64_t chunkCount = int64_t(scaleTable[E]) / 128 * 32 * kTiles;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int expert = 0;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < chunkCount; c += stride) {
    const int64_t tile = c / (32 * kTiles);
    const int64_t tileFirstRow = tile * 128;
    if (int64_t(scaleTable[expert + 1]) <= tileFirstRow) expert = findExpert(scaleTable, E, tileFirstRow, expert + 1);
    const int64_t rows = int64_t(inputTable[expert + 1]) - inputTable[expert];
    const int64_t firstPadding = int64_t(scaleTable[expert]) + rows;
    if (tileFirstRow + 128 <= firstPadding || (denseWritten && inDenseTile(tileFirstRow - scaleTable[expert], rows))) continue;
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

extern "C" __global__ void __launch_bounds__(256, kTunedMinBlocks) nvfp4_quantize_tuned(const QuantParams p) {
  const int32_t* inputTable;
  const int32_t* scaleTable;
  const int32_t* denseTable;
  stageTables(p, sharedTables, inputTable, scaleTable, denseTable);
  if (!tablesAreValid(p, inputTable, scaleTable)) return;

  const int E = p.expertCount;
  const int lane = threadIdx.x & 31;
  const int warpInBlock = threadIdx.x >> 5;

  // Line units pay where they are many (at least kLineUnitRounds a block: one fewer or one more
  // per block then matters little) and the tails' row slots (64 an expert) are no more than the
  // routed rows; otherwise every row goes through row units.
  const int64_t routedRows = inputTable[E];
  const int64_t lineUnitCount = denseTable != nullptr ? int64_t(denseTable[E]) * kUnitLineSets * kChunksPerRow : 0;
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
    if (kSwizzled) {
      __syncthreads();
      storeLines(p, u, warpInBlock, lane, staged[buffer]);
      buffer ^= 1;
    }
  }

  // Phase 2: row units, a warp at a time: every load of the unit in flight, then quantize. After
  // line units, the tails' row slots (the expert follows from the slot); else every routed row,
  // its loads issued before its expert search (the row is the routed index but when masked).
  const int slot = lane / kLanesPerRow;    // which of the warp's rows
  const int column = lane % kLanesPerRow;  // first block of this lane
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  const uint32_t groupMask = 0xFu << (lane & ~3);
  const int64_t rowUnitCount = lineUnits ? int64_t(E) * (kDenseRows / kRowsPerWarp) * kUnitsPerRow
                                         : (routedRows + kRowsPerWarp - 1) / kRowsPerWarp * kUnitsPerRow;
  expert = 0;
  int32_t nextSource = kGather && !lineUnits ? sourceOfUnit(p, warp, slot, routedRows) : 0;
  for (int64_t unit = warp; unit < rowUnitCount; unit += warps) {
    uint4 loaded[kTunedUnroll][kLoadsPerBlock];
    RoutedUnit u;
    if (lineUnits || kMasked) {  // the row follows from the expert
      int64_t m = 0;
      if (lineUnits) {
        m = numberTailUnit(p, inputTable, scaleTable, unit, slot, u, expert);
      } else {
        u = numberUnit(unit, slot, routedRows);
        if (u.valid) m = bindExpert(p, inputTable, scaleTable, u, expert);
      }
      if (u.valid) {
        placeRow(p, u, kMasked ? int64_t(expert) * p.rowCount + m : u.routed,
                 kGather ? __ldg(p.permutation + u.routed) : 0);
      }
      loadUnit(u, column, loaded);
    } else {  // the row is the routed index: its loads are in flight while the expert is found
      u = numberUnit(unit, slot, routedRows);
      const int32_t source = nextSource;
      if (kGather) nextSource = sourceOfUnit(p, unit + warps, slot, routedRows);
      if (u.valid) placeRow(p, u, u.routed, source);
      loadUnit(u, column, loaded);
      if (u.valid) bindExpert(p, inputTable, scaleTable, u, expert);
    }
    storeUnit(u, column, loaded, p.scales, groupMask);
  }

  // Phase 3: padding (of sparse and empty tiles when line units ran).
  if (kSwizzled) {
    zeroSwizzledPadding(p.scales, inputTable, scaleTable, lineUnits, E);
  } else {
    zeroLinearPadding(p.scales, inputTable, scaleTable, E);
  }
}

// ---------------------------------------------------------------------------------------------
// seed and baseline: 8 values (one vector) per thread; lanes 2j and 2j+1 hold one 16-value
// block and exchange their partial amax with a shuffle. Padding is not written by these
// kernels: the launcher zeroes the scale buffer first (as engines do with a zeroed allocation).
// They exist for the plain configuration only and ignore gather and the masked layout (the
// Swift launcher refuses those for them).
#if NVFP4_PLAIN

constexpr int kVectorsPerRow = kHiddenSize / 8;  // 16-byte vectors per row

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
  const float outScale = outputScale(scaleByte, __frcp_rn(gs));
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
  if (p.flags & kSharedTables) seedLoop<Lookup::shared>(p); else seedLoop<Lookup::registers>(p);
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

#endif  // NVFP4_PLAIN

// ---------------------------------------------------------------------------------------------
// Unfused steps (16-byte vectors, grid-stride).

// The argument of the unfused steps. Mirrored by Swift's `RowStepParameters`.
struct RowStepParams {
  const uint16_t* input;
  uint16_t* output;
  const int32_t* permutation;  // gather only
  int64_t rowCount;            // output rows
};
static_assert(sizeof(RowStepParams) == 32, "RowStepParams layout changed: update Swift");

extern "C" __global__ void nvfp4_gather_rows(const RowStepParams p) {
  constexpr int kVectors = kInputRowWidth / 8;
  const uint4* input = reinterpret_cast<const uint4*>(p.input);
  uint4* output = reinterpret_cast<uint4*>(p.output);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.rowCount * kVectors;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / kVectors;
    output[i] = __ldg(input + int64_t(__ldg(p.permutation + row)) * kVectors + (i - row * kVectors));
  }
}

extern "C" __global__ void nvfp4_silu_mul_rows(const RowStepParams p) {
  constexpr int kVectors = kHiddenSize / 8;
  const uint4* input = reinterpret_cast<const uint4*>(p.input);
  uint4* output = reinterpret_cast<uint4*>(p.output);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.rowCount * kVectors;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / kVectors;
    const int64_t column = i - row * kVectors;
    float gate[8], up[8];
    unpack(__ldg(input + row * 2 * kVectors + column), gate);
    unpack(__ldg(input + row * 2 * kVectors + kVectors + column), up);
    uint32_t words[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      words[j] = uint32_t(toInputBits(siluMul(gate[2 * j], up[2 * j]))) |
                 (uint32_t(toInputBits(siluMul(gate[2 * j + 1], up[2 * j + 1]))) << 16);
    }
    output[i] = make_uint4(words[0], words[1], words[2], words[3]);
  }
}

// ---------------------------------------------------------------------------------------------
// Exhaustive checks: convert `count` float bit patterns starting at `first` (count is even).

// The argument of the conversion checks. Mirrored by Swift's `ConversionCheckParameters`.
struct ConversionParams {
  uint8_t* out;
  uint64_t count;
  uint32_t first;
  float one;  // 1.0, opaque to the compiler: the E2M1 check converts pattern · 1 (see below)
};
static_assert(sizeof(ConversionParams) == 24, "ConversionParams layout changed: update Swift");

// E2M1 codes of patterns first + i, two per byte (pattern first + 2j in the low nibble). Each
// pattern is converted as the quantizer converts it, as a product: pattern · 1 is the pattern
// itself except that every NaN becomes the canonical positive NaN.
extern "C" __global__ void nvfp4_round_to_e2m1_all(const ConversionParams p) {
  for (uint64_t j = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < p.count / 2;
       j += uint64_t(gridDim.x) * blockDim.x) {
    const float a = __fmul_rn(__uint_as_float(p.first + uint32_t(2 * j)), p.one);
    const float b = __fmul_rn(__uint_as_float(p.first + uint32_t(2 * j + 1)), p.one);
    p.out[j] = uint8_t(roundPairToE2M1(a, b));
  }
}

// E4M3 codes of patterns first + i.
extern "C" __global__ void nvfp4_encode_e4m3_all(const ConversionParams p) {
  for (uint64_t j = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < p.count;
       j += uint64_t(gridDim.x) * blockDim.x) {
    p.out[j] = uint8_t(encodeE4M3(__uint_as_float(p.first + uint32_t(j))));
  }
}

// UE8M0 codes of patterns first + i.
extern "C" __global__ void nvfp4_encode_ue8m0_all(const ConversionParams p) {
  for (uint64_t j = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < p.count;
       j += uint64_t(gridDim.x) * blockDim.x) {
    p.out[j] = uint8_t(encodeUE8M0(__uint_as_float(p.first + uint32_t(j))));
  }
}

// silu(g) of patterns g = first + i, as float bit patterns (4 bytes each).
extern "C" __global__ void nvfp4_silu_all(const ConversionParams p) {
  uint32_t* out = reinterpret_cast<uint32_t*>(p.out);
  for (uint64_t j = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < p.count;
       j += uint64_t(gridDim.x) * blockDim.x) {
    out[j] = __float_as_uint(silu(__uint_as_float(p.first + uint32_t(j))));
  }
}
