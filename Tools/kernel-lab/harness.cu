// Dev harness (not shipped): times the expert-quantization kernels (join.sh) directly with nvcc, for fast
// iteration. With -DNVFP4_SILU_MUL=1 (bfloat16, join.sh with SILU_STANDIN=1) it times SiLU·mul + quantize
// and prints a hash of the output instead of comparing with seed (which has no SiLU·mul); so does
// -DNVFP4_ROW_MAP=1 (gather + quantize, a permutation of its own). GRAPH=1 times small shapes the
// way `nvfp4 bench` does, through graph replay.
// Build: nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -DNVFP4_HIDDEN_SIZE=K ...
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
namespace k {
#include "kernel.cu"
#include "../../Sources/NVFP4CUDA/Kernels/bench_support.cu"
}

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)

// The quantizer's parameters for one buffer set (offsets layout, no gather, no validation).
// With -DNVFP4_ROW_MAP=1 (gather) output row r reads token gatherMap[r] of T = max(1, M / 8) tokens.
int32_t* gatherMap = nullptr;
long long gatherTokens = 0;
k::QuantParams params(uint16_t* input, uint8_t* codes, uint8_t* scales, int32_t* off, int32_t* soff, float* gs,
                      int M, int E, int sharedTables, long long scaleRows) {
  k::QuantParams p{};
  p.input = input; p.codes = codes; p.scales = scales;
  p.inputOffsets = off; p.scaleOffsets = soff; p.globalScales = gs;
  p.permutation = gatherMap;
  p.rowCount = M; p.sourceRowCount = k::kGather ? gatherTokens : M; p.expertCount = E;
  p.flags = sharedTables; p.status = nullptr; p.scaleRowCapacity = scaleRows;
  return p;
}

std::vector<int> skewed(int rows, int experts) {
  std::vector<double> w(experts); double total = 0;
  for (int e = 0; e < experts; ++e) { w[e] = (e % 5 == 4 && experts > 1) ? 0 : 1.0 / (1 + e % 17); total += w[e]; }
  std::vector<int> c(experts); int sum = 0;
  for (int e = 0; e < experts; ++e) { c[e] = int(rows * w[e] / total); sum += c[e]; }
  c[0] += rows - sum; return c;
}

