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
// Files, joined in this order into one NVRTC program (KernelSpecialization.source; a `#line`
// directive before each keeps diagnostics pointing at the right file and line):
//   experts_quant.cu          this overview, the compile-time parameters and QuantParams
//   quantization_steps.cu     the spec steps (as the CPU reference names them) and layouts
//   expert_tables.cu          dense tiles, the block scan, table staging, device-side validation
//   tuned_units.cu            tuned: line units (dense tiles) and row units
//   tuned_kernel.cu           tuned: padding and the entry point
//   seed_baseline.cu          the seed and baseline variants
//   row_steps_and_checks.cu   the unfused steps and the exhaustive conversion checks
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
//   Rows that no expert owns are never written, nor read for their values (the tuned kernel may
//   prefetch input rows below M into L2 before it knows off[E]).
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

