// Dev harness (not shipped): what the quantizer's traffic costs at a given size with no arithmetic —
// a kernel that reads an input row's 16-value blocks (and their up halves with SiLU·mul) and writes
// 8 bytes of "codes" and a "scale" byte a block, next to a cudaMemcpy of the same bytes. Each is
// timed two ways over rotated buffer sets: per call in a replayed graph, and with events around
// each call queued back to back (the bench's `us`). Shapes of the grid: one thread a block in
// 256-thread blocks (flat256), a grid-stride loop over one wave of 1024-thread blocks (loop1024,
// the tuned kernel's row units), 4 × 256 (loop256x4), two blocks a thread in flight (loop2_1024),
// two 1024-thread blocks an SM (loop1024x2).
// Build: nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a traffic_floor.cu -o traffic_floor
// Run:   ./traffic_floor M K SILU   (SILU = 1: rows of [gate K | up K]; session 16,
//        Benchmarks/kernel-lab-2026-11-28-session16.txt)
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)

struct P { const uint4* in; uint2* codes; uint8_t* scales; long long blocks; int blocksPerRow; int silu; };

// Block i (16 outputs) of row r = i / blocksPerRow: two 16-byte vectors, and two more of its up half.
__device__ __forceinline__ void loadBlock(const P& p, long long i, uint4 (&v)[4]) {
  const long long r = i / p.blocksPerRow, c = i - r * p.blocksPerRow;
  const int width = p.silu ? 4 : 2;  // vectors a block of the input row holds, per output block
  const uint4* g = p.in + r * width * p.blocksPerRow + 2 * c;
  v[0] = __ldg(g), v[1] = __ldg(g + 1);
  if (p.silu) v[2] = __ldg(g + 2 * p.blocksPerRow), v[3] = __ldg(g + 2 * p.blocksPerRow + 1);
  else v[2] = v[3] = make_uint4(0, 0, 0, 0);
}
__device__ __forceinline__ void storeBlock(const P& p, long long i, const uint4 (&v)[4]) {
  p.codes[i] = make_uint2(v[0].x ^ v[1].y ^ v[2].z, v[0].z ^ v[1].w ^ v[3].x);
  p.scales[i] = uint8_t(v[0].y + v[1].x + v[2].w + v[3].y);
}
__global__ void kFlat(P p) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < p.blocks) { uint4 v[4]; loadBlock(p, i, v); storeBlock(p, i, v); }
}
__global__ void kLoop(P p) {
  const long long n = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.blocks; i += n) {
    uint4 v[4]; loadBlock(p, i, v); storeBlock(p, i, v);
  }
}
__global__ void kLoop2(P p) {
  const long long n = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.blocks; i += 2 * n) {
    uint4 v[4], w[4];
    const bool two = i + n < p.blocks;
    loadBlock(p, i, v);
    if (two) loadBlock(p, i + n, w);
    storeBlock(p, i, v);
    if (two) storeBlock(p, i + n, w);
  }
}

