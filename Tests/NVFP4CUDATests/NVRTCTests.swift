#if canImport(Glibc)
import Glibc
#endif
import NVFP4
@testable import NVFP4CUDA
import Testing

@Suite("NVRTC loading and compilation")
struct NVRTCTests {
    static let kernelSource = """
        struct ScaleParameters {
            float* data;
            int count;
            float factor;
        };

        extern "C" __global__ void scale(ScaleParameters p) {
            int i = blockIdx.x * blockDim.x + threadIdx.x;
            int unused_index;
            if (i < p.count) {
                p.data[i] *= p.factor;
            }
        }
        """

    @Test("NVFP4_NVRTC_LIBRARY replaces the default search")
    func overrideReplacesSearch() {
        let environment = ["NVFP4_NVRTC_LIBRARY": "/opt/custom/libnvrtc.so.13", "CUDA_HOME": "/opt/cuda"]
        #expect(NVRTCLibrary.searchPaths(environment: { environment[$0] }) == ["/opt/custom/libnvrtc.so.13"])
    }

    @Test("the default search goes loader, CUDA_HOME, CUDA_PATH, /usr/local/cuda")
    func defaultSearchOrder() {
        let environment = ["CUDA_HOME": "/opt/cuda-home", "CUDA_PATH": "/opt/cuda-path"]
        let paths = NVRTCLibrary.searchPaths(environment: { environment[$0] })
        #expect(Array(paths.prefix(3)) == ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"])
        #expect(paths[3] == "/opt/cuda-home/lib64/libnvrtc.so.13")
        #expect(paths[6] == "/opt/cuda-path/lib64/libnvrtc.so.13")
        #expect(paths[9] == "/usr/local/cuda/lib64/libnvrtc.so.13")
        #expect(paths.count == 12)
        #expect(NVRTCLibrary.searchPaths(environment: { _ in nil }).count == 6)
    }

