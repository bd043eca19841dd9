import NVFP4
import NVFP4TestSupport
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What one run of the `nvfp4` executable did.
struct CLIResult: CustomStringConvertible {
    /// The exit status, or 128 + the signal number if a signal ended it.
    let status: Int32
    let standardOutput: String
    let standardError: String

    var description: String {
        "exit status \(status)\n--- stdout ---\n\(standardOutput)--- stderr ---\n\(standardError)"
    }
}

/// Why the executable could not be run; a test that needs it fails with this message.
struct CLITestError: Error, CustomStringConvertible {
    let description: String
}

/// Runs the built `nvfp4` executable as a subprocess.
///
/// The executable is `$NVFP4_CLI` when set; otherwise `nvfp4` in the directory of the test
/// bundle (`CommandLine.arguments[0]`, or `/proc/self/exe`) or one of its parents, up to the
/// build directory: `swift build`/`swift test` put it next to the bundle.
enum CLI {
    static let environmentOverride = "NVFP4_CLI"

    static func executablePath() throws -> String {
        if let override = getenv(environmentOverride).map({ String(cString: $0) }), !override.isEmpty {
            guard isExecutableFile(override) else {
                throw CLITestError(description: "\(environmentOverride)='\(override)' is not an executable file")
            }
            return override
        }
        var searched: [String] = []
        var starts: [String] = []
        for start in [CommandLine.arguments.first, resolvedLink("/proc/self/exe")] {
            if let start, !start.isEmpty, !starts.contains(parent(of: start)) { starts.append(parent(of: start)) }
        }
        for start in starts {
            var directory = start
            for _ in 0..<4 {
                let candidate = directory + "/nvfp4"
                searched.append(candidate)
                if isExecutableFile(candidate) { return candidate }
                directory = parent(of: directory)
            }
        }
        throw CLITestError(description: "cannot find the nvfp4 executable (searched: \(searched.joined(separator: ", ")));"
            + " build it with 'swift build' or set \(environmentOverride) to its path")
    }

    /// Runs `nvfp4 arguments…` to completion, capturing its output in files of `scratch`.
    static func run(_ arguments: [String], in scratch: ScratchDirectory) throws -> CLIResult {
        let executable = try executablePath()
        let outPath = scratch.path + "/.stdout", errPath = scratch.path + "/.stderr"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw CLITestError(description: "posix_spawn '\(executable)' failed: \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw CLITestError(description: "waitpid failed: \(String(cString: strerror(errno)))") }
        }
        let signal = status & 0x7F
        defer { _ = unlink(outPath); _ = unlink(errPath) }
        return CLIResult(
            status: signal == 0 ? (status >> 8) & 0xFF : 128 + signal,
            standardOutput: String(decoding: try readFile(outPath), as: UTF8.self),
            standardError: String(decoding: try readFile(errPath), as: UTF8.self))
    }

    private static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func resolvedLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        return count > 0 ? String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
    }
}

/// Whether this machine has an NVIDIA GPU with a loaded driver.
var machineHasGPU: Bool {
    guard let directory = opendir("/proc/driver/nvidia/gpus") else { return false }
    defer { closedir(directory) }
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { return true }
    }
    return false
}

/// A fresh directory under `/tmp`, removed with its files when released.
final class ScratchDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/nvfp4-cli-test-XXXXXX".utf8CString)
        guard let created = mkdtemp(&template) else {
            throw CLITestError(description: "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: created)
    }

    /// The path of `name` in this directory.
    func file(_ name: String) -> String { path + "/" + name }

    /// The names of the files in this directory, sorted.
    func entries() -> [String] { (try? directoryEntries(path)) ?? [] }

    deinit {
        for name in entries() { _ = unlink(file(name)) }
        _ = rmdir(path)
    }
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let stream = fopen(path, "rb") else {
        throw CLITestError(description: "cannot open '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { fclose(stream) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let count = fread(&chunk, 1, chunk.count, stream)
        if count == 0 { break }
        bytes += chunk.prefix(count)
    }
    return bytes
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    guard let stream = fopen(path, "wb") else {
        throw CLITestError(description: "cannot create '\(path)': \(String(cString: strerror(errno)))")
    }
    defer { fclose(stream) }
    guard fwrite(bytes, 1, bytes.count, stream) == bytes.count else {
        throw CLITestError(description: "cannot write '\(path)'")
    }
}

/// Source files for `nvfp4 quantize`, written with the library's writer.
enum SourceFile {
    static func dtype(of type: ElementType) -> SafetensorsDType {
        type == .bfloat16 ? .bf16 : .f16
    }

    /// A writer holding `problemCase` as a source file, with its `scale_offsets` if asked.
    static func writer(for problemCase: ProblemCase, includeScaleOffsets: Bool) throws -> SafetensorsWriter {
        let problem = problemCase.problem
        let experts = problem.segments.expertCount
        var writer = SafetensorsWriter()
        try writer.add("input", dtype: dtype(of: problem.elementType), shape: [problem.rowCount, problem.inputRowWidth],
                       values: problemCase.input)
        try writer.add("global_scale", dtype: .f32, shape: [experts], values: problem.globalScales)
        try writer.add("input_offsets", dtype: .i32, shape: [experts + 1], values: problem.segments.inputOffsets)
        if includeScaleOffsets {
            try writer.add("scale_offsets", dtype: .i32, shape: [experts + 1], values: problem.segments.scaleOffsets)
        }
        return writer
    }

    static func write(_ problemCase: ProblemCase, to path: String, includeScaleOffsets: Bool = false) throws {
        try writer(for: problemCase, includeScaleOffsets: includeScaleOffsets).write(to: path)
    }

    /// A safetensors file with the tensors laid out in the order given, from byte `0` of the data
    /// region: lets a test place a tensor at an odd offset, which the library's writer never does.
    static func handLaidOut(_ tensors: [(name: String, dtype: SafetensorsDType, shape: [Int], bytes: [UInt8])]) -> [UInt8] {
        var entries: [String] = []
        var data: [UInt8] = []
        for tensor in tensors {
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            entries.append("\"\(tensor.name)\":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],"
                + "\"data_offsets\":[\(data.count),\(data.count + tensor.bytes.count)]}")
            data += tensor.bytes
        }
        var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        return withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header + data
    }
}

extension Array {
    /// The raw bytes of the elements.
    var bytes: [UInt8] { withUnsafeBytes { Array<UInt8>($0) } }
}

/// A small problem with skewed routing and rows past `off[E]`.
func smallProblem(
    seed: UInt64, type: ElementType = .bfloat16, layout: ScaleLayout = .swizzled,
    rule: ExpertSegments.ScaleOffsetRule = .roundedPrefixSum, extraRows: Int = 7, specials: Bool = false
) throws -> ProblemCase {
    try ProblemFactory.make(
        name: "cli \(type) \(layout) \(rule)", seed: seed, experts: 6, routedRows: 250, extraRows: extraRows,
        hiddenSize: 80, type: type, layout: layout, rule: rule, specials: specials)
}
