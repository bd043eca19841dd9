// bench_support.cu — kernels the benchmark needs besides the quantizer.
//
//   nvfp4_empty          does nothing: the launch-overhead floor measured in the same run
//   nvfp4_hold           one thread waits until the global timer has advanced by the given
//                        nanoseconds: it keeps the stream busy while the host queues the calls
//                        to be timed, so their events measure the GPU and not the host's launches
//   nvfp4_fill_values    fills n 16-bit values with seeded pseudo-random bf16/fp16 bit patterns
//                        on the device, so multi-GB inputs need no host generation or copy
//
// Grid mapping: 1-D grid-stride loops. Numerics: values are x = u · 2^(e) with u uniform in
// [-1, 1) and e in [-4, 3] chosen per 16-value block, rounded to the target type by the
// hardware conversion (nearest-even); no NaN or Inf is produced.
// Compile-time parameters: none.

typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
typedef int int32_t;

struct EmptyParams {
  uint64_t unused;
};
static_assert(sizeof(EmptyParams) == 8, "EmptyParams layout changed: update Swift");

struct HoldParams {
  uint64_t nanoseconds;
};
static_assert(sizeof(HoldParams) == 8, "HoldParams layout changed: update Swift");

struct FillParams {
  uint16_t* output;
  uint64_t count;
  uint32_t seed;
  uint32_t bf16;  // 1: bfloat16, 0: float16
};
static_assert(sizeof(FillParams) == 24, "FillParams layout changed: update Swift");

extern "C" __global__ void nvfp4_empty(const EmptyParams) {}

__device__ __forceinline__ uint64_t globalNanoseconds() {
  uint64_t now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  return now;
}

extern "C" __global__ void nvfp4_hold(const HoldParams p) {
  const uint64_t start = globalNanoseconds();
  while (globalNanoseconds() - start < p.nanoseconds) asm volatile("nanosleep.u32 1000;");
}

__device__ __forceinline__ uint32_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return uint32_t(x);
}

extern "C" __global__ void nvfp4_fill_values(const FillParams p) {
  for (uint64_t i = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < p.count;
       i += uint64_t(gridDim.x) * blockDim.x) {
    const uint32_t block = mix((i >> 4) ^ (uint64_t(p.seed) << 40));
    const uint32_t value = mix(i * 0x9E3779B97F4A7C15ULL + p.seed);
    const float u = float(int32_t(value)) * (1.0f / 2147483648.0f);
    const float x = ldexpf(u, int(block & 7u) - 4);
    uint16_t bits;
    if (p.bf16) {
      asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(x));
    } else {
      asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(x));
    }
    p.output[i] = bits;
  }
}