    @Test("pip installs are probed under each site-packages directory, CUDA 13 first")
    func pipCandidates() {
        #expect(NVRTCLibrary.pipCandidates(sitePackages: ["/site", "/user"]) == [
            "/site/nvidia/cu13/lib/libnvrtc.so.13", "/site/nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
            "/user/nvidia/cu13/lib/libnvrtc.so.13", "/user/nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
        ])
    }

    @Test("a missing NVRTC library gives cudaUnavailable listing the path")
    func missingLibraryIsUnavailable() {
        let path = "/nonexistent/nvfp4-tests/libnvrtc.so.13"
        do {
            _ = try NVRTCLibrary.load(candidates: [path])
            Issue.record("loading a nonexistent library succeeded")
        } catch let NVFP4Error.cudaUnavailable(library, searched, reason) {
            #expect(library == "libnvrtc")
            #expect(searched == [path])
            #expect(reason.contains("No such file"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("an override that does not load fails without asking Python")
    func failedOverrideSkipsPip() {
        let path = "/nonexistent/nvfp4-tests/libnvrtc.so"
        do {
            _ = try NVRTCLibrary.load(
                environment: { $0 == "NVFP4_NVRTC_LIBRARY" ? path : nil },
                sitePackages: {
                    Issue.record("site-packages were probed despite the override")
                    return []
                }
            )
            Issue.record("loading a nonexistent override succeeded")
        } catch let NVFP4Error.cudaUnavailable(_, searched, _) {
            #expect(searched == [path])
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("the Python probe tolerates a missing interpreter and is bounded in time")
    func pythonProbeIsTolerantAndBounded() throws {
        #expect(SitePackages.directories(executable: "/nonexistent/python3", timeoutMilliseconds: 1_000) == [])
        #expect(SitePackages.directories(executable: "false", timeoutMilliseconds: 1_000) == [])

        var template = Array("/tmp/nvfp4-slow-python-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        try #require(descriptor >= 0)
        let script = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { unlink(script) }
        let body = Array("#!/bin/sh\nexec sleep 30\n".utf8)
        #expect(body.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) } == body.count)
        fchmod(descriptor, 0o755)
        close(descriptor)

        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        #expect(SitePackages.directories(executable: script, timeoutMilliseconds: 300) == [])
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        #expect(end.tv_sec - start.tv_sec < 10)
    }

    @Test("NVRTC reports a CUDA 12 or 13 version")
    func version() throws {
        let version = try requireNVRTCOrSkip()
        #expect(version.major >= 12)
        #expect(version.minor >= 0)
    }

    @Test("a ptxas -v request turns NVRTC's own cache off (12.9+), so every compile reports")
    func verboseCompilesBypassNVRTCCache() throws {
        let version = try requireNVRTCOrSkip()
        let library = try NVRTCLibrary.shared()
        let plain = ["--gpu-architecture=sm_90a"]
        #expect(try NVRTC.effectiveOptions(plain, library: library) == plain)
        let verbose = plain + ["--ptxas-options=-v"]
        let cachesCompiles = version.major > 12 || (version.major == 12 && version.minor >= 9)
        #expect(try NVRTC.effectiveOptions(verbose, library: library) == verbose + (cachesCompiles ? ["--no-cache"] : []))
        for _ in 0..<2 {  // the second compile of the same program would be a cache hit
            let output = try NVRTC.compile(source: Self.kernelSource, programName: "scale.cu", options: verbose)
            #expect(PTXASReport.parse(log: output.log)[function: "scale"] != nil, "no ptxas report in:\n\(output.log)")
        }
    }

    @Test("a tiny kernel compiles to a cubin with a ptxas report", arguments: ["sm_90a", "sm_100a"])
    func compilesTinyKernel(architecture: String) throws {
        try requireNVRTCOrSkip()
        let output = try NVRTC.compile(
            source: Self.kernelSource, programName: "scale.cu",
            options: ["--gpu-architecture=\(architecture)", "--ptxas-options=-v"]
        )
        #expect(output.cubin.starts(with: [0x7F, 0x45, 0x4C, 0x46]))
        #expect(output.image == output.cubin)
        #expect(String(decoding: output.ptx, as: UTF8.self).contains(".entry scale"))
        let report = PTXASReport.parse(log: output.log)
        let scale = try #require(report[function: "scale"], "no ptxas report for scale in:\n\(output.log)")
        #expect(scale.architecture == architecture)
        #expect(scale.registers > 0)
        #expect(scale.spillStoreBytes == 0)
        #expect(scale.spillLoadBytes == 0)
        #expect(scale.stackFrameBytes == 0)
        #expect(scale.localMemoryBytes == 0)
        #expect(report.warnings.contains { $0.contains("scale.cu(9): warning") && $0.contains("unused_index") })
    }

    @Test("a virtual architecture yields PTX and a NUL-terminated image")
    func virtualArchitectureYieldsPTX() throws {
        try requireNVRTCOrSkip()
        let output = try NVRTC.compile(source: Self.kernelSource, programName: "scale.cu", options: ["--gpu-architecture=compute_90"])
        #expect(output.cubin.isEmpty)
        #expect(!output.ptx.isEmpty)
        #expect(output.image.last == 0)
        #expect(output.image.dropLast().elementsEqual(output.ptx))
    }

    @Test("a compile error throws compilation with the whole log")
    func compileErrorCarriesLog() throws {
        try requireNVRTCOrSkip()
        let options = ["--gpu-architecture=sm_90a"]
        do {
            _ = try NVRTC.compile(
                source: "extern \"C\" __global__ void broken(float* x) {\n  x[0] = undeclared_name;\n}\n",
                programName: "broken.cu", options: options
            )
            Issue.record("broken source compiled")
        } catch let NVFP4Error.compilation(program, thrownOptions, log) {
            #expect(program == "broken.cu")
            #expect(thrownOptions == options)
            #expect(log.contains("broken.cu(2): error"))
            #expect(log.contains("undeclared_name"))
            #expect(log.contains("1 error detected in the compilation of \"broken.cu\""))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("an unknown option throws compilation naming it")
    func unknownOptionFails() throws {
        try requireNVRTCOrSkip()
        #expect {
            _ = try NVRTC.compile(source: Self.kernelSource, programName: "scale.cu", options: ["--no-such-option"])
        } throws: { error in
            guard case let NVFP4Error.compilation(program, options, _) = error else { return false }
            return program == "scale.cu" && options == ["--no-such-option"]
        }
    }

    @Test("NUL bytes in the source or an option are rejected before NVRTC sees them")
    func nulBytesAreRejected() throws {
        #expect(throws: NVFP4Error.invalidArgument(argument: "source", reason: "the source contains a NUL byte")) {
            _ = try NVRTC.compile(source: [0x41, 0, 0x42], programName: "nul.cu", options: [])
        }
        #expect {
            _ = try NVRTC.compile(source: Self.kernelSource, programName: "nul.cu", options: ["-D\u{0}X"])
        } throws: { error in
            (error as? NVFP4Error)?.argument == "options"
        }
    }
}
