// quantization_steps.cu — the spec steps, in the order of the CPU reference (Sources/NVFP4/Reference/QuantizationSteps.swift).
// Part of the expert-quantization kernel: KernelSpecialization joins the parts in the order
// experts_quant.cu lists, so this file sees everything declared before it.

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

// The values of the input type as the kernels hold them, two a word: value 2i in the low half of
// word i, value 2i + 1 in the high half.
__device__ __forceinline__ float lowValue(uint32_t word) { return toFloat(uint16_t(word & 0xFFFFu)); }
__device__ __forceinline__ float highValue(uint32_t word) { return toFloat(uint16_t(word >> 16)); }
__device__ __forceinline__ float valueAt(const uint32_t* words, int j) {
  return (j & 1) ? highValue(words[j / 2]) : lowValue(words[j / 2]);
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

// toInputBits of two values in one word, `low` in the low half (one conversion for the pair).
__device__ __forceinline__ uint32_t toInputBitsPair(float low, float high) {
  uint32_t bits;
  if (kInputBF16) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(bits) : "f"(high), "f"(low));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(bits) : "f"(high), "f"(low));
  }
  return bits;
}

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

// Step 0 for SiLU·mul: the values the block sees, rounded to the input type (FusedVariants.md's
// roundToInputType), two a word (the low pair's in the low half).
__device__ __forceinline__ uint32_t activatePair(float gateLow, float upLow, float gateHigh, float upHigh) {
  return toInputBitsPair(siluMul(gateLow, upLow), siluMul(gateHigh, upHigh));
}

#if NVFP4_SILU_TABLE
// Step 0 by table, for bfloat16 gates: silu of the band [2^-25, 128) of both signs (silu_table.cu
// has the band and the values, positive gates first), staged in shared memory by each block of
// the tuned kernel; outside the band silu is g / 2, g, −0 or NaN (SiLUTable.swift, checked there
// on every pattern). The staged table interleaves the signs: entry 2·offset + s' holds the gate
// at band offset `offset` (its magnitude's bits from kSiLUTableFirst) with s' = 1 − its sign bit,
// so that a gate pair's band bits (siluBandBits) give each gate's entry with a shift and a mask.
__shared__ __align__(16) float siluTable[2 * kSiLUTableEntriesPerSign];
static_assert(kSiLUTableEntriesPerSign == 4096 && kSiLUTableFirst < 0x8000u - 4096,
              "the band bits hold a 12-bit offset below 3 band-test bits");

// Every thread of the block copies its share of the table, interleaving the signs; the barrier
// makes it visible.
__device__ __forceinline__ void stageSiLUTable() {
  const uint4* positive = reinterpret_cast<const uint4*>(kSiLUTableBits);
  const uint4* negative = positive + kSiLUTableEntriesPerSign / 4;
  uint4* to = reinterpret_cast<uint4*>(siluTable);
  for (int i = threadIdx.x; i < int(kSiLUTableEntriesPerSign / 4); i += blockDim.x) {
    const uint4 p = positive[i];
    const uint4 n = negative[i];
    to[2 * i] = make_uint4(n.x, p.x, n.y, p.y);
    to[2 * i + 1] = make_uint4(n.z, p.z, n.w, p.w);
  }
  __syncthreads();
}

// The staged entry at byte offset `byteOffset` (8 · band offset + 4 · s').
__device__ __forceinline__ float siluEntry(uint32_t byteOffset) {
  return *reinterpret_cast<const float*>(reinterpret_cast<const unsigned char*>(siluTable) + byteOffset);
}

// silu(g) for a bfloat16 gate g (a float whose low 16 bits are zero), by the rules outside the
// band: the route of a block whose gates are not all in the band.
__device__ __forceinline__ float siluFromTable(float gate) {
  const uint32_t bits = __float_as_uint(gate) >> 16;
  const uint32_t magnitude = bits & 0x7FFF;
  const uint32_t offset = magnitude - kSiLUTableFirst;
  if (offset < kSiLUTableEntriesPerSign) return siluEntry(8 * offset + 4 * ((bits >> 15) ^ 1));
  if (magnitude < kSiLUTableFirst) return __fmul_rn(gate, 0.5f);  // exp(−g) rounds to 1
  if (bits < 0x8000) return gate;                                 // g ≥ 128, +Inf, NaN
  return magnitude >= 0x7F80 ? __int_as_float(0x7FFFFFFF) : -0.0f;  // −Inf, NaN; g ≤ −128
}

