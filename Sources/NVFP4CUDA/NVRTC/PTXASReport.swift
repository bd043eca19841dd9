/// What ptxas reported about each kernel, parsed from an NVRTC log compiled with
/// `--ptxas-options=-v`.
///
/// ptxas (CUDA 13) writes, per entry function:
///
/// ```
/// ptxas info    : Compiling entry function 'add_one' for 'sm_90a'
/// ptxas info    : Function properties for add_one
/// ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
/// ptxas info    : Used 8 registers, used 0 barriers, 1024 bytes smem
/// ptxas info    : Compile time = 2.960 ms
/// ```
///
/// Older releases indent the properties line without `ptxas .`, and list `N bytes cmem[B]`
/// and `N bytes lmem` on the `Used` line; both forms are understood. Properties of non-entry
/// (device) functions are skipped.
public struct PTXASReport: Hashable, Sendable {
    /// One report per entry function, in the order ptxas compiled them.
    public var functions: [FunctionReport]
    /// The log's warning lines, from the front end (`file.cu(4): warning #177-D: ...`) and
    /// from ptxas (`ptxas warning : ...`), trimmed.
    public var warnings: [String]

    /// Creates a report from its parts.
    public init(functions: [FunctionReport] = [], warnings: [String] = []) {
        self.functions = functions
        self.warnings = warnings
    }

    /// The report for the entry function named `name` (as ptxas prints it: the `extern "C"`
    /// name, or the mangled one), if the log has one.
    public subscript(function name: String) -> FunctionReport? {
        functions.first { $0.name == name }
    }

    /// What ptxas said about one entry function. Counts the log omits are 0.
    public struct FunctionReport: Hashable, Sendable {
        /// The entry function's name.
        public var name: String
        /// The target (`sm_90a`).
        public var architecture: String
        /// Registers per thread.
        public var registers: Int = 0
        /// Named barriers used.
        public var barriers: Int = 0
        /// Bytes written to local memory by register spills, per thread.
        public var spillStoreBytes: Int = 0
        /// Bytes read back from local memory by register spills, per thread.
        public var spillLoadBytes: Int = 0
        /// The stack frame in bytes per thread (local arrays live here in recent ptxas).
        public var stackFrameBytes: Int = 0
        /// Local memory in bytes per thread (`lmem`, reported by older ptxas).
        public var localMemoryBytes: Int = 0
        /// Static shared memory in bytes per block (`smem`).
        public var sharedMemoryBytes: Int = 0
        /// Constant memory in bytes, summed over banks (`cmem[N]`).
        public var constantMemoryBytes: Int = 0

        /// Creates an empty report for `name` on `architecture`.
        public init(name: String, architecture: String) {
            self.name = name
            self.architecture = architecture
        }
    }

    /// Parses `log`; lines that are not ptxas statistics or warnings are ignored.
    public static func parse(log: String) -> PTXASReport {
        var report = PTXASReport()
        var current: FunctionReport?
        var propertiesOwner: String?
        for rawLine in log.split(whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let line = rawLine.trimmingSpaces()
            if isWarning(line) {
                report.warnings.append(line)
                continue
            }
            let body = line.removingPTXASPrefix()
            if let (name, architecture) = parseEntry(body) {
                if let finished = current { report.functions.append(finished) }
                current = FunctionReport(name: name, architecture: architecture)
                propertiesOwner = nil
            } else if body.hasPrefix("Function properties for ") {
                propertiesOwner = String(body.dropFirst("Function properties for ".count)).trimmingSpaces()
            } else if body.contains("bytes stack frame") {
                if propertiesOwner != nil, propertiesOwner == current?.name {
                    current?.apply(statistics: body)
                }
                propertiesOwner = nil
            } else if body.hasPrefix("Used ") {
                current?.apply(statistics: body)
            }
        }
        if let finished = current { report.functions.append(finished) }
        return report
    }

    /// `Compiling entry function 'NAME' for 'ARCH'` → (NAME, ARCH).
    private static func parseEntry(_ body: String) -> (String, String)? {
        let prefix = "Compiling entry function '"
        guard body.hasPrefix(prefix) else { return nil }
        let rest = body.dropFirst(prefix.count)
        guard let nameEnd = rest.firstIndex(of: "'") else { return nil }
        let name = String(rest[..<nameEnd])
        let tail = rest[rest.index(after: nameEnd)...]
        guard let open = tail.firstIndex(of: "'") else { return (name, "") }
        let archStart = tail.index(after: open)
        let architecture = tail[archStart...].prefix { $0 != "'" }
        return (name, String(architecture))
    }

    private static func isWarning(_ line: String) -> Bool {
        line.hasPrefix("ptxas warning") || line.hasPrefix("warning") || line.contains("): warning")
    }
}

extension PTXASReport.FunctionReport {
    /// Applies the comma-separated items of a statistics line: `Used N registers`,
    /// `used N barriers`, `N bytes stack frame`, `N bytes spill stores`, `N bytes spill loads`,
    /// `N bytes smem`, `N bytes cmem[B]`, `N bytes lmem`. Unknown items are ignored.
    mutating func apply(statistics body: String) {
        for item in body.split(separator: ",") {
            let words = item.split(separator: " ")
            if words.count >= 3, words[0].lowercased() == "used", let value = Int(words[1]) {
                switch words[2] {
                case "registers", "register": registers = value
                case "barriers", "barrier": barriers = value
                default: break
                }
                continue
            }
            guard words.count >= 3, let value = Int(words[0]), words[1] == "bytes" else { continue }
            let what = words[2...].joined(separator: " ")
            switch what {
            case "stack frame": stackFrameBytes = value
            case "spill stores": spillStoreBytes = value
            case "spill loads": spillLoadBytes = value
            case "smem": sharedMemoryBytes = value
            case "lmem": localMemoryBytes = value
            case _ where what.hasPrefix("cmem["): constantMemoryBytes += value
            default: break
            }
        }
    }
}

fileprivate extension StringProtocol {
    /// The string without leading and trailing spaces and tabs.
    func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = lastIndex(where: { !isSpace($0) })!
        return String(self[first...last])
    }

    /// The part of a ptxas line after `ptxas info    :` or `ptxas         .`; other lines as
    /// they are.
    func removingPTXASPrefix() -> String {
        guard hasPrefix("ptxas") else { return String(self) }
        let rest = dropFirst("ptxas".count).trimmingSpaces()
        if rest.hasPrefix("info") {
            let afterInfo = rest.dropFirst("info".count).trimmingSpaces()
            return afterInfo.hasPrefix(":") ? afterInfo.dropFirst().trimmingSpaces() : afterInfo
        }
        if rest.hasPrefix(".") { return rest.dropFirst().trimmingSpaces() }
        return rest
    }
}
