import NVFP4
@testable import NVFP4CUDA
import Testing

@Suite("CUDA driver bindings without a GPU")
struct DriverTests {
    @Test("a failing status becomes a cuda error with the driver's name and message")
    func failingStatusMapsToCUDAError() {
        let names: [Int32: String] = [2: "CUDA_ERROR_OUT_OF_MEMORY"]
        let messages: [Int32: String] = [2: "out of memory"]
        #expect(throws: NVFP4Error.cuda(
            function: "cuMemAlloc_v2", code: 2, name: "CUDA_ERROR_OUT_OF_MEMORY", message: "out of memory"
        )) {
            try CUDADriver.check(2, "cuMemAlloc_v2", name: { names[$0] }, message: { messages[$0] })
        }
    }

    @Test("a successful status does not throw and does not consult the lookups")
    func successDoesNotThrow() throws {
        try CUDADriver.check(0, "cuInit", name: { _ in
            Issue.record("name lookup called for success")
            return nil
        }, message: { _ in
            Issue.record("message lookup called for success")
            return nil
        })
    }

    @Test("an unknown status keeps its raw code and says it is unrecognized")
    func unknownStatusKeepsCode() {
        do {
            try CUDADriver.check(12345, "cuLaunchKernel", name: { _ in nil }, message: { _ in nil })
            Issue.record("check did not throw")
        } catch let NVFP4Error.cuda(function, code, name, message) {
            #expect(function == "cuLaunchKernel")
            #expect(code == 12345)
            #expect(name == "CUDA_ERROR_UNRECOGNIZED(12345)")
            #expect(message.contains("12345"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("the error's description names the function, the code and the driver's words")
    func errorDescriptionReadsWell() {
        let error = NVFP4Error.cuda(function: "cuModuleLoadData", code: 209, name: "CUDA_ERROR_NO_BINARY_FOR_GPU",
                                    message: "no kernel image is available for execution on the device")
        #expect(error.description.contains("cuModuleLoadData"))
        #expect(error.description.contains("CUDA_ERROR_NO_BINARY_FOR_GPU (209)"))
    }

    @Test("a missing driver library gives cudaUnavailable listing the path and dlerror")
    func missingLibraryIsUnavailable() {
        let path = "/nonexistent/nvfp4-tests/libcuda.so.1"
        do {
            _ = try CUDADriver.load(candidates: [path])
            Issue.record("loading a nonexistent library succeeded")
        } catch let NVFP4Error.cudaUnavailable(library, searched, reason) {
            #expect(library == "libcuda")
            #expect(searched == [path])
            #expect(reason.contains(path))
            #expect(reason.contains("No such file"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("a library without the driver's symbols gives cudaUnavailable naming the symbol")
    func libraryWithoutSymbolsIsUnavailable() {
        do {
            _ = try CUDADriver.load(candidates: ["libc.so.6"])
            Issue.record("libc loaded as a CUDA driver")
        } catch let NVFP4Error.cudaUnavailable(library, searched, reason) {
            #expect(library == "libcuda")
            #expect(searched == ["libc.so.6"])
            #expect(reason.contains("missing symbol cuInit"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("every candidate tried is listed, in order")
    func everyCandidateIsListed() {
        let candidates = ["/nonexistent/a/libcuda.so.1", "/nonexistent/b/libcuda.so.1"]
        #expect(throws: NVFP4Error.self) { try CUDADriver.load(candidates: candidates) }
        do {
            _ = try CUDADriver.load(candidates: candidates)
        } catch let NVFP4Error.cudaUnavailable(_, searched, reason) {
            #expect(searched == candidates)
            #expect(reason.contains(candidates[1]))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("NVFP4_CUDA_LIBRARY replaces the default search")
    func overrideReplacesSearch() {
        let environment = ["NVFP4_CUDA_LIBRARY": "/opt/custom/libcuda.so.1"]
        #expect(CUDADriver.searchPaths(environment: { environment[$0] }) == ["/opt/custom/libcuda.so.1"])
        #expect(CUDADriver.searchPaths(environment: { _ in nil }) == ["libcuda.so.1", "libcuda.so"])
        #expect(CUDADriver.searchPaths(environment: { $0 == "NVFP4_CUDA_LIBRARY" ? "" : nil })
            == ["libcuda.so.1", "libcuda.so"])
    }

    @Test("device count either answers or reports the driver as unavailable")
    func deviceCountNeverTraps() {
        do {
            #expect(try CUDADevice.count() >= 0)
        } catch let error as NVFP4Error {
            guard case .cudaUnavailable(let library, _, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(library == "libcuda")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("launch dimensions must be positive 32-bit values")
    func launchDimensionsAreValidated() throws {
        let values = try Dim3(4, 2, 1).driverValues(argument: "grid")
        #expect([values.x, values.y, values.z] == [4, 2, 1])
        let literal: Dim3 = 256
        #expect(literal == Dim3(256, 1, 1))
        #expect(literal.count == 256)
        for invalid in [Dim3(0), Dim3(1, -1), Dim3(1, 1, Int(UInt32.max) + 1)] {
            #expect(throws: NVFP4Error.self) { try invalid.driverValues(argument: "grid") }
        }
        do {
            _ = try Dim3(0).driverValues(argument: "block")
        } catch {
            #expect((error as? NVFP4Error)?.argument == "block")
        }
    }

    @Test("driver status codes keep their raw values")
    func resultCodes() {
        #expect(CUDAResult.success.rawValue == 0)
        #expect(CUDAResult.noDevice.rawValue == 100)
        #expect(CUDAResult(rawValue: 209) == .noBinaryForGPU)
        #expect(CUDAResult(rawValue: 4242).rawValue == 4242)
        #expect(CUDAStreamHandle.legacyDefault.rawValue == nil)
    }
}
