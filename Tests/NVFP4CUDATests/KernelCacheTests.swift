import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif
import NVFP4
@testable import NVFP4CUDA
import Testing

/// Counts calls to a fake compiler; the fake's image is derived from the request.
final class CountingCompiler: Sendable {
    let count = Locked(0)
    let delayMicroseconds: UInt32

    init(delayMicroseconds: UInt32 = 0) {
        self.delayMicroseconds = delayMicroseconds
    }

    var compilations: Int { count.withLock { $0 } }

    var compile: KernelCache.Compiler {
        { [self] request in
            count.withLock { $0 += 1 }
            if delayMicroseconds > 0 { usleep(delayMicroseconds) }
            let image = Array("fake cubin \(request.architecture) \(request.options) ".utf8) + request.source
            return NVRTCOutput(cubin: image, log: "compiled \(request.programName)")
        }
    }
}

/// A fresh empty directory, removed after `body`.
func withTemporaryDirectory<Result>(_ body: (String) throws -> Result) throws -> Result {
    let path = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// A fresh empty directory, removed after `body`.
func withTemporaryDirectory<Result>(_ body: (String) async throws -> Result) async throws -> Result {
    let path = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

private func makeTemporaryDirectory() throws -> String {
    let path = FileManager.default.temporaryDirectory.path + "/nvfp4-kernel-cache-\(UInt64.random(in: 0 ... .max))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

@Suite("kernel cache")
struct KernelCacheTests {
    static let request = KernelRequest(
        source: Array("extern \"C\" __global__ void k() {}".utf8), programName: "k.cu",
        options: ["--use_fast_math", "-DNVFP4_BLOCK=16"], architecture: "sm_90a"
    )
    static let version = (major: 13, minor: 0)

    func makeCache(directory: String?, compiler: CountingCompiler) -> KernelCache {
        KernelCache(diskDirectory: directory, compilerVersion: { Self.version }, compile: compiler.compile)
    }

    @Test("the same inputs give the same 64-digit hex key")
    func keyIsDeterministic() {
        let key = KernelCache.key(for: Self.request, compilerVersion: Self.version)
        #expect(key == KernelCache.key(for: Self.request, compilerVersion: Self.version))
        #expect(key.count == 64)
        #expect(key.allSatisfy { "0123456789abcdef".contains($0) })
    }

    @Test("every field changes the key")
    func everyFieldChangesKey() {
        let base = Self.request
        var variants: [String: String] = [:]
        func add(_ name: String, _ key: String) { variants[name] = key }
        add("base", KernelCache.key(for: base, compilerVersion: Self.version))
        var changed = base
        changed.source += [0x20]
        add("source", KernelCache.key(for: changed, compilerVersion: Self.version))
        changed = base
        changed.programName = "j.cu"
        add("program name", KernelCache.key(for: changed, compilerVersion: Self.version))
        changed = base
        changed.options.reverse()
        add("option order", KernelCache.key(for: changed, compilerVersion: Self.version))
        changed = base
        changed.options.append("-lineinfo")
        add("extra option", KernelCache.key(for: changed, compilerVersion: Self.version))
        changed = base
        changed.architecture = "sm_100a"
        add("architecture", KernelCache.key(for: changed, compilerVersion: Self.version))
        add("compiler version", KernelCache.key(for: base, compilerVersion: (13, 1)))
        add("package version", KernelCache.key(for: base, compilerVersion: Self.version, packageVersion: "9.9.9"))
        #expect(Set(variants.values).count == variants.count, "colliding keys: \(variants)")
    }

    @Test("fields cannot collide by concatenation")
    func lengthPrefixesPreventCollisions() {
        func key(options: [String], architecture: String = "sm_90a", programName: String = "k.cu") -> String {
            KernelCache.key(
                for: KernelRequest(source: [], programName: programName, options: options, architecture: architecture),
                compilerVersion: Self.version
            )
        }
        #expect(key(options: ["ab", "c"]) != key(options: ["a", "bc"]))
        #expect(key(options: ["-a -b"]) != key(options: ["-a", "-b"]))
        #expect(key(options: [""]) != key(options: []))
        #expect(key(options: [], architecture: "sm_90a", programName: "k.cu")
            != key(options: [], architecture: "sm_90", programName: "ak.cu"))
    }

    @Test("a second cache over the same directory reads from disk without compiling")
    func diskRoundTrip() throws {
        try withTemporaryDirectory { (directory: String) throws in
            let compiler = CountingCompiler()
            let first = try makeCache(directory: directory, compiler: compiler).image(for: Self.request)
            #expect(first.origin == .compiled)
            #expect(compiler.compilations == 1)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["\(first.key).kernel"])

            let secondCache = makeCache(directory: directory, compiler: compiler)
            let second = try secondCache.image(for: Self.request)
            #expect(second.origin == .disk)
            #expect(compiler.compilations == 1)
            #expect(second.image == first.image)
            #expect(second.log == first.log)
            #expect(second.key == first.key)
            #expect(try secondCache.image(for: Self.request).origin == .memory)
            #expect(compiler.compilations == 1)
        }
    }

    @Test("a corrupt or truncated file is ignored, recompiled and replaced")
    func corruptFileIsRecompiled() throws {
        try withTemporaryDirectory { (directory: String) throws in
            let compiler = CountingCompiler()
            let first = try makeCache(directory: directory, compiler: compiler).image(for: Self.request)
            let path = KernelCacheFile.path(directory: directory, key: first.key)
            let valid = try Data(contentsOf: URL(fileURLWithPath: path))

            var flipped = valid
            flipped[flipped.count / 2] ^= 0xFF
            let corruptions = [valid.prefix(valid.count - 1), valid.prefix(10), Data(), flipped]
            for (index, corrupt) in corruptions.enumerated() {
                try corrupt.write(to: URL(fileURLWithPath: path))
                let result = try makeCache(directory: directory, compiler: compiler).image(for: Self.request)
                #expect(result.origin == .compiled, "corruption \(index)")
                #expect(result.image == first.image)
                #expect(compiler.compilations == index + 2)
                #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == valid)
            }
            #expect(try makeCache(directory: directory, compiler: compiler).image(for: Self.request).origin == .disk)
        }
    }

    @Test("with the disk cache off nothing is written")
    func disabledDiskCacheWritesNothing() throws {
        try withTemporaryDirectory { (directory: String) throws in
            let environment = ["NVFP4_DISABLE_DISK_CACHE": "1", "NVFP4_CACHE_DIR": directory]
            let selected = KernelCache.diskDirectory(environment: { environment[$0] })
            #expect(selected == nil)
            let compiler = CountingCompiler()
            let cache = makeCache(directory: selected, compiler: compiler)
            #expect(try cache.image(for: Self.request).origin == .compiled)
            #expect(try cache.image(for: Self.request).origin == .memory)
            #expect(compiler.compilations == 1)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
        }
    }

    @Test("the disk directory comes from NVFP4_CACHE_DIR, then XDG_CACHE_HOME, then HOME")
    func diskDirectorySelection() {
        func select(_ environment: [String: String]) -> String? {
            KernelCache.diskDirectory(environment: { environment[$0] })
        }
        let all = ["NVFP4_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"]
        #expect(select(all) == "/c")
        #expect(select(["XDG_CACHE_HOME": "/x", "HOME": "/h"]) == "/x/swift-nvfp4/kernels")
        #expect(select(["XDG_CACHE_HOME": "relative", "HOME": "/h"]) == "/h/.cache/swift-nvfp4/kernels")
        #expect(select(["HOME": "/h"]) == "/h/.cache/swift-nvfp4/kernels")
        #expect(select(["NVFP4_DISABLE_DISK_CACHE": "0", "HOME": "/h"]) == "/h/.cache/swift-nvfp4/kernels")
        #expect(select(all.merging(["NVFP4_DISABLE_DISK_CACHE": "1"]) { $1 }) == nil)
        #expect(select([:]) == nil)
    }

    @Test("the cache directory is created, parents included")
    func createsDirectory() throws {
        try withTemporaryDirectory { (directory: String) throws in
            let nested = directory + "/a/b/kernels"
            let compiler = CountingCompiler()
            _ = try makeCache(directory: nested, compiler: compiler).image(for: Self.request)
            #expect(try makeCache(directory: nested, compiler: compiler).image(for: Self.request).origin == .disk)
        }
    }

    @Test("concurrent requests for one key compile once")
    func concurrentRequestsCompileOnce() async throws {
        let compiler = CountingCompiler(delayMicroseconds: 50_000)
        let cache = makeCache(directory: nil, compiler: compiler)
        let results = try await withThrowingTaskGroup(of: CompiledKernel.self) { group in
            for _ in 0..<8 {
                group.addTask { try cache.image(for: Self.request) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == 8)
        #expect(compiler.compilations == 1)
        #expect(Set(results.map(\.image)).count == 1)
        #expect(results.filter { $0.origin == .compiled }.count == 1)
        #expect(results.filter { $0.origin == .memory }.count == 7)
    }

    @Test("concurrent requests for different keys each compile once")
    func concurrentDistinctRequests() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            let compiler = CountingCompiler(delayMicroseconds: 10_000)
            let cache = makeCache(directory: directory, compiler: compiler)
            let architectures = ["sm_90a", "sm_100a", "sm_120a", "sm_90a", "sm_100a", "sm_120a"]
            try await withThrowingTaskGroup(of: Void.self) { group in
                for architecture in architectures {
                    var request = Self.request
                    request.architecture = architecture
                    group.addTask { [request] in _ = try cache.image(for: request) }
                }
                try await group.waitForAll()
            }
            #expect(compiler.compilations == 3)
            #expect(try FileManager.default.contentsOfDirectory(atPath: directory).count == 3)
        }
    }

    @Test("a failed compilation is not cached")
    func failuresAreNotCached() throws {
        let attempts = Locked(0)
        let cache = KernelCache(diskDirectory: nil, compilerVersion: { Self.version }) { request in
            let attempt = attempts.withLock { count in
                count += 1
                return count
            }
            if attempt == 1 {
                throw NVFP4Error.compilation(program: request.programName, options: request.options, log: "error")
            }
            return NVRTCOutput(cubin: [1, 2, 3], log: "")
        }
        #expect(throws: NVFP4Error.self) { try cache.image(for: Self.request) }
        #expect(try cache.image(for: Self.request).origin == .compiled)
        #expect(attempts.withLock { $0 } == 2)
    }

    @Test("options that set the architecture, or an empty architecture, are rejected")
    func architectureOptionsAreRejected() {
        let compiler = CountingCompiler()
        let cache = makeCache(directory: nil, compiler: compiler)
        for options in [["--gpu-architecture=sm_80"], ["-arch=sm_80"], ["-arch", "sm_80"]] {
            var request = Self.request
            request.options = options
            #expect(throws: NVFP4Error.self) { try cache.image(for: request) }
        }
        var request = Self.request
        request.architecture = ""
        #expect { try cache.image(for: request) } throws: { ($0 as? NVFP4Error)?.argument == "architecture" }
        #expect(compiler.compilations == 0)
    }

    @Test("NVRTC-compiled images round-trip through the disk cache")
    func realCompilationRoundTrip() throws {
        try requireNVRTCOrSkip()
        try withTemporaryDirectory { (directory: String) throws in
            let request = KernelRequest(
                source: Array(addScalarSource.utf8), programName: "add_scalar.cu",
                options: ["--ptxas-options=-v"], architecture: "sm_90a"
            )
            let first = try KernelCache(diskDirectory: directory).image(for: request)
            #expect(first.origin == .compiled)
            #expect(first.image.starts(with: [0x7F, 0x45, 0x4C, 0x46]))
            #expect(PTXASReport.parse(log: first.log)[function: "add_scalar"]?.spillStoreBytes == 0)
            let second = try KernelCache(diskDirectory: directory).image(for: request)
            #expect(second.origin == .disk)
            #expect(second.image == first.image)
            #expect(second.log == first.log)
        }
    }
}