// The band bits of a word of two bfloat16 gates: each 16-bit half becomes (s'·2^15 + magnitude −
// kSiLUTableFirst) mod 2^16, whose bits 12–14 are 0 exactly when that gate lies in the band (the
// offset is then the low 12 bits, s' bit 15; the static_assert above keeps the gates outside the
// band off those values). The low half borrows from the high one only when the low gate lies
// outside the band, which the low half's own bits then say.
constexpr uint32_t kSiLUOutsideBand = 0x70007000u;  // the band-test bits of both halves
__device__ __forceinline__ uint32_t siluBandBits(uint32_t gates) {
  return (gates ^ 0x80008000u) - kSiLUTableFirst * 0x10001u;
}

// silu of the low and of the high gate of a word whose gates both lie in the band, from its band
// bits: the entry's byte offset is the half's offset · 8 plus s' · 4.
__device__ __forceinline__ float siluOfLowGate(uint32_t band) {
  const uint32_t half = band & 0xFFFFu;
  return siluEntry(((half << 3) & 0x7FF8u) | (half >> 13));
}
__device__ __forceinline__ float siluOfHighGate(uint32_t band) {
  return siluEntry(((band >> 13) & 0x7FF8u) | (band >> 29));
}

// silu of the gates of `kWords` words (each word's low gate first) by table: one test of the band
// bits for all of them, then every gate's entry when all lie in the band (a block's case in
// practice: a shift, a mask and a shared-memory load a gate, no branch), else the rules.
template <int kWords>
__device__ __forceinline__ void siluOfWordsFromTable(const uint32_t (&gates)[kWords], float (&silus)[2 * kWords]) {
  uint32_t band = 0;
#pragma unroll
  for (int w = 0; w < kWords; ++w) band |= siluBandBits(gates[w]);
  if ((band & kSiLUOutsideBand) == 0) {
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
      silus[2 * w] = siluOfLowGate(siluBandBits(gates[w]));
      silus[2 * w + 1] = siluOfHighGate(siluBandBits(gates[w]));
    }
  } else {
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
      silus[2 * w] = siluFromTable(lowValue(gates[w]));
      silus[2 * w + 1] = siluFromTable(highValue(gates[w]));
    }
  }
}

// Step 0 for a bfloat16 SiLU·mul block: activatePair's words for words of gates and their words of
// ups, silu by table, two values a word as they came.
template <int kWords>
__device__ __forceinline__ void activateWordsFromTable(const uint32_t (&gates)[kWords], const uint32_t (&ups)[kWords],
                                                       uint32_t (&activated)[kWords]) {
  float silus[2 * kWords];
  siluOfWordsFromTable(gates, silus);
#pragma unroll
  for (int w = 0; w < kWords; ++w) {
    activated[w] = toInputBitsPair(__fmul_rn(silus[2 * w], lowValue(ups[w])), __fmul_rn(silus[2 * w + 1], highValue(ups[w])));
  }
}
#endif

// The largest finite float: for a value that is never negative, `value <= kFloatMax` fails exactly for +Inf and NaN.
constexpr float kFloatMax = 3.40282347e38f;

// Step 1: running max of |x|; fmaxf ignores NaN, like the reference.
__device__ __forceinline__ float blockAbsMax(float amax, float x) { return fmaxf(amax, fabsf(x)); }

// Step 1 for values of the input type still packed two a word, for the tuned kernel: a tree of
// packed maxima of magnitudes (max.NaN.xorsign.abs: exact; the sign it gives is unused), then the
// two halves' max — half the instructions of one max a value. Here a NaN wins: a block holding a
// NaN gives NaN, one holding an infinity +Inf, so a finite result is blockAbsMax's over the block
// and says that every value is finite; the caller takes blockAbsMax itself otherwise.
template <int kWidth, int kWords>
__device__ __forceinline__ void packedAbsMaxLevel(uint32_t (&words)[kWords]) {
#pragma unroll
  for (int i = 0; i < kWidth; ++i) {
    if (kInputBF16) {
      asm("max.NaN.xorsign.abs.bf16x2 %0, %1, %2;" : "=r"(words[i]) : "r"(words[i]), "r"(words[i + kWidth]));
    } else {
      asm("max.NaN.xorsign.abs.f16x2 %0, %1, %2;" : "=r"(words[i]) : "r"(words[i]), "r"(words[i + kWidth]));
    }
  }
  if constexpr (kWidth > 1) packedAbsMaxLevel<kWidth / 2>(words);
}
template <int kWords>
__device__ __forceinline__ float packedBlockAbsMaxOrNaN(const uint32_t (&words)[kWords]) {
  static_assert(kWords >= 2 && (kWords & (kWords - 1)) == 0, "a tree over a power of two of words");
  uint32_t tree[kWords];
#pragma unroll
  for (int w = 0; w < kWords; ++w) tree[w] = words[w];
  packedAbsMaxLevel<kWords / 2>(tree);
  float amax;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(amax) : "f"(fabsf(lowValue(tree[0]))), "f"(fabsf(highValue(tree[0]))));
  return amax;
}

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

