// row_steps_and_checks.cu — the unfused steps and the exhaustive conversion checks.
// Part of the expert-quantization kernel: KernelSpecialization joins the parts in the order
// experts_quant.cu lists, so this file sees everything declared before it.

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

#if NVFP4_SILU_TABLE
// silu(g) by the tuned kernel's table route (siluOfWordsFromTable), for the bfloat16 gates
// g = first + i (the low 16 bits of the pattern), as float bit patterns, 8 bytes a gate: g as the
// low gate of a word, then as the high one. The word's other gate is 1 (in the band), so gates in
// the band take the entries and the others the rules.
extern "C" __global__ void nvfp4_silu_table_all(const ConversionParams p) {
  stageSiLUTable();
  uint32_t* out = reinterpret_cast<uint32_t*>(p.out);
  for (uint64_t j = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < p.count;
       j += uint64_t(gridDim.x) * blockDim.x) {
    const uint32_t gate = (p.first + uint32_t(j)) & 0xFFFFu;
    const uint32_t low[1] = {gate | 0x3F800000u};
    const uint32_t high[1] = {0x3F80u | (gate << 16)};
    float silus[2];
    siluOfWordsFromTable(low, silus);
    out[2 * j] = __float_as_uint(silus[0]);
    siluOfWordsFromTable(high, silus);
    out[2 * j + 1] = __float_as_uint(silus[1]);
  }
}
#endif
