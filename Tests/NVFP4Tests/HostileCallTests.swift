import NVFP4
import NVFP4TestSupport
import Testing

/// The buffers a hostile call receives: an input of seeded values and poisoned outputs.
struct HostileBuffers {
    let input: UnsafeBufferPointer<UInt16>
    let codes: UnsafeMutableBufferPointer<UInt8>
    let scales: UnsafeMutableBufferPointer<UInt8>
}

/// One invalid call of the host API: what it must throw (``NVFP4Error/invalidArgument(argument:reason:)``
/// naming `argument`) and the buffer sizes it gets. Every call differs from a valid one
/// (``HostileCalls/validCalls``) in one argument.
struct HostileCall: Sendable, CustomTestStringConvertible {
    let name: String
    let argument: String
    var inputCount = HostileCalls.inputCount
    var codeCount = HostileCalls.codeCount
    var scaleCount = HostileCalls.scaleCount
    let call: @Sendable (CPUPath, HostileBuffers) throws -> Void

    var testDescription: String { "\(name) → '\(argument)'" }
}

/// The valid problems the hostile calls perturb, and the calls.
///
/// Offsets layout: E = 3 experts of 2, 3 and 1 rows, M = 8 (two rows past off[E]), K = 64,
/// bf16, swizzled scales with scale offsets [0, 128, 256, 384]. Masked layout: L = 3 groups of
/// Mmax = 5 rows, mask [5, 0, 3], K = 64.
enum HostileCalls {
    static let rowCount = 8
    static let hiddenSize = 64
    static let inputOffsets: [Int32] = [0, 2, 5, 6]
    static let scaleOffsets: [Int32] = [0, 128, 256, 384]
    static let globalScales: [Float] = [1, 2, 0.5]
    /// Large enough for every valid problem here (the largest needs 1024 input values and 1536 scale bytes).
    static let inputCount = 4096
    static let codeCount = 2048
    static let scaleCount = 4096

    static func problem(
        rowCount: Int = rowCount, segmentRows: Int? = nil, hiddenSize: Int = hiddenSize,
        inputOffsets: [Int32] = inputOffsets, scaleOffsets: [Int32] = scaleOffsets, globalScales: [Float] = globalScales,
        blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity, gather: GatherMap? = nil
    ) throws -> QuantizationProblem {
        let segments = try ExpertSegments(
            inputOffsets: inputOffsets, scaleOffsets: scaleOffsets, rowCount: segmentRows ?? rowCount)
        return try QuantizationProblem(
            rowCount: rowCount, hiddenSize: hiddenSize, elementType: .bfloat16, segments: segments,
            globalScales: globalScales, blockFormat: blockFormat, activation: activation, gather: gather)
    }

    /// A gathered problem: off[E] = 6 output rows read rows of a `sourceRowCount`-row input.
    static func gathered(permutation: [Int32] = [5, 0, 3, 3, 1, 4], sourceRowCount: Int = 6) throws -> QuantizationProblem {
        try problem(gather: GatherMap(permutation: permutation, sourceRowCount: sourceRowCount))
    }

    /// The problem of a routed batch: its segments and its gather over `tokenCount` tokens.
    static func routed(topkIds: [Int32], tokenCount: Int, topk: Int, expertCount: Int) throws -> QuantizationProblem {
        let routing = try RoutingLayout(topkIds: topkIds, tokenCount: tokenCount, topk: topk, expertCount: expertCount)
        return try QuantizationProblem(
            rowCount: routing.segments.routedRowCount, hiddenSize: hiddenSize, elementType: .bfloat16,
            segments: routing.segments, globalScales: [Float](repeating: 1, count: expertCount),
            gather: GatherMap(routing: routing, tokenCount: tokenCount))
    }

