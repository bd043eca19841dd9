#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NVFP4

/// NVRTC, the CUDA runtime compiler, loaded at run time.
///
/// The library is found through `NVFP4_NVRTC_LIBRARY`, else the system loader
/// (`libnvrtc.so.13`, `.so.12`, `libnvrtc.so`), else `$CUDA_HOME/lib64`, `$CUDA_PATH/lib64`,
/// `/usr/local/cuda/lib64`, else a pip install (`pip install nvidia-cuda-nvrtc`) under one of
/// Python's site-packages directories. NVRTC compiles for any supported architecture without a
/// GPU.
public enum NVRTC {
    /// NVRTC's version (13.0 for the CUDA 13 library). Wraps `nvrtcVersion`.
    ///
    /// - Throws: ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` when NVRTC cannot be
    ///   loaded.
    public static func version() throws -> (major: Int, minor: Int) {
        try version(library: NVRTCLibrary.shared())
    }

    static func version(library: NVRTCLibrary) throws -> (major: Int, minor: Int) {
        var major: Int32 = 0
        var minor: Int32 = 0
        let status = library.nvrtcVersion(&major, &minor)
        guard status == 0 else {
            throw NVFP4Error.cudaUnavailable(
                library: "libnvrtc", searched: [library.library.path],
                reason: "nvrtcVersion failed: \(library.errorString(status))"
            )
        }
        return (Int(major), Int(minor))
    }

    /// Compiles one CUDA C++ translation unit.
    /// Wraps `nvrtcCreateProgram`, `nvrtcCompileProgram`, `nvrtcGetProgramLog`, `nvrtcGetCUBIN`,
    /// `nvrtcGetPTX` and `nvrtcDestroyProgram` (the program is destroyed on every path).
    ///
    /// - Parameters:
    ///   - source: the source text's UTF-8 bytes, without NUL bytes.
    ///   - programName: the name diagnostics use for the file (`experts_quant.cu`; `#line` directives
    ///     in the source may name others).
    ///   - options: NVRTC options, in order (`--gpu-architecture=sm_90a`, `--ptxas-options=-v`).
    ///     A real architecture (`sm_*`) yields a cubin; a virtual one (`compute_*`) only PTX.
    /// - Throws: ``NVFP4Error/compilation(program:options:log:)`` with the whole log when the
    ///   source does not compile (or, for any other NVRTC failure, the failing call and its
    ///   status); ``NVFP4Error/invalidArgument(argument:reason:)`` for NUL bytes in the source or
    ///   an option; ``NVFP4Error/cudaUnavailable(library:searched:reason:)`` without NVRTC.
    public static func compile(source: [UInt8], programName: String, options: [String]) throws -> NVRTCOutput {
        try validate(source: source, options: options)
        return try compile(source: source, programName: programName, options: options, library: NVRTCLibrary.shared())
    }

    /// Compiles one CUDA C++ translation unit given as a string; see the `[UInt8]` overload.
    public static func compile(source: String, programName: String, options: [String]) throws -> NVRTCOutput {
        try compile(source: Array(source.utf8), programName: programName, options: options)
    }

    /// The options passed to NVRTC: `options`, plus `--no-cache` when they ask for ptxas's
    /// `-v` report and NVRTC (12.9 and later) caches compilations — a cache hit skips ptxas and
    /// leaves no report in the log (seen on the GPU host: compile tests got logs without any
    /// ptxas line once the same program had been compiled before).
    static func effectiveOptions(_ options: [String], library: NVRTCLibrary) throws -> [String] {
        guard options.contains(where: { $0.hasPrefix("--ptxas-options") && $0.contains("-v") }) else { return options }
        let version = try version(library: library)
        return version.major > 12 || (version.major == 12 && version.minor >= 9) ? options + ["--no-cache"] : options
    }

    static func compile(
        source: [UInt8], programName: String, options: [String], library: NVRTCLibrary
    ) throws -> NVRTCOutput {
        try validate(source: source, options: options)
        let program = try NVRTCProgram(
            library: library, source: source, name: programName, options: try effectiveOptions(options, library: library))
        let status = program.compile()
        let log = try program.log()
        if status == NVRTCProgram.compilationError {
            throw NVFP4Error.compilation(program: programName, options: options, log: log)
        }
        try program.check(status, "nvrtcCompileProgram", log: log)
        return NVRTCOutput(cubin: try program.cubin(), ptx: try program.ptx(), log: log)
    }
}

extension NVRTC {
    /// Rejects NUL bytes, which would silently truncate the C strings NVRTC reads.
    static func validate(source: [UInt8], options: [String]) throws {
        guard !source.contains(0) else {
            throw NVFP4Error.invalidArgument(argument: "source", reason: "the source contains a NUL byte")
        }
        if let option = options.first(where: { $0.utf8.contains(0) }) {
            throw NVFP4Error.invalidArgument(argument: "options", reason: "option \(option.debugDescription) contains a NUL byte")
        }
    }
}

