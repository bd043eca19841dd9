// tuned_row_units.cu — the tuned kernel's row units (phase 2; the phases are described in
// tuned_units.cu).
// Part of the expert-quantization kernel: KernelSpecialization joins the parts in the order
// experts_quant.cu lists, so this file sees everything declared before it.

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

// A row unit: Steps steps of one routed row.
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

// Unit `unit` (of Steps steps) of this lane's slot; it exists while its routed index is below off[E].
template <int Steps>
__device__ __forceinline__ RoutedUnit numberUnit(int64_t unit, int slot, int64_t routedRows) {
  RoutedUnit u;
  const int64_t group = unit / kUnitsPerRow<Steps>;
  u.routed = group * kRowsPerWarp + slot;
  u.firstStep = int(unit - group * kUnitsPerRow<Steps>) * Steps;
  u.valid = u.routed < routedRows;
  u.readable = u.valid;
  return u;
}

// Carries `expert` forward to the owner of s in `table` (a prefix table, s growing from call to
// call): one comparison unless s left it, then a search of the rest — by the whole warp when it
// holds one row (the warp's lanes then ask with the same s).
__device__ __forceinline__ void carryExpert(const int32_t* table, int expertCount, int64_t s, int& expert) {
  if (int64_t(table[expert + 1]) <= s) {
    expert = kRowsPerWarp == 1 ? findExpertInWarp(table, expertCount, s, expert + 1)
                               : findExpert(table, expertCount, s, expert + 1);
  }
}

// Tail unit `unit` of this lane's slot: tail row t = group · kRowsPerWarp + slot in the order of
// the tail table (every expert's tail rows, the rows of its last tile when that tile is not
// dense, one after another), so the units are as many as the tail rows and spread evenly over
// the warps. The expert is carried forward (one comparison unless the row left it, then a search
// of the rest: by the whole warp when it holds one row). Returns the row within the expert.
// (Line units run only in nvfp4_quantize_tuned, whose units take kTunedUnroll steps.)
__device__ __forceinline__ int64_t numberTailUnit(const QuantParams& p, const int32_t* inputTable,
                                                  const int32_t* scaleTable, const int32_t* tailTable,
                                                  int64_t unit, int slot, RoutedUnit& u, int& expert) {
  const int64_t group = unit / kUnitsPerRow<kTunedUnroll>;
  u.firstStep = int(unit - group * kUnitsPerRow<kTunedUnroll>) * kTunedUnroll;
  const int64_t t = group * kRowsPerWarp + slot;
  u.valid = t < tailTable[p.expertCount];  // uniform across the warp when it holds one row
  u.readable = u.valid;
  if (!u.valid) return 0;
  carryExpert(tailTable, p.expertCount, t, expert);
  const int64_t rows = int64_t(inputTable[expert + 1]) - inputTable[expert];
  const int64_t m = (rows & ~int64_t(127)) + (t - tailTable[expert]);
  u.routed = int64_t(inputTable[expert]) + m;
  u.scaleRow = scaleTable[expert] + m;
  u.gs = __ldg(p.globalScales + expert);
  return m;
}

// The permutation entry (the source row) of unit `unit` of this lane's slot, 0 past off[E]:
// loaded one unit ahead when gathering, so a unit's input loads need not wait for it.
template <int Steps>
__device__ __forceinline__ int32_t sourceOfUnit(const QuantParams& p, int64_t unit, int slot, int64_t routedRows) {
  const RoutedUnit u = numberUnit<Steps>(unit, slot, routedRows);
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
// is carried forward (carryExpert). Returns the row within the expert.
__device__ __forceinline__ int64_t bindExpert(const QuantParams& p, const int32_t* inputTable,
                                              const int32_t* scaleTable, RoutedUnit& u, int& expert) {
  carryExpert(inputTable, p.expertCount, u.routed, expert);
  const int64_t m = u.routed - inputTable[expert];
  u.scaleRow = scaleTable[expert] + m;
  u.gs = __ldg(p.globalScales + expert);
  return m;
}

// Asks L2 for the input of row unit `unit` of this lane's slot, taking the row to be the routed
// index (the offsets layout without a gather) and any row below M to exist: issued before the
// tables are staged, so that a small problem's first unit, loaded after the tables' global loads
// and barrier, finds its rows in L2 instead of waiting for a second DRAM round trip. One
// prefetch per 16-byte-aligned block start of the lane (its B values, and their up half with
// SiLU·mul).
template <int Steps>
__device__ __forceinline__ void prefetchRowUnit(const QuantParams& p, int64_t unit, int slot, int column) {
  const RoutedUnit u = numberUnit<Steps>(unit, slot, p.rowCount);
  if (!u.valid) return;
#pragma unroll
  for (int k = 0; k < Steps; ++k) {
    const int kb = (u.firstStep + k) * kLanesPerRow + column;
    if (u.firstStep + k < kColumnSteps && kb < kBlocksPerRow) {
      const uint16_t* block = p.input + u.routed * kInputRowWidth + kb * kBlockSize;
      asm volatile("prefetch.global.L2 [%0];" ::"l"(block));
      if (kSiLUMul) asm volatile("prefetch.global.L2 [%0];" ::"l"(block + kHiddenSize));
    }
  }
}

// Issues every load of a unit (nothing for an invalid or unreadable one).
template <int Steps>
__device__ __forceinline__ void loadUnit(const RoutedUnit& u, int column, uint4 (&loaded)[Steps][kLoadsPerBlock]) {
#pragma unroll
  for (int k = 0; k < Steps; ++k) {
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
template <int Steps>
__device__ __forceinline__ void storeUnit(const RoutedUnit& u, int column,
                                          const uint4 (&loaded)[Steps][kLoadsPerBlock], uint8_t* scales,
                                          uint32_t groupMask) {
  if (!u.valid) return;  // uniform across each row's lanes
  const float inverseGs = __frcp_rn(u.gs);
#pragma unroll
  for (int k = 0; k < Steps; ++k) {
    const int kb = (u.firstStep + k) * kLanesPerRow + column;
    if (u.firstStep + k >= kColumnSteps || kb >= kScaleColumns) break;  // uniform per 4-lane group
    const uint32_t scaleByte = quantizeBlock(loaded[k], u.readable && kb < kBlocksPerRow, u.gs, inverseGs,
                                             u.codes + kb * (kBlockSize / 2));
    storeScale(scales, u.scaleRow, kb, scaleByte, groupMask);
  }
}