int main(int argc, char** argv) {
  int M = atoi(argv[1]), E = atoi(argv[2]); const int K = k::kHiddenSize;
  int sms; CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  auto counts = skewed(M, E);
  std::vector<int> off(E + 1, 0), soff(E + 1, 0);
  for (int e = 0; e < E; ++e) { off[e + 1] = off[e] + counts[e]; soff[e + 1] = soff[e] + (counts[e] + 127) / 128 * 128; }
  std::vector<float> gs(E); for (int e = 0; e < E; ++e) gs[e] = float(1 + e % 7) * 40;
  const int cols = k::kSwizzled ? 4 * k::kTiles : k::kBlocksPerRow;  // scale bytes per row
  const size_t R = soff[E], scaleBytes = R * cols, inBytes = size_t(M) * k::kInputRowWidth * 2, codeBytes = size_t(M) * K / 2;
  const size_t setBytes = inBytes + codeBytes + scaleBytes;
  int sets = getenv("SETS") ? atoi(getenv("SETS")) : std::max<size_t>(2, (150ull << 20) / setBytes + 1);  // SETS overrides
  std::vector<uint16_t*> in(sets); std::vector<uint8_t*> codes(sets), scales(sets);
  for (int s = 0; s < sets; ++s) {
    CK(cudaMalloc(&in[s], inBytes)); CK(cudaMalloc(&codes[s], codeBytes)); CK(cudaMalloc(&scales[s], scaleBytes));
    k::FillParams fp{in[s], uint64_t(M) * k::kInputRowWidth, uint32_t(s + 1), k::kInputBF16 ? 1 : 0};
    k::nvfp4_fill_values<<<sms * 8, 256>>>(fp);
  }
  int32_t *dOff, *dSoff; float* dGs;
  CK(cudaMalloc(&dOff, 4 * (E + 1))); CK(cudaMalloc(&dSoff, 4 * (E + 1))); CK(cudaMalloc(&dGs, 4 * E));
  CK(cudaMemcpy(dOff, off.data(), 4 * (E + 1), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dSoff, soff.data(), 4 * (E + 1), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dGs, gs.data(), 4 * E, cudaMemcpyHostToDevice));
  if (k::kGather) {  // a scattered permutation: row r reads token (r·7919 + 13) mod T
    gatherTokens = std::max(1, M / 8);
    std::vector<int32_t> map(M); for (int r = 0; r < M; ++r) map[r] = int32_t((r * 7919ll + 13) % gatherTokens);
    CK(cudaMalloc(&gatherMap, 4 * size_t(std::max(M, 1)))); CK(cudaMemcpy(gatherMap, map.data(), 4 * size_t(M), cudaMemcpyHostToDevice));
  }
  // copy bandwidth
  void *a, *b; size_t cb = 1ull << 30; CK(cudaMalloc(&a, cb)); CK(cudaMalloc(&b, cb));
  cudaEvent_t t0, t1; cudaEventCreate(&t0); cudaEventCreate(&t1);
  auto timeit = [&](auto fn, int runs) { std::vector<float> v; for (int i = 0; i < 3; ++i) fn(i);
    for (int i = 0; i < runs; ++i) { cudaEventRecord(t0); fn(i); cudaEventRecord(t1); cudaEventSynchronize(t1); float ms; cudaEventElapsedTime(&ms, t0, t1); v.push_back(ms); }
    std::sort(v.begin(), v.end()); return v[v.size() / 2] * 1000; };
  // GRAPH=1: per call through replay of one graph of a call per set (the small shapes' way in
  // `nvfp4 bench`), the median of 20 replays; the timed launches then go to the capturing stream.
  cudaStream_t st = 0;
  auto graphit = [&](auto fn) { cudaStream_t cs; CK(cudaStreamCreate(&cs)); st = cs;
    cudaGraph_t g; cudaGraphExec_t ge; CK(cudaStreamBeginCapture(cs, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < sets; ++i) fn(i);
    CK(cudaStreamEndCapture(cs, &g)); CK(cudaGraphInstantiate(&ge, g, 0)); st = 0;
    std::vector<float> v; for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(ge, cs));
    for (int i = 0; i < 20; ++i) { cudaEventRecord(t0, cs); cudaGraphLaunch(ge, cs); cudaEventRecord(t1, cs); cudaEventSynchronize(t1); float ms; cudaEventElapsedTime(&ms, t0, t1); v.push_back(ms); }
    std::sort(v.begin(), v.end()); CK(cudaGraphExecDestroy(ge)); CK(cudaGraphDestroy(g)); CK(cudaStreamDestroy(cs));
    return v[v.size() / 2] * 1000 / sets; };
  const bool graph = getenv("GRAPH") != nullptr;
  float copyUs = timeit([&](int) { cudaMemcpyAsync(b, a, cb, cudaMemcpyDeviceToDevice); }, 20);
  double copyBW = 2.0 * cb / (copyUs * 1e-6);
  const int tableBytes = 4 * (E + 1) * 4 + 128;  // off, soff, the dense and tail tables, scan scratch
  const int tunedBlock = getenv("BLOCK") ? atoi(getenv("BLOCK")) : 256;  // 1024: wide blocks (row units only)
  // SMALL=1: the small kernel (row units of one step; size the grid with ROWSTEP=1 as the host does)
#if NVFP4_SMALL_KERNEL
  void (*tunedKernel)(const k::QuantParams) = getenv("SMALL") ? k::nvfp4_quantize_tuned_small : k::nvfp4_quantize_tuned;
#else
  void (*tunedKernel)(const k::QuantParams) = k::nvfp4_quantize_tuned;
#endif
  int perSM; CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSM, tunedKernel, tunedBlock, tableBytes));
  // LaunchPlan.tuned: one wave at most, no more blocks than the larger phase needs
  // ROWSTEP: scale bytes a thread the grid is sized for (LaunchPlan.tunedUnroll, 2 unless set)
  const int rowStep = getenv("ROWSTEP") ? atoi(getenv("ROWSTEP")) : 2;
  long long rowBlocks = ((long long)M * cols + rowStep * tunedBlock - 1) / (rowStep * tunedBlock);
  long long paddingBlocks = ((long long)R * cols + 16 * tunedBlock - 1) / (16 * tunedBlock);
  int grid = std::max<long long>(1, std::min<long long>((long long)sms * perSM, std::max(rowBlocks, paddingBlocks)));
  const int tables = getenv("TABLES") ? atoi(getenv("TABLES")) : 1;  // 0: tables read from global memory
  auto tunedCall = [&](int i) { int s = i % sets;
    k::QuantParams p = params(in[s], codes[s], scales[s], dOff, dSoff, dGs, M, E, tables, R);
    tunedKernel<<<grid, tunedBlock, tables ? tableBytes : 0, st>>>(p); };
  float tunedUs = graph ? graphit(tunedCall) : timeit(tunedCall, 50);
  CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
  if (k::kSiLUMul || k::kGather) {
    std::vector<uint8_t> c1(codeBytes), s1(scaleBytes);
    k::QuantParams p = params(in[0], codes[0], scales[0], dOff, dSoff, dGs, M, E, tables, R);
    cudaMemset(codes[0], 0x22, codeBytes); cudaMemset(scales[0], 0x5A, scaleBytes); tunedKernel<<<grid, tunedBlock, tables ? tableBytes : 0>>>(p); CK(cudaDeviceSynchronize());
    cudaMemcpy(c1.data(), codes[0], codeBytes, cudaMemcpyDeviceToHost); cudaMemcpy(s1.data(), scales[0], scaleBytes, cudaMemcpyDeviceToHost);
    uint64_t h = 1469598103934665603ull; for (auto b : c1) h = (h ^ b) * 1099511628211ull; for (auto b : s1) h = (h ^ b) * 1099511628211ull;
    double bytes = (k::kSiLUMul ? 4.5625 : 2.5625) * double(M) * K;
    printf("%s K=%5d M=%6d E=%3d | copy %.0f GB/s | tuned %8.1f us %6.0f GB/s %5.1f%% (grid %d, %d/SM) | hash %016llx\n", k::kSiLUMul ? "SILU" : "GATHER", K, M, E, copyBW / 1e9, tunedUs, bytes / tunedUs / 1e3, 100 * bytes / (tunedUs * 1e-6) / copyBW, grid, perSM, (unsigned long long)h);
    return 0;
  }