    static func masked(
        groupCount: Int = 3, maxRows: Int = 5, hiddenSize: Int = hiddenSize, mask: [Int32] = [5, 0, 3],
        globalScales: [Float] = [1, 2, 4], blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity
    ) throws -> MaskedQuantizationProblem {
        try MaskedQuantizationProblem(
            groupCount: groupCount, maxRowsPerGroup: maxRows, hiddenSize: hiddenSize, elementType: .bfloat16,
            mask: mask, globalScales: globalScales, blockFormat: blockFormat, activation: activation)
    }

    static func run(_ path: CPUPath, _ problem: QuantizationProblem, _ buffers: HostileBuffers) throws {
        switch path {
        case .reference: try ReferenceQuantizer.quantize(problem, input: buffers.input, codes: buffers.codes, scales: buffers.scales)
        case .fast: try CPUQuantizer.quantize(problem, input: buffers.input, codes: buffers.codes, scales: buffers.scales)
        }
    }

    static func run(_ path: CPUPath, _ problem: MaskedQuantizationProblem, _ buffers: HostileBuffers) throws {
        switch path {
        case .reference: try ReferenceQuantizer.quantize(problem, input: buffers.input, codes: buffers.codes, scales: buffers.scales)
        case .fast: try CPUQuantizer.quantize(problem, input: buffers.input, codes: buffers.codes, scales: buffers.scales)
        }
    }

    /// An offsets-layout call that builds its problem with `make` and quantizes it.
    static func offsets(_ name: String, _ argument: String, input: Int = inputCount, codes: Int = codeCount,
                        scales: Int = scaleCount, _ make: @escaping @Sendable () throws -> QuantizationProblem) -> HostileCall {
        HostileCall(name: name, argument: argument, inputCount: input, codeCount: codes, scaleCount: scales) { path, buffers in
            try run(path, try make(), buffers)
        }
    }

    /// A masked-layout call that builds its problem with `make` and quantizes it.
    static func masked(_ name: String, _ argument: String, input: Int = inputCount, codes: Int = codeCount,
                       scales: Int = scaleCount, _ make: @escaping @Sendable () throws -> MaskedQuantizationProblem) -> HostileCall {
        HostileCall(name: name, argument: argument, inputCount: input, codeCount: codes, scaleCount: scales) { path, buffers in
            try run(path, try make(), buffers)
        }
    }

    /// The valid calls the hostile ones perturb; each must succeed and write.
    static let validCalls: [HostileCall] = [
        offsets("offsets", "") { try problem() },
        offsets("offsets, mxfp4 SiLU·mul", "") { try problem(blockFormat: .mxfp4, activation: .siluMul) },
        offsets("gather", "") { try gathered() },
        offsets("routed", "") { try routed(topkIds: [0, 2, 1, 2], tokenCount: 2, topk: 2, expertCount: 3) },
        masked("masked", "") { try masked() },
        masked("masked, SiLU·mul", "") { try masked(activation: .siluMul) },
    ]

