import Crypto
import NVFP4

/// What to compile: one self-contained CUDA source for one architecture.
public struct KernelRequest: Hashable, Sendable {
    /// The source text's UTF-8 bytes.
    public var source: [UInt8]
    /// The program name NVRTC gives the source in diagnostics (the `.cu` file's name).
    public var programName: String
    /// NVRTC options, in order, without the architecture (the cache adds
    /// `--gpu-architecture=` from ``architecture``).
    public var options: [String]
    /// The target: a real architecture (`sm_90a`, `sm_100a`) for a cubin, or a virtual one
    /// (`compute_90`) for PTX that the driver compiles when loading.
    public var architecture: String

    /// Creates a request.
    public init(source: [UInt8], programName: String, options: [String] = [], architecture: String) {
        self.source = source
        self.programName = programName
        self.options = options
        self.architecture = architecture
    }
}

/// A compiled kernel image and where it came from.
public struct CompiledKernel: Hashable, Sendable {
    /// Where ``KernelCache/image(for:)`` found the image.
    public enum Origin: Hashable, Sendable {
        /// Compiled by this call.
        case compiled
        /// Found in the process's memory cache.
        case memory
        /// Read from the disk cache.
        case disk
    }

    /// The image to load with ``CUDAModule/init(context:image:)`` (a cubin, or NUL-terminated PTX).
    public var image: [UInt8]
    /// The compiler's log from when the image was compiled.
    public var log: String
    /// The cache key: 64 lowercase hex digits of a SHA-256 (see ``KernelCache/key(for:)``).
    public var key: String
    /// Where the image came from.
    public var origin: Origin
}

/// Compiled kernel images, cached in memory and on disk.
///
/// The key is a SHA-256 over the source bytes, the program name, the ordered options, the target
/// architecture, NVRTC's version and ``packageVersion``, each field length-prefixed so that no
/// two different requests can hash the same bytes. Concurrent requests for one key compile
/// once: later callers wait for the first and reuse its image.
///
/// The disk cache lives in `$NVFP4_CACHE_DIR`, else `$XDG_CACHE_HOME/swift-nvfp4/kernels`, else
/// `~/.cache/swift-nvfp4/kernels`; `NVFP4_DISABLE_DISK_CACHE=1` turns it off. Files are written
/// atomically and checked when read: a corrupt or truncated file is ignored and replaced.
/// Disk errors never fail a request (the image is compiled instead).
public final class KernelCache: Sendable {
    /// Compiles a request; the seam tests use to count compilations without NVRTC.
    public typealias Compiler = @Sendable (KernelRequest) throws -> NVRTCOutput

    /// The version of this package's kernels and cache format, hashed into every key.
    public static let packageVersion = "0.1.0"

    /// The process-wide cache: NVRTC, and the disk directory from the environment.
    public static let shared = KernelCache()

    /// The disk cache directory; `nil` when the disk cache is off.
    public let diskDirectory: String?

    private let compiler: Compiler
    private let compilerVersion: @Sendable () throws -> (major: Int, minor: Int)
    private let slots = Locked<[String: Slot]>([:])

    /// One key's entry; its mutex is held while the key's image is looked up or compiled.
    private final class Slot: Sendable {
        let entry = Locked<(image: [UInt8], log: String)?>(nil)
    }

    /// Creates a cache.
    ///
    /// - Parameters:
    ///   - diskDirectory: where to keep compiled images; `nil` for memory only.
    ///   - compilerVersion: the compiler's version, hashed into keys (NVRTC's by default).
    ///   - compile: compiles a request (``nvrtcCompile(_:)`` by default).
    public init(
        diskDirectory: String? = KernelCache.defaultDiskDirectory(),
        compilerVersion: @escaping @Sendable () throws -> (major: Int, minor: Int) = { try NVRTC.version() },
        compile: @escaping Compiler = KernelCache.nvrtcCompile
    ) {
        self.diskDirectory = diskDirectory
        self.compilerVersion = compilerVersion
        self.compiler = compile
    }

    /// Compiles `request` with NVRTC, passing `--gpu-architecture=<architecture>` before the
    /// request's options.
    @Sendable
    public static func nvrtcCompile(_ request: KernelRequest) throws -> NVRTCOutput {
        try NVRTC.compile(
            source: request.source,
            programName: request.programName,
            options: ["--gpu-architecture=\(request.architecture)"] + request.options
        )
    }