#if NVFP4_SILU_MUL == 0 && NVFP4_ROW_MAP == 0
  // seed geometry
  long long total = (long long)M * K / 8; int block = std::min(K / 8, 512);
  long long sg = std::min<long long>((total + block - 1) / block, (long long)sms * 2048 / block);
  while (sg <= sms && block > 64 && block % 4 == 0) { sg *= 2; block /= 2; }
  int shared = sg * block < total;
  auto seedCall = [&](int i) { int s = i % sets;
    k::QuantParams p = params(in[s], codes[s], scales[s], dOff, dSoff, dGs, M, E, shared, R);
    cudaMemsetAsync(scales[s], 0, scaleBytes, st);
    k::nvfp4_quantize_seed<<<sg, block, shared ? 4 * (E + 1) : 0, st>>>(p); };
  float seedUs = graph ? graphit(seedCall) : timeit(seedCall, 50);
  CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
  // compare outputs of tuned vs seed on set 0
  std::vector<uint8_t> c1(codeBytes), s1(scaleBytes), c2(codeBytes), s2(scaleBytes);
  { k::QuantParams p = params(in[0], codes[0], scales[0], dOff, dSoff, dGs, M, E, tables, R);
    cudaMemset(codes[0], 0x22, codeBytes); cudaMemset(scales[0], 0x5A, scaleBytes); tunedKernel<<<grid, tunedBlock, tables ? tableBytes : 0>>>(p); CK(cudaDeviceSynchronize());
    cudaMemcpy(c1.data(), codes[0], codeBytes, cudaMemcpyDeviceToHost); cudaMemcpy(s1.data(), scales[0], scaleBytes, cudaMemcpyDeviceToHost);
    k::QuantParams q = params(in[0], codes[0], scales[0], dOff, dSoff, dGs, M, E, shared, R);
    cudaMemset(codes[0], 0x11, codeBytes); cudaMemset(scales[0], 0, scaleBytes); k::nvfp4_quantize_seed<<<sg, block, shared ? 4 * (E + 1) : 0>>>(q); CK(cudaDeviceSynchronize());
    cudaMemcpy(c2.data(), codes[0], codeBytes, cudaMemcpyDeviceToHost); cudaMemcpy(s2.data(), scales[0], scaleBytes, cudaMemcpyDeviceToHost); }
  bool same = c1 == c2 && s1 == s2;
  double bytes = 2.5625 * double(M) * K;
  printf("K=%5d M=%6d E=%3d | copy %.0f GB/s | tuned %8.1f us %6.0f GB/s %5.1f%% (grid %d, %d/SM) | seed %8.1f us %6.0f GB/s %5.1f%% | x%.2f | %s\n",
         K, M, E, copyBW / 1e9, tunedUs, bytes / tunedUs / 1e3, 100 * bytes / (tunedUs * 1e-6) / copyBW, grid, perSM,
         seedUs, bytes / seedUs / 1e3, 100 * bytes / (seedUs * 1e-6) / copyBW, seedUs / tunedUs, same ? "same bytes" : "MISMATCH");
#endif
  return 0;
}
