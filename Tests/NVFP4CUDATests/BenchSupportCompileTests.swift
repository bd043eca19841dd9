import NVFP4
@testable import NVFP4CUDA
import Testing

@Suite("Benchmark support kernels (no GPU)")
struct BenchSupportCompileTests {
    @Test("the benchmark's support kernels compile for sm_90a and sm_100a with no warning, spill or local memory",
          arguments: KernelTarget.compileChecked)
    func benchSupportCompiles(target: KernelTarget) throws {
        try requireNVRTCOrSkip()
        let output = try KernelCache.nvrtcCompile(BenchSupportKernels.request(for: target))
        let report = PTXASReport.parse(log: output.log)
        #expect(!output.log.lowercased().contains("warning"), "\(target): \(output.log)")
        for name in BenchSupportKernels.entryPoints {
            let function = try #require(report[function: name], "\(target): no ptxas report for \(name)")
            #expect(function.spillStoreBytes == 0 && function.spillLoadBytes == 0 && function.localMemoryBytes == 0,
                    "\(target) \(name) spills or uses local memory")
        }
    }
}
