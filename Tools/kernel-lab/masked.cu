// Dev harness (not shipped): the masked layout (session 16) — the tuned kernel built with
// -DNVFP4_ROW_MAP=2 from join.sh's kernel.cu, timed per call by graph replay over two buffer sets,
// next to a cudaMemsetAsync of the same scale tensor and an empty kernel; prints a hash of the
// valid rows' codes and the whole scale tensor (compare two versions by it).
// Build: bash join.sh > kernel.cu && nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a
//   -DNVFP4_HIDDEN_SIZE=K -DNVFP4_INPUT_BF16=1 -DNVFP4_SWIZZLED=1 -DNVFP4_HARDWARE_E2M1=0 -DNVFP4_BLOCK_SIZE=16
//   -DNVFP4_SCALE_UE8M0=0 -DNVFP4_SILU_MUL=0 -DNVFP4_ROW_MAP=2 masked.cu -o masked
// Run:   ./masked MMAX L MAX_VALID_ROWS_A_GROUP (masks drawn in 0 … MAX, fixed seed); TRACKED=1
//        passes a scale tracker a buffer set (zeroed once: the timed calls run in steady state;
//        zeroed again before the hashed call, which then writes every byte).
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
int main(int argc, char** argv) {
  const int Mmax = atoi(argv[1]), L = atoi(argv[2]), maxValid = atoi(argv[3]); const int K = k::kHiddenSize;
  int sms; CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  std::vector<int32_t> mask(L); unsigned x = 12345; int valid = 0;
  for (int g = 0; g < L; ++g) { x = x * 1103515245u + 12345u; mask[g] = int((x >> 8) % (maxValid + 1)); valid += mask[g]; }
  const int cols = 4 * k::kTiles; const long long S = (Mmax + 127) / 128 * 128;
  const size_t inBytes = size_t(L) * Mmax * k::kInputRowWidth * 2, codeBytes = size_t(L) * Mmax * K / 2, scaleBytes = size_t(L) * S * cols;
  const int sets = 2;
  std::vector<uint16_t*> in(sets); std::vector<uint8_t*> codes(sets), scales(sets);
  for (int s = 0; s < sets; ++s) {
    CK(cudaMalloc(&in[s], inBytes)); CK(cudaMalloc(&codes[s], codeBytes)); CK(cudaMalloc(&scales[s], scaleBytes));
    k::FillParams fp{in[s], uint64_t(inBytes / 2), uint32_t(s + 1), 1};
    k::nvfp4_fill_values<<<sms * 8, 256>>>(fp);
  }
  const bool tracked = getenv("TRACKED") != nullptr && atoi(getenv("TRACKED")) != 0;
  std::vector<int32_t*> trackers(sets, nullptr);
  for (int s = 0; s < sets && tracked; ++s) { CK(cudaMalloc(&trackers[s], 16 * L)); CK(cudaMemset(trackers[s], 0, 16 * L)); }
  int32_t* dMask; float* dGs;
  CK(cudaMalloc(&dMask, 4 * L)); CK(cudaMalloc(&dGs, 4 * L));
  std::vector<float> gs(L); for (int g = 0; g < L; ++g) gs[g] = float(1 + g % 7) * 40;
  CK(cudaMemcpy(dMask, mask.data(), 4 * L, cudaMemcpyHostToDevice)); CK(cudaMemcpy(dGs, gs.data(), 4 * L, cudaMemcpyHostToDevice));
  const int block = 256, tableBytes = 4 * (L + 1) * 4 + 128;
  int perSM; CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSM, k::nvfp4_quantize_tuned, block, tableBytes));
  const long long rowCap = (long long)L * Mmax;
  long long rowBlocks = (rowCap * cols + block * 2 - 1) / (block * 2);
  long long padBlocks = ((long long)L * S * cols + 16 * block - 1) / (16 * block);
  const int grid = int(std::max<long long>(1, std::min<long long>((long long)sms * perSM, std::max(rowBlocks, padBlocks))));
  auto params = [&](int s) {
    k::QuantParams p{};
    p.input = in[s]; p.codes = codes[s]; p.scales = scales[s]; p.inputOffsets = dMask; p.scaleOffsets = nullptr;
    p.globalScales = dGs; p.permutation = nullptr; p.rowCount = Mmax; p.sourceRowCount = Mmax; p.expertCount = L;
    p.flags = tracked ? 1 | 4 : 1; p.scaleOffsets = trackers[s]; p.status = nullptr; p.scaleRowCapacity = L * S; return p; };
  cudaEvent_t t0, t1; cudaEventCreate(&t0); cudaEventCreate(&t1);
  cudaStream_t cs; CK(cudaStreamCreate(&cs));
  auto graphit = [&](auto fn) {
    cudaGraph_t g; cudaGraphExec_t ge; CK(cudaStreamBeginCapture(cs, cudaStreamCaptureModeThreadLocal));
    for (int r = 0; r < 8; ++r) for (int s = 0; s < sets; ++s) fn(s);
    CK(cudaStreamEndCapture(cs, &g)); CK(cudaGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < 3; ++i) CK(cudaGraphLaunch(ge, cs));
    std::vector<float> v;
    for (int i = 0; i < 20; ++i) { cudaEventRecord(t0, cs); cudaGraphLaunch(ge, cs); cudaEventRecord(t1, cs); CK(cudaEventSynchronize(t1)); float ms; cudaEventElapsedTime(&ms, t0, t1); v.push_back(ms); }
    std::sort(v.begin(), v.end()); CK(cudaGraphExecDestroy(ge)); CK(cudaGraphDestroy(g));
    return v[10] * 1000 / (8 * sets); };
  float kernelUs = graphit([&](int s) { k::nvfp4_quantize_tuned<<<grid, block, tableBytes, cs>>>(params(s)); });
  float memsetUs = graphit([&](int s) { cudaMemsetAsync(scales[s], 0, scaleBytes, cs); });
  float emptyUs = graphit([&](int s) { k::nvfp4_empty<<<1, 32, 0, cs>>>(k::EmptyParams{0}); });
  CK(cudaGetLastError()); CK(cudaDeviceSynchronize());
  // output hash: valid rows' codes and the whole scale tensor of set 0
  CK(cudaMemset(codes[0], 0x22, codeBytes)); CK(cudaMemset(scales[0], 0x5A, scaleBytes));
  if (tracked) CK(cudaMemset(trackers[0], 0, 16 * L));
  k::nvfp4_quantize_tuned<<<grid, block, tableBytes>>>(params(0)); CK(cudaDeviceSynchronize());
  std::vector<uint8_t> c(codeBytes), sc(scaleBytes);
  CK(cudaMemcpy(c.data(), codes[0], codeBytes, cudaMemcpyDeviceToHost)); CK(cudaMemcpy(sc.data(), scales[0], scaleBytes, cudaMemcpyDeviceToHost));
  uint64_t h = 1469598103934665603ull;
  for (int g = 0; g < L; ++g) for (size_t i = size_t(g) * Mmax * K / 2; i < (size_t(g) * Mmax + mask[g]) * K / 2; ++i) h = (h ^ c[i]) * 1099511628211ull;
  for (auto b : sc) h = (h ^ b) * 1099511628211ull;
  printf("MASKED%s K=%5d L=%d Mmax=%d valid=%d (<=%d a group) grid %d | kernel %6.2f us | memset of the %.1f MB scale tensor %5.2f us | empty %4.2f us | hash %016llx\n",
         tracked ? "+tracker" : "", K, L, Mmax, valid, maxValid, grid, kernelUs, scaleBytes / 1e6, memsetUs, emptyUs, (unsigned long long)h);
}