/// What NVRTC produced for one program.
public struct NVRTCOutput: Hashable, Sendable {
    /// The cubin (an ELF image for one real architecture); empty for a virtual architecture.
    public var cubin: [UInt8]
    /// The PTX text, without a terminating NUL byte.
    public var ptx: [UInt8]
    /// The compiler's log: front-end diagnostics, then ptxas output when `--ptxas-options=-v`
    /// was given (parse it with ``PTXASReport/parse(log:)``). Empty when there was nothing to say.
    public var log: String

    /// Creates an output from its parts.
    public init(cubin: [UInt8], ptx: [UInt8] = [], log: String) {
        self.cubin = cubin
        self.ptx = ptx
        self.log = log
    }

    /// The image to load with ``CUDAModule/init(context:image:)``: the cubin, or the
    /// NUL-terminated PTX when there is no cubin.
    public var image: [UInt8] { cubin.isEmpty ? ptx + [0] : cubin }
}

/// An owned NVRTC program, destroyed in `deinit` whatever happens in between.
struct NVRTCProgram: ~Copyable {
    /// `NVRTC_ERROR_COMPILATION`: the source has errors; the log says which.
    static let compilationError: Int32 = 6

    let library: NVRTCLibrary
    let handle: OpaquePointer
    let name: String
    let options: [String]

    /// Wraps `nvrtcCreateProgram` (no headers: sources are self-contained).
    init(library: NVRTCLibrary, source: [UInt8], name: String, options: [String]) throws {
        var program: OpaquePointer?
        let status = (source + [0]).withUnsafeBufferPointer { text in
            text.withMemoryRebound(to: CChar.self) { text in
                library.nvrtcCreateProgram(&program, text.baseAddress, name, 0, nil, nil)
            }
        }
        guard status == 0, let program else {
            throw NVFP4Error.compilation(
                program: name, options: options,
                log: "nvrtcCreateProgram failed: \(library.errorString(status)) (\(status))"
            )
        }
        self.library = library
        self.handle = program
        self.name = name
        self.options = options
    }

    /// Wraps `nvrtcDestroyProgram`; its status is ignored.
    deinit {
        var program: OpaquePointer? = handle
        _ = library.nvrtcDestroyProgram(&program)
    }

    /// Throws ``NVFP4Error/compilation(program:options:log:)`` for a non-zero `nvrtcResult`,
    /// naming the call and the status; the one place where NVRTC statuses become errors.
    func check(_ status: Int32, _ function: String, log: String = "") throws {
        guard status != 0 else { return }
        let summary = "\(function) failed: \(library.errorString(status)) (\(status))"
        throw NVFP4Error.compilation(program: name, options: options, log: log.isEmpty ? summary : summary + "\n" + log)
    }

    /// Wraps `nvrtcCompileProgram`, returning its status (the log is read either way).
    func compile() -> Int32 {
        let arguments = options.map { strdup($0) }
        defer { arguments.forEach { free($0) } }
        guard !arguments.contains(where: { $0 == nil }) else { return 5 }  // NVRTC_ERROR_OUT_OF_MEMORY
        let pointers = arguments.map { UnsafePointer($0) }
        return pointers.withUnsafeBufferPointer { buffer in
            library.nvrtcCompileProgram(handle, Int32(buffer.count), buffer.baseAddress)
        }
    }

    /// The compiler log, without its terminating NUL. Wraps `nvrtcGetProgramLogSize` and
    /// `nvrtcGetProgramLog`.
    func log() throws -> String {
        let bytes = try read("nvrtcGetProgramLog", size: library.nvrtcGetProgramLogSize, contents: library.nvrtcGetProgramLog)
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// The cubin; empty for a virtual architecture. Wraps `nvrtcGetCUBINSize` and `nvrtcGetCUBIN`.
    func cubin() throws -> [UInt8] {
        try read("nvrtcGetCUBIN", size: library.nvrtcGetCUBINSize, contents: library.nvrtcGetCUBIN)
    }

    /// The PTX without its terminating NUL. Wraps `nvrtcGetPTXSize` and `nvrtcGetPTX`.
    func ptx() throws -> [UInt8] {
        let bytes = try read("nvrtcGetPTX", size: library.nvrtcGetPTXSize, contents: library.nvrtcGetPTX)
        return Array(bytes.prefix { $0 != 0 })
    }

    private func read(
        _ function: String,
        size: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>?) -> Int32,
        contents: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?) -> Int32
    ) throws -> [UInt8] {
        var count = 0
        try check(size(handle, &count), function + "Size")
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        let status = bytes.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { contents(handle, $0.baseAddress) }
        }
        try check(status, function)
        return bytes
    }
}