    static let all: [HostileCall] = [
        // Input offsets.
        offsets("input offsets start above 0", "inputOffsets") { try problem(inputOffsets: [1, 2, 5, 6]) },
        offsets("input offsets decrease", "inputOffsets") { try problem(inputOffsets: [0, 3, 2, 6]) },
        offsets("an input offset is negative", "inputOffsets") { try problem(inputOffsets: [0, -2, 5, 6]) },
        offsets("off[E] = 9 > M = 8 (segments)", "inputOffsets") { try problem(inputOffsets: [0, 2, 5, 9]) },
        offsets("off[E] = Int32.max > M", "inputOffsets") { try problem(inputOffsets: [0, 2, 5, .max]) },
        offsets("segments of 8 rows in a problem of M = 5", "inputOffsets") { try problem(rowCount: 5, segmentRows: 8) },
        offsets("E = 0 (one offset)", "inputOffsets") { try problem(inputOffsets: [0], scaleOffsets: [0], globalScales: []) },
        offsets("decreasing offsets through the rule-based initializer", "inputOffsets") {
            let segments = try ExpertSegments(inputOffsets: [0, 4, 2], rowCount: 8)
            return try QuantizationProblem(rowCount: 8, hiddenSize: 64, elementType: .bfloat16, segments: segments, globalScales: [1, 1])
        },
        offsets("a negative expert row count", "rowCounts") {
            let segments = try ExpertSegments(rowCounts: [2, -1, 1])
            return try QuantizationProblem(rowCount: 8, hiddenSize: 64, elementType: .bfloat16, segments: segments, globalScales: globalScales)
        },
        offsets("no experts (empty row counts)", "rowCounts") {
            let segments = try ExpertSegments(rowCounts: [])
            return try QuantizationProblem(rowCount: 8, hiddenSize: 64, elementType: .bfloat16, segments: segments, globalScales: [])
        },
        // Scale offsets.
        offsets("scale offsets give expert 1 no rows for its 3", "scaleOffsets") { try problem(scaleOffsets: [0, 128, 128, 256]) },
        offsets("a scale offset of 200 (not a multiple of 128)", "scaleOffsets") { try problem(scaleOffsets: [0, 128, 200, 384]) },
        offsets("scale offsets start at 128", "scaleOffsets") { try problem(scaleOffsets: [128, 256, 384, 512]) },
        offsets("E mismatch: 3 scale offsets for 4 input offsets", "scaleOffsets") { try problem(scaleOffsets: [0, 128, 256]) },
        offsets("E mismatch: 2 global scales for 3 experts", "globalScales") { try problem(globalScales: [1, 2]) },
        // Hidden size and block format.
        offsets("K = 40 (not a multiple of 16)", "hiddenSize") { try problem(hiddenSize: 40) },
        offsets("K = 0", "hiddenSize") { try problem(hiddenSize: 0) },
        offsets("K = -16", "hiddenSize") { try problem(hiddenSize: -16) },
        offsets("mxfp4 with K = 48 (not a multiple of 32)", "hiddenSize") { try problem(hiddenSize: 48, blockFormat: .mxfp4) },
        offsets("E4M3 scales over 32 values", "blockSize") {
            try problem(blockFormat: try BlockFormat(scaleEncoding: .e4m3, blockSize: 32))
        },
        offsets("UE8M0 scales over 8 values", "blockSize") {
            try problem(blockFormat: try BlockFormat(scaleEncoding: .ue8m0, blockSize: 8))
        },
        // Global scales.
        offsets("gs = 0", "globalScales") { try problem(globalScales: [1, 0, 1]) },
        offsets("gs = -1", "globalScales") { try problem(globalScales: [1, 2, -1]) },
        offsets("gs = NaN", "globalScales") { try problem(globalScales: [.nan, 2, 1]) },
        offsets("gs = +Inf", "globalScales") { try problem(globalScales: [1, .infinity, 1]) },
        offsets("gs = -Inf", "globalScales") { try problem(globalScales: [1, 2, -.infinity]) },
        offsets("gs = -0", "globalScales") { try problem(globalScales: [-0.0, 2, 1]) },
        // Shapes and buffers.
        offsets("M = -1", "rowCount") { try problem(rowCount: -1, segmentRows: 8) },
        offsets("input one value short", "input", input: 8 * 64 - 1) { try problem() },
        offsets("codes one byte short", "codes", codes: 8 * 32 - 1) { try problem() },
        offsets("scales one byte short", "scales", scales: 384 * 4 - 1) { try problem() },
        offsets("no scale buffer at all", "scales", scales: 0) { try problem() },
        offsets("SiLU·mul with an input of M·K values (needs M·2K)", "input", input: 8 * 64) { try problem(activation: .siluMul) },
        offsets("gather from T = 12 rows with an input of 8 rows", "input", input: 8 * 64) {
            try gathered(permutation: [11, 0, 3, 3, 1, 4], sourceRowCount: 12)
        },
        // Gather.
        offsets("permutation entry 6 ≥ T = 6", "permutation") { try gathered(permutation: [5, 0, 6, 3, 1, 4]) },
        offsets("permutation entry -1", "permutation") { try gathered(permutation: [5, 0, 3, -1, 1, 4]) },
        offsets("permutation of 5 entries for 6 routed rows", "permutation") { try gathered(permutation: [5, 0, 3, 3, 1]) },
        offsets("T = -1", "sourceRowCount") { try gathered(permutation: [], sourceRowCount: -1) },
        // Routing.
        offsets("top-k id 3 ≥ E = 3", "topkIds") { try routed(topkIds: [0, 3, 1, 2], tokenCount: 2, topk: 2, expertCount: 3) },
        offsets("top-k id -2 < -1", "topkIds") { try routed(topkIds: [0, 2, -2, 1], tokenCount: 2, topk: 2, expertCount: 3) },
        offsets("5 top-k ids for [2, 2]", "topkIds") { try routed(topkIds: [0, 2, 1, 2, 0], tokenCount: 2, topk: 2, expertCount: 3) },
        offsets("topk = 0", "topk") { try routed(topkIds: [], tokenCount: 2, topk: 0, expertCount: 3) },
        offsets("tokenCount = -1", "tokenCount") { try routed(topkIds: [], tokenCount: -1, topk: 2, expertCount: 3) },
        offsets("E = 0 experts to route to", "expertCount") { try routed(topkIds: [-1, -1], tokenCount: 1, topk: 2, expertCount: 0) },
        // Masked layout.
        masked("a negative mask entry", "mask") { try masked(mask: [5, -1, 3]) },
        masked("mask of 2 entries for L = 3", "mask") { try masked(mask: [5, 0]) },
        masked("mask of 4 entries for L = 3", "mask") { try masked(mask: [5, 0, 3, 1]) },
        masked("L = 0", "groupCount") { try masked(groupCount: 0, mask: [], globalScales: []) },
        masked("Mmax = -1", "maxRowsPerGroup") { try masked(maxRows: -1) },
        masked("masked K = 24", "hiddenSize") { try masked(hiddenSize: 24) },
        masked("masked mxfp4 with K = 80", "hiddenSize") { try masked(hiddenSize: 80, blockFormat: .mxfp4) },
        masked("masked gs = NaN", "globalScales") { try masked(globalScales: [1, .nan, 4]) },
        masked("masked gs = 0", "globalScales") { try masked(globalScales: [1, 2, 0]) },
        masked("masked: 2 global scales for L = 3", "globalScales") { try masked(globalScales: [1, 2]) },
        masked("masked input one value short", "input", input: 15 * 64 - 1) { try masked() },
        masked("masked codes one byte short", "codes", codes: 15 * 32 - 1) { try masked() },
        masked("masked scales one byte short", "scales", scales: 3 * 128 * 4 - 1) { try masked() },
        masked("masked SiLU·mul with an input of L·Mmax·K values", "input", input: 15 * 64) { try masked(activation: .siluMul) },
        // Sizes that overflow (these trapped before the checks existed; now they throw).
        offsets("M = Int.max (M·K overflows)", "rowCount") { try problem(rowCount: .max) },
        offsets("K = Int.max rounded down to 16", "hiddenSize") { try problem(hiddenSize: .max / 16 * 16) },
        offsets("T = Int.max / 2 (T·K overflows)", "sourceRowCount") { try gathered(sourceRowCount: .max / 2) },
        offsets("off[E] = Int32.max − 10 leaves no room for scale offsets", "inputOffsets") {
            let segments = try ExpertSegments(inputOffsets: [0, .max - 10], rowCount: Int(Int32.max), rule: .closedForm)
            return try QuantizationProblem(rowCount: Int(Int32.max), hiddenSize: 64, elementType: .bfloat16, segments: segments, globalScales: [1])
        },
        offsets("row counts summing past Int.max", "rowCounts") {
            let segments = try ExpertSegments(rowCounts: [.max, 1])
            return try QuantizationProblem(rowCount: 8, hiddenSize: 64, elementType: .bfloat16, segments: segments, globalScales: [1, 1])
        },
        offsets("one expert of Int32.max − 127 rows (closed-form scale offsets overflow)", "rowCounts") {
            let segments = try ExpertSegments(rowCounts: [Int(Int32.max) - 127], rule: .closedForm)
            return try QuantizationProblem(rowCount: 8, hiddenSize: 64, elementType: .bfloat16, segments: segments, globalScales: [1])
        },
        offsets("T·topk overflows Int", "topkIds") { try routed(topkIds: [0], tokenCount: .max / 2 + 1, topk: 2, expertCount: 3) },
        masked("masked Mmax = Int.max", "maxRowsPerGroup") { try masked(maxRows: .max) },
        masked("masked L·roundUp(Mmax, 128) overflows", "maxRowsPerGroup") { try masked(maxRows: .max / 2) },
        masked("masked L·Mmax·K overflows", "maxRowsPerGroup") { try masked(maxRows: .max / 256) },
        masked("masked K = Int.max rounded down to 16", "hiddenSize") { try masked(hiddenSize: .max / 16 * 16) },
    ]
}