// Step 5, software: the code of one value y = x · outScale, sign in bit 3 (its magnitude bits
// alone: roundMagnitudeToE2M1Software).
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
__device__ __forceinline__ uint32_t roundMagnitudeToE2M1Software(float y) {
  const float magnitude = fabsf(y);
  const uint32_t half = __float_as_uint(__fadd_rn(magnitude, 4194304.0f)) - 0x4A800000u;         // n_0.5
  const uint32_t one = __float_as_uint(__fadd_rn(magnitude, 8388608.0f)) - (0x4B000000u - 2u);   // n_1 + 2
  const uint32_t two = __float_as_uint(__fadd_rn(magnitude, 16777216.0f)) - (0x4B800000u - 4u);  // n_2 + 4
  return min(min(min(one, 7u), half), two);
}
__device__ __forceinline__ uint32_t roundToE2M1Software(float y) {
  return roundMagnitudeToE2M1Software(y) | ((__float_as_uint(y) >> 28) & 8u);
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

// The sign bits of 8 values of the input type, from their 4 words (value 2i in the low half of
// word i), in bit 3 of nibble j for value j: byte k of the result takes value 2k's sign (bit 15
// of word k) to its bit 3 and value 2k + 1's (bit 31) to its bit 7. Four byte permutes gather
// the bytes that hold the signs.
__device__ __forceinline__ uint32_t signNibbles(const uint32_t* words) {
  const uint32_t firstPair = __byte_perm(words[0], words[1], 0x7351);   // w0.b1, w1.b1, w0.b3, w1.b3
  const uint32_t secondPair = __byte_perm(words[2], words[3], 0x7351);  // w2.b1, w3.b1, w2.b3, w3.b3
  const uint32_t oddSigns = __byte_perm(firstPair, secondPair, 0x7632);   // bit 7 of byte k: value 2k + 1
  const uint32_t evenSigns = __byte_perm(firstPair, secondPair, 0x5410);  // bit 7 of byte k: value 2k
  return (oddSigns & 0x80808080u) | ((evenSigns >> 4) & 0x08080808u);
}

// Step 6, software, for a block whose values and output scale are all finite: packNibbles's
// word for the 8 values of 4 words. Each product y = x · outScale then has x's sign and is never
// NaN, so the signs come from the input words in one step (signNibbles) and each value adds
// only its magnitude code (one multiply-add a value).
__device__ __forceinline__ uint32_t packFiniteNibbles(const uint32_t* words, float outScale) {
  uint32_t word = 0;
#pragma unroll
  for (int j = 7; j >= 0; --j) {
    asm("mad.lo.u32 %0, %1, 16, %2;" : "=r"(word)
        : "r"(word), "r"(roundMagnitudeToE2M1Software(__fmul_rn(valueAt(words, j), outScale))));
  }
  return word | signNibbles(words);
}

// Step 6 for 16 values of 8 words (8 bytes of codes) by packNibbles, the signs from the products:
// the route of a block with a NaN or an infinity, or whose output scale is infinite, and of every
// block where the E2M1 conversion is the hardware's.
__device__ __forceinline__ uint2 codesFromProducts(const uint32_t* words, float outScale) {
  float x[16];
#pragma unroll
  for (int j = 0; j < 16; ++j) x[j] = valueAt(words, j);
  return make_uint2(packNibbles(x, outScale), packNibbles(x + 8, outScale));
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
  for (int j = 0; j < 8; ++j) x[j] = valueAt(w, j);
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

// findExpert by a whole warp at once, for a search every lane makes with the same arguments (all
// 32 lanes must call it together): each round the lanes test 32 evenly spaced entries of the
// range and a ballot keeps the stretch between the last entry <= s and the next, so 256 experts
// take 2 rounds of one shared-memory load each instead of 8 dependent ones.
__device__ __forceinline__ int findExpertInWarp(const int32_t* table, int expertCount, int64_t s, int low) {
  const int lane = threadIdx.x & 31;
  int high = expertCount;  // table[low] <= s < table[high]
  while (high - low > 1) {
    const int step = (high - low + 31) >> 5;
    const int e = low + step * lane;
    const uint32_t atOrBelow = __ballot_sync(0xFFFFFFFFu, e < high && int64_t(table[e]) <= s);
    low += step * (31 - __clz(atOrBelow));  // table is nondecreasing: the lanes at or below s are a prefix
    high = min(high, low + step);
  }
  return low;
}