int main(int argc, char** argv) {
  if (argc < 4) { printf("usage: traffic_floor M K SILU\n"); return 2; }
  const int M = atoi(argv[1]), K = atoi(argv[2]), silu = atoi(argv[3]) != 0;
  int sms; CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const long long blocks = (long long)M * K / 16;
  const size_t inBytes = (size_t)M * K * 2 * (silu ? 2 : 1), codeBytes = blocks * 8, scaleBytes = blocks;
  const size_t setBytes = inBytes + codeBytes + scaleBytes;
  const int sets = (int)std::min<size_t>(64, std::max<size_t>(3, (160ull << 20) / setBytes + 1));
  std::vector<P> ps(sets);
  const size_t copyBytes = setBytes / 2;  // a memcpy moving the same bytes (read + written)
  std::vector<void*> copyFrom(sets), copyTo(sets);
  for (int s = 0; s < sets; ++s) {
    uint4* in; uint2* codes; uint8_t* scales;
    CK(cudaMalloc(&in, inBytes)); CK(cudaMalloc(&codes, codeBytes)); CK(cudaMalloc(&scales, scaleBytes));
    CK(cudaMemset(in, s + 1, inBytes));
    ps[s] = P{in, codes, scales, blocks, K / 16, silu};
    CK(cudaMalloc(&copyFrom[s], copyBytes)); CK(cudaMalloc(&copyTo[s], copyBytes)); CK(cudaMemset(copyFrom[s], 1, copyBytes));
  }
  void *bigFrom, *bigTo; const size_t big = 1ull << 30;
  CK(cudaMalloc(&bigFrom, big)); CK(cudaMalloc(&bigTo, big)); CK(cudaDeviceSynchronize());
  cudaEvent_t t0, t1; CK(cudaEventCreate(&t0)); CK(cudaEventCreate(&t1));
  cudaStream_t stream; CK(cudaStreamCreate(&stream));
  auto median = [](std::vector<float> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  std::vector<float> copyMs;
  for (int i = 0; i < 20; ++i) {
    CK(cudaEventRecord(t0, stream)); CK(cudaMemcpyAsync(bigTo, bigFrom, big, cudaMemcpyDeviceToDevice, stream));
    CK(cudaEventRecord(t1, stream)); CK(cudaEventSynchronize(t1));
    float ms; CK(cudaEventElapsedTime(&ms, t0, t1)); copyMs.push_back(ms);
  }
  const double copyBandwidth = 2.0 * big / (median(copyMs) * 1e-3);
  auto report = [&](const char* name, auto launch) {
    cudaGraph_t graph; cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    for (int s = 0; s < sets; ++s) launch(s, stream);
    CK(cudaStreamEndCapture(stream, &graph)); CK(cudaGraphInstantiate(&exec, graph, 0));
    for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(exec, stream));
    std::vector<float> graphMs;
    for (int i = 0; i < 20; ++i) {
      CK(cudaEventRecord(t0, stream)); CK(cudaGraphLaunch(exec, stream)); CK(cudaEventRecord(t1, stream));
      CK(cudaEventSynchronize(t1)); float ms; CK(cudaEventElapsedTime(&ms, t0, t1)); graphMs.push_back(ms);
    }
    const double graphUs = median(graphMs) * 1000 / sets;
    std::vector<cudaEvent_t> events(2 * sets);
    for (auto& event : events) CK(cudaEventCreate(&event));
    std::vector<float> queuedMs;
    for (int round = 0; round < 5; ++round) {
      for (int s = 0; s < sets; ++s) { CK(cudaEventRecord(events[2 * s], stream)); launch(s, stream); CK(cudaEventRecord(events[2 * s + 1], stream)); }
      CK(cudaStreamSynchronize(stream));
      for (int s = 0; round > 0 && s < sets; ++s) { float ms; CK(cudaEventElapsedTime(&ms, events[2 * s], events[2 * s + 1])); queuedMs.push_back(ms); }
    }
    const double queuedUs = median(queuedMs) * 1000;
    for (auto& event : events) CK(cudaEventDestroy(event));
    CK(cudaGraphExecDestroy(exec)); CK(cudaGraphDestroy(graph));
    const double percent = 100 * double(setBytes) * 1e6 / copyBandwidth;
    printf("M=%6d K=%5d %-5s sets=%2d %-11s graph %7.2f us %5.1f%% | queued %7.2f us %5.1f%% of copy (%.0f GB/s)\n", M, K,
           silu ? "silu" : "plain", sets, name, graphUs, percent / graphUs, queuedUs, percent / queuedUs, copyBandwidth / 1e9);
  };
  const int flatGrid = int((blocks + 255) / 256);
  for (int round = 0; round < 2; ++round) {
    report("memcpy", [&](int s, cudaStream_t st) { CK(cudaMemcpyAsync(copyTo[s], copyFrom[s], copyBytes, cudaMemcpyDeviceToDevice, st)); });
    report("flat256", [&](int s, cudaStream_t st) { kFlat<<<flatGrid, 256, 0, st>>>(ps[s]); });
    report("loop1024", [&](int s, cudaStream_t st) { kLoop<<<sms, 1024, 0, st>>>(ps[s]); });
    report("loop256x4", [&](int s, cudaStream_t st) { kLoop<<<4 * sms, 256, 0, st>>>(ps[s]); });
    report("loop2_1024", [&](int s, cudaStream_t st) { kLoop2<<<sms, 1024, 0, st>>>(ps[s]); });
    report("loop1024x2", [&](int s, cudaStream_t st) { kLoop<<<2 * sms, 1024, 0, st>>>(ps[s]); });
  }
  CK(cudaGetLastError());
  return 0;
}