/// Poisoned bytes: a non-zero pattern that is not one repeated byte, so a partial write shows.
func hostilePoison(count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { i in seed ^ UInt8(truncatingIfNeeded: i % 7) }
}

/// Runs `hostile` on `path` over fresh poisoned outputs; returns what it threw and the outputs
/// before and after.
func runHostile(_ hostile: HostileCall, path: CPUPath) -> (error: (any Error)?, before: [[UInt8]], after: [[UInt8]]) {
    var generator = SeededGenerator(seed: 0x4057_11E)
    let input = ProblemFactory.values(count: hostile.inputCount, hiddenSize: 64, type: .bfloat16, specials: true, generator: &generator)
    var codes = hostilePoison(count: hostile.codeCount, seed: 0xA5)
    var scales = hostilePoison(count: hostile.scaleCount, seed: 0x5A)
    let before = [codes, scales]
    var thrown: (any Error)?
    input.withUnsafeBufferPointer { input in
        codes.withUnsafeMutableBufferPointer { codes in
            scales.withUnsafeMutableBufferPointer { scales in
                do {
                    try hostile.call(path, HostileBuffers(input: input, codes: codes, scales: scales))
                } catch {
                    thrown = error
                }
            }
        }
    }
    return (thrown, before, [codes, scales])
}