    /// The image for `request`: from memory, else from disk, else compiled (and then stored in
    /// both).
    ///
    /// - Throws: ``NVFP4Error/invalidArgument(argument:reason:)`` for an empty architecture or
    ///   options that set the architecture themselves; whatever the compiler throws
    ///   (``NVFP4Error/compilation(program:options:log:)``,
    ///   ``NVFP4Error/cudaUnavailable(library:searched:reason:)``). Failures are not cached.
    public func image(for request: KernelRequest) throws -> CompiledKernel {
        try Self.validate(request)
        let key = try key(for: request)
        let slot = slots.withLock { table in
            if let slot = table[key] { return slot }
            let slot = Slot()
            table[key] = slot
            return slot
        }
        return try slot.entry.withLock { entry in
            if let entry {
                return CompiledKernel(image: entry.image, log: entry.log, key: key, origin: .memory)
            }
            if let diskDirectory, let stored = KernelCacheFile.load(directory: diskDirectory, key: key) {
                entry = stored
                return CompiledKernel(image: stored.image, log: stored.log, key: key, origin: .disk)
            }
            let output = try compiler(request)
            let image = output.image
            guard image.count > 1 else {
                throw NVFP4Error.compilation(
                    program: request.programName, options: request.options,
                    log: "the compiler produced no image\n" + output.log
                )
            }
            entry = (image, output.log)
            if let diskDirectory {
                KernelCacheFile.store(directory: diskDirectory, key: key, image: image, log: output.log)
            }
            return CompiledKernel(image: image, log: output.log, key: key, origin: .compiled)
        }
    }

    /// The cache key of `request` with this cache's compiler version.
    public func key(for request: KernelRequest) throws -> String {
        Self.key(for: request, compilerVersion: try compilerVersion())
    }

    /// The cache key of `request`: 64 lowercase hex digits of a SHA-256 over a domain tag,
    /// `packageVersion`, `compilerVersion`, the architecture, the program name, the source and
    /// the option count followed by each option, every field prefixed by its length.
    public static func key(
        for request: KernelRequest,
        compilerVersion: (major: Int, minor: Int),
        packageVersion: String = KernelCache.packageVersion
    ) -> String {
        var hasher = SHA256()
        func field(_ bytes: [UInt8]) {
            var length = UInt64(bytes.count).littleEndian
            withUnsafeBytes(of: &length) { hasher.update(bufferPointer: $0) }
            bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        }
        field(Array("swift-nvfp4 kernel cache key v1".utf8))
        field(Array(packageVersion.utf8))
        field(Array("nvrtc \(compilerVersion.major).\(compilerVersion.minor)".utf8))
        field(Array(request.architecture.utf8))
        field(Array(request.programName.utf8))
        field(request.source)
        var optionCount = UInt64(request.options.count).littleEndian
        withUnsafeBytes(of: &optionCount) { hasher.update(bufferPointer: $0) }
        for option in request.options { field(Array(option.utf8)) }
        return hexadecimal(hasher.finalize())
    }

    /// The disk cache directory the environment selects, or `nil` when it is turned off.
    public static func defaultDiskDirectory() -> String? {
        diskDirectory(environment: processEnvironment)
    }

    /// `NVFP4_DISABLE_DISK_CACHE` (any value but empty or `0`) → `nil`; else `NVFP4_CACHE_DIR`;
    /// else `$XDG_CACHE_HOME/swift-nvfp4/kernels` (absolute values only, as XDG specifies);
    /// else `$HOME/.cache/swift-nvfp4/kernels`; else `nil`.
    static func diskDirectory(environment: (String) -> String?) -> String? {
        if let disabled = environment("NVFP4_DISABLE_DISK_CACHE"), !disabled.isEmpty, disabled != "0" {
            return nil
        }
        if let directory = environment("NVFP4_CACHE_DIR"), !directory.isEmpty {
            return directory
        }
        if let cacheHome = environment("XDG_CACHE_HOME"), cacheHome.hasPrefix("/") {
            return cacheHome + "/swift-nvfp4/kernels"
        }
        if let home = environment("HOME"), !home.isEmpty {
            return home + "/.cache/swift-nvfp4/kernels"
        }
        return nil
    }

    private static func validate(_ request: KernelRequest) throws {
        guard !request.architecture.isEmpty, !request.architecture.contains(" ") else {
            throw NVFP4Error.invalidArgument(
                argument: "architecture", reason: "\(request.architecture.debugDescription) is not a target like sm_90a"
            )
        }
        let architectureFlags = ["--gpu-architecture", "-arch"]
        if let option = request.options.first(where: { option in architectureFlags.contains { option.hasPrefix($0) } }) {
            throw NVFP4Error.invalidArgument(
                argument: "options",
                reason: "\(option.debugDescription) sets the architecture; use KernelRequest.architecture"
            )
        }
    }

    static func hexadecimal(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
