// Dev harness (not shipped): the floor of a small quantize-shaped kernel under graph replay with rotated buffers —
// an empty kernel, a copy with the quantizer's loads and stores, and the same with a dependent table load, a staged
// table and barrier, padding zeros, fewer and fatter threads. Build: nvcc -O3 -gencode=arch=compute_90a,code=sm_90a
// floor.cu -o floor; run: ./floor M K E PADDING_BYTES (session 15; Benchmarks/kernel-lab-2026-11-28-session15.txt).
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)
struct P { const uint4* in; uint2* codes; uint8_t* scales; const int* off; long long blocks; int E; long long pad; };
__global__ void kEmpty(P) {}
__device__ __forceinline__ void body(const P& p, long long i, int limit) {
  if (i < p.blocks && i / 448 < limit) {
    uint4 a = p.in[2 * i], b = p.in[2 * i + 1];
    p.codes[i] = make_uint2(a.x ^ b.y, a.z ^ b.w);
    p.scales[i] = uint8_t(a.y + b.x);
  }
}
__device__ __forceinline__ void pad(const P& p) {
  long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x, n = (long long)gridDim.x * blockDim.x;
  for (long long c = t; c < p.pad; c += n) reinterpret_cast<uint4*>(p.scales + (1 << 20))[c] = make_uint4(0, 0, 0, 0);
}
__global__ void kCopy(P p) { body(p, (long long)blockIdx.x * blockDim.x + threadIdx.x, 1 << 30); }
__global__ void kCopyPad(P p) { body(p, (long long)blockIdx.x * blockDim.x + threadIdx.x, 1 << 30); pad(p); }
__global__ void kDep(P p) { int lim = __ldg(p.off + p.E); body(p, (long long)blockIdx.x * blockDim.x + threadIdx.x, lim); }
__global__ void kStage(P p) {
  __shared__ int s[1025];
  for (int e = threadIdx.x; e <= p.E; e += blockDim.x) s[e] = p.off[e];
  __syncthreads();
  body(p, (long long)blockIdx.x * blockDim.x + threadIdx.x, s[p.E]);
}
__global__ void kStagePad(P p) {
  __shared__ int s[1025];
  for (int e = threadIdx.x; e <= p.E; e += blockDim.x) s[e] = p.off[e];
  __syncthreads();
  body(p, (long long)blockIdx.x * blockDim.x + threadIdx.x, s[p.E]);
  pad(p);
}
__global__ void kPrefStage(P p) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  uint4 a = make_uint4(0,0,0,0), b = a;
  if (i < p.blocks) { a = p.in[2 * i]; b = p.in[2 * i + 1]; }
  __shared__ int s[1025];
  for (int e = threadIdx.x; e <= p.E; e += blockDim.x) s[e] = p.off[e];
  __syncthreads();
  if (i < p.blocks && i / 448 < s[p.E]) { p.codes[i] = make_uint2(a.x ^ b.y, a.z ^ b.w); p.scales[i] = uint8_t(a.y + b.x); }
}
// Fewer, fatter threads: each thread 4 blocks (grid-stride-like, tuned's row-unit shape).
__global__ void kFat(P p) {
  long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x, n = (long long)gridDim.x * blockDim.x;
  uint4 a[4], b[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) { long long i = t + j * n; if (i < p.blocks) { a[j] = p.in[2 * i]; b[j] = p.in[2 * i + 1]; } }
#pragma unroll
  for (int j = 0; j < 4; ++j) { long long i = t + j * n; if (i < p.blocks) { p.codes[i] = make_uint2(a[j].x ^ b[j].y, a[j].z ^ b[j].w); p.scales[i] = uint8_t(a[j].y + b[j].x); } }
}
int main(int argc, char** argv) {
  int M = atoi(argv[1]), K = atoi(argv[2]), E = atoi(argv[3]); long long padBytes = atoll(argv[4]);
  long long blocks = (long long)M * K / 16;
  size_t inB = blocks * 32, codeB = blocks * 8, scB = (1 << 20) + padBytes + 16;
  size_t setB = inB + codeB + scB; int sets = std::min<size_t>(512, std::max<size_t>(2, (150ull << 20) / setB + 1));
  std::vector<P> ps(sets);
  std::vector<int> off(E + 1); for (int e = 0; e <= E; ++e) off[e] = (long long)M * e / E;
  int* dOff; CK(cudaMalloc(&dOff, 4 * (E + 1))); CK(cudaMemcpy(dOff, off.data(), 4 * (E + 1), cudaMemcpyHostToDevice));
  for (int s = 0; s < sets; ++s) {
    uint4* in; uint2* c; uint8_t* sc; CK(cudaMalloc(&in, inB)); CK(cudaMalloc(&c, codeB)); CK(cudaMalloc(&sc, scB));
    CK(cudaMemset(in, s + 1, inB));
    ps[s] = P{in, c, sc, dOff, blocks, E, padBytes / 16};
  }
  CK(cudaDeviceSynchronize());
  cudaEvent_t t0, t1; cudaEventCreate(&t0); cudaEventCreate(&t1);
  auto graphit = [&](const char* name, void (*k)(P), int grid, int block) {
    cudaStream_t cs; CK(cudaStreamCreate(&cs)); cudaGraph_t g; cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(cs, cudaStreamCaptureModeThreadLocal));
    for (int s = 0; s < sets; ++s) k<<<grid, block, 0, cs>>>(ps[s]);
    CK(cudaStreamEndCapture(cs, &g)); CK(cudaGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(ge, cs));
    std::vector<float> v;
    for (int i = 0; i < 20; ++i) { cudaEventRecord(t0, cs); cudaGraphLaunch(ge, cs); cudaEventRecord(t1, cs); CK(cudaEventSynchronize(t1)); float ms; cudaEventElapsedTime(&ms, t0, t1); v.push_back(ms); }
    std::sort(v.begin(), v.end());
    printf("M=%d K=%d E=%d pad=%lld sets=%d %-10s grid=%d block=%d  %.3f us\n", M, K, E, padBytes, sets, name, grid, block, v[10] * 1000 / sets);
    CK(cudaGraphExecDestroy(ge)); CK(cudaGraphDestroy(g)); CK(cudaStreamDestroy(cs));
  };
  int g256 = int((blocks + 255) / 256);
  for (int round = 0; round < 2; ++round) {
    graphit("empty", kEmpty, 1, 32);
    graphit("copy", kCopy, g256, 256);
    graphit("copypad", kCopyPad, g256, 256);
    graphit("dep", kDep, g256, 256);
    graphit("stage", kStage, g256, 256);
    graphit("stagepad", kStagePad, g256, 256);
    graphit("prefstage", kPrefStage, g256, 256);
    graphit("fat4", kFat, std::max(1, g256 / 4), 256);
    graphit("copy64", kCopy, int((blocks + 63) / 64), 64);
  }
}