@Suite("Hostile host calls")
struct HostileCallTests {
    @Test("there are at least 20 distinct hostile calls, each named once")
    func catalogIsLarge() {
        #expect(HostileCalls.all.count >= 20)
        #expect(Set(HostileCalls.all.map(\.name)).count == HostileCalls.all.count)
        #expect(Set(HostileCalls.all.map(\.argument)).count >= 15)
    }

    @Test("each valid call the hostile ones perturb succeeds and writes its outputs",
          arguments: HostileCalls.validCalls, CPUPath.allCases)
    func validCallsWrite(_ valid: HostileCall, path: CPUPath) {
        let (error, before, after) = runHostile(valid, path: path)
        #expect(error == nil, "\(valid.name) on \(path): \(String(describing: error))")
        #expect(before[0] != after[0], "\(valid.name) on \(path): no code written")
        #expect(before[1] != after[1], "\(valid.name) on \(path): no scale written")
    }

    @Test("a hostile call throws invalidArgument naming the argument and leaves the poisoned outputs byte for byte",
          arguments: HostileCalls.all, CPUPath.allCases)
    func refused(_ hostile: HostileCall, path: CPUPath) {
        let (error, before, after) = runHostile(hostile, path: path)
        guard case let .invalidArgument(argument, reason)? = error as? NVFP4Error else {
            Issue.record("\(hostile.testDescription) on \(path): expected invalidArgument, got \(String(describing: error))")
            return
        }
        #expect(argument == hostile.argument, "\(hostile.testDescription) on \(path): named '\(argument)' (\(reason))")
        #expect(!reason.isEmpty)
        #expect(before[0] == after[0], "\(hostile.testDescription) on \(path): codes changed")
        #expect(before[1] == after[1], "\(hostile.testDescription) on \(path): scales changed")
    }
}
