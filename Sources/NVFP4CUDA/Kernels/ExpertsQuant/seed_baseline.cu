// seed_baseline.cu — the seed and baseline variants (plain configuration only).
// Part of the expert-quantization kernel: KernelSpecialization joins the parts in the order
// experts_quant.cu lists, so this file sees everything declared before it.

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

