import ArgumentParser
import NVFP4

// The files the `quantize`, `dequantize` and `inspect` commands read and write. K is the values
// of an output row; W, those of an input row: K, or 2K with `--silu-mul` ([gate K | up K]). B is
// the block size (16, or 32 with `--scale-format ue8m0 --block-size 32`); K is a multiple of B.
//
// Source file, offsets layout (read by `quantize`, and by `inspect --against`):
//
// | tensor          | dtype     | shape   | meaning                                            |
// |-----------------|-----------|---------|----------------------------------------------------|
// | `input`         | BF16, F16 | [M, W]  | activations                                        |
// | `global_scale`  | F32       | [E]     | one global scale per expert, finite and > 0        |
// | `input_offsets` | I32       | [E + 1] | expert e owns rows off[e] ..< off[e + 1]           |
// | `scale_offsets` | I32       | [E + 1] | optional; else computed by the `--scale-offsets` rule |
//
// Source files with `--routing TOPK` (gathered): INPUT holds `input` [T, W] and `global_scale`
// [E] only (no offsets); TOPK holds `topk_ids` [T, topk] I32, each a local expert in 0 ..< E or
// −1 (not local). Rows are grouped by expert (``RoutingLayout``, scale offsets by the
// `--scale-offsets` rule) and gathered while quantizing: no permuted copy is made.
//
// Source file with `--masked`: `input` [L, Mmax, W] (BF16, F16), `mask` [L] I32 (valid rows of
// each group, ≥ 0; above Mmax counts as Mmax), `global_scale` [L] F32.
//
// Quantized file (written by `quantize`), with metadata `format` = `nvfp4`, `layout` =
// `swizzled` | `linear`, `input_dtype` = `BF16` | `F16`, `scale_format` = `e4m3` | `ue8m0`,
// `block_size` = `16` | `32`, `activation` = `identity` | `silu_mul`, `row_layout` = `offsets` |
// `gathered` | `masked` (absent keys read as the first value, so older files read as before):
//
// | tensor             | dtype            | shape                  | meaning                               |
// |--------------------|------------------|------------------------|---------------------------------------|
// | `output`           | U8               | [M, K / 2]             | E2M1 pairs, even element in the low nibble; rows ≥ off[E] are 0 |
// | `output_scale`     | F8_E4M3, F8_E8M0 | [sOff[E], bytesPerRow] | block scales in `layout` (``ScaleGeometry``), by `scale_format` |
// | `scale_offsets`    | I32              | [E + 1]                | the scale rows of each expert         |
// | `input_offsets`    | I32              | [E + 1]                | as in the source (gathered: the expert segments of the output rows) |
// | `global_scale`     | F32              | [E]                    | as in the source                      |
// | `permutation`      | I32              | [off[E]]               | gathered only: output row → source token |
// | `destination_rows` | I32              | [T, topk]              | gathered only: (token, choice) → output row, −1 when skipped |
//
// With `row_layout` = `masked`, M = off[E] rows become [L, Mmax]:
//
// | tensor         | dtype            | shape                   | meaning                                |
// |----------------|------------------|-------------------------|----------------------------------------|
// | `output`       | U8               | [L, Mmax, K / 2]        | rows past the mask are 0               |
// | `output_scale` | F8_E4M3, F8_E8M0 | [L, S, bytesPerRow]     | S = roundUp(Mmax, 128); group l's scale rows l·S ..< (l + 1)·S |
// | `mask`         | I32              | [L]                     | as in the source                       |
// | `global_scale` | F32              | [L]                     | as in the source                       |

/// The tensor names of the source and quantized files; kept exactly, other tools read them.
enum TensorName {
    static let input = "input"
    static let globalScale = "global_scale"
    static let inputOffsets = "input_offsets"
    static let scaleOffsets = "scale_offsets"
    static let topkIds = "topk_ids"
    static let mask = "mask"
    static let output = "output"
    static let outputScale = "output_scale"
    static let permutation = "permutation"
    static let destinationRows = "destination_rows"
    static let dequantized = "dequantized"
}

/// Checks the tensors of one file; every failure is a `malformedFile` naming the tensor.
struct TensorChecks {
    let file: SafetensorsFile

    func fail(_ reason: String) -> NVFP4Error {
        .malformedFile(path: file.path, reason: reason)
    }

    /// Throws unless the file holds `name`, saying that `option` needs it.
    func require(_ name: String, for option: String) throws {
        guard file.contains(name) else { throw fail("has no tensor '\(name)', which \(option) needs") }
    }

    /// The tensor `name`, which must exist, have one of `dtypes` and `rank` dimensions.
    func tensor(_ name: String, dtypes: [SafetensorsDType], rank: Int) throws -> TensorInfo {
        let tensor = try file.info(name)
        guard dtypes.contains(tensor.dtype) else {
            let expected = dtypes.map(\.rawValue).joined(separator: " or ")
            throw fail("tensor '\(name)' is \(tensor.dtype.rawValue), expected \(expected)")
        }
        guard tensor.shape.count == rank else {
            throw fail("tensor '\(name)' has shape \(tensor.shape), expected \(rank) dimension\(rank == 1 ? "" : "s")")
        }
        return tensor
    }

    /// The I32 vector `name`, which must hold `count` entries; `expected` says why, as in
    /// "E + 1 = 7 (E = 6 from 'global_scale')".
    func vector(_ name: String, count: Int, expected: String) throws -> [Int32] {
        let tensor = try self.tensor(name, dtypes: [.i32], rank: 1)
        guard tensor.shape[0] == count else {
            throw fail("tensor '\(name)' has \(tensor.shape[0]) entries, expected \(expected)")
        }
        return try file.array(name, as: Int32.self, expecting: .i32)
    }

    /// The I32 offsets `name`, `count` = E + 1 entries.
    func offsets(_ name: String, count: Int) throws -> [Int32] {
        try vector(name, count: count, expected: "E + 1 = \(count) (E = \(count - 1) from '\(TensorName.globalScale)')")
    }

    /// The F32 global scales: a non-empty vector, one per expert.
    func globalScales() throws -> [Float] {
        let tensor = try self.tensor(TensorName.globalScale, dtypes: [.f32], rank: 1)
        guard tensor.shape[0] >= 1 else { throw fail("tensor '\(TensorName.globalScale)' is empty; needs E >= 1 entries") }
        return try file.array(TensorName.globalScale, as: Float.self, expecting: .f32)
    }

    /// Runs `body`, turning the library's `invalidArgument` errors into `malformedFile` errors
    /// naming the tensor the argument came from (`inputOffsets` → `input_offsets`, …).
    func namingTensors<Result>(rowsFrom rowsTensor: String, _ body: () throws -> Result) throws -> Result {
        do {
            return try body()
        } catch let NVFP4Error.invalidArgument(argument, reason) {
            let tensors = [
                "inputOffsets": TensorName.inputOffsets, "scaleOffsets": TensorName.scaleOffsets,
                "globalScales": TensorName.globalScale, "groupCount": TensorName.globalScale, "mask": TensorName.mask,
                "permutation": TensorName.permutation, "hiddenSize": rowsTensor, "rowCount": rowsTensor,
                "maxRowsPerGroup": rowsTensor,
            ]
            throw fail("tensor '\(tensors[argument] ?? argument)': \(reason)")
        }
    }
}

/// A validated quantized file: the problem it encodes and its mapped codes and scales.
struct QuantizedFile {
    /// The tensors every quantized file holds, besides `input_offsets` and `scale_offsets`, or `mask`.
    static let commonTensors = [TensorName.output, TensorName.outputScale, TensorName.globalScale]

    /// The tensors a quantized file holds, in words.
    static let requiredTensors = commonTensors.map { "'\($0)'" }.joined(separator: ", ")
        + ", and '\(TensorName.inputOffsets)' with '\(TensorName.scaleOffsets)', or '\(TensorName.mask)'"

    /// Whether `file` holds every tensor of a quantized file (it may still be malformed).
    static func looksQuantized(_ file: SafetensorsFile) -> Bool {
        commonTensors.allSatisfy(file.contains)
            && ((file.contains(TensorName.inputOffsets) && file.contains(TensorName.scaleOffsets)) || file.contains(TensorName.mask))
    }

    let file: SafetensorsFile
    let problem: FileProblem

    /// Checks `file`: the metadata (``QuantizedMetadata``), dtypes and ranks, offsets or mask,
    /// shapes consistent with them and with the layout and block format, and for a gathered file
    /// that `permutation` and `destination_rows` agree.
    init(_ file: SafetensorsFile) throws {
        let checks = TensorChecks(file: file)
        let metadata = try QuantizedMetadata(of: checks)
        let rank = metadata.rowLayout == .masked ? 3 : 2
        let codes = try checks.tensor(TensorName.output, dtypes: [.u8], rank: rank)
        let scales = try checks.tensor(
            TensorName.outputScale, dtypes: [QuantizedMetadata.scaleDType(of: metadata.blockFormat)], rank: rank)
        let globalScales = try checks.globalScales()
        let problem: FileProblem
        if metadata.rowLayout == .masked {
            problem = .masked(try Self.maskedProblem(checks, metadata, codes: codes, globalScales: globalScales))
        } else {
            problem = .grouped(try Self.groupedProblem(checks, metadata, codes: codes, globalScales: globalScales))
        }
        guard scales.shape == problem.scaleShape else {
            let rows = metadata.rowLayout == .masked ? "L × roundUp(Mmax, 128)" : "scale_offsets[E]"
            throw checks.fail("tensor '\(TensorName.outputScale)' has shape \(scales.shape), expected \(problem.scaleShape)"
                + " (\(rows) rows of \(metadata.scaleLayout) scales for K = \(problem.hiddenSize), \(metadata.blockFormat))")
        }
        self.file = file
        self.problem = problem
    }

    private static func groupedProblem(
        _ checks: TensorChecks, _ metadata: QuantizedMetadata, codes: TensorInfo, globalScales: [Float]
    ) throws -> QuantizationProblem {
        let inputOffsets = try checks.offsets(TensorName.inputOffsets, count: globalScales.count + 1)
        let scaleOffsets = try checks.offsets(TensorName.scaleOffsets, count: globalScales.count + 1)
        let gather = metadata.rowLayout == .gathered ? try gatherMap(checks, rowCount: codes.shape[0]) : nil
        let problem = try checks.namingTensors(rowsFrom: TensorName.output) {
            try QuantizationProblem(
                rowCount: codes.shape[0], hiddenSize: try hiddenSize(ofCodes: codes, checks), elementType: metadata.elementType,
                segments: ExpertSegments(inputOffsets: inputOffsets, scaleOffsets: scaleOffsets, rowCount: codes.shape[0]),
                globalScales: globalScales, scaleLayout: metadata.scaleLayout, blockFormat: metadata.blockFormat,
                activation: metadata.activation, gather: gather)
        }
        if gather != nil { try checkDestinationRows(checks, problem: problem) }
        return problem
    }

    /// The gather of a gathered file: `permutation` (one entry per output row) and T, the rows
    /// of `destination_rows`.
    private static func gatherMap(_ checks: TensorChecks, rowCount: Int) throws -> GatherMap {
        try checks.require(TensorName.permutation, for: "row_layout 'gathered'")
        try checks.require(TensorName.destinationRows, for: "row_layout 'gathered'")
        let permutation = try checks.vector(
            TensorName.permutation, count: rowCount, expected: "M = \(rowCount) (the rows of '\(TensorName.output)')")
        let destinations = try checks.tensor(TensorName.destinationRows, dtypes: [.i32], rank: 2)
        return GatherMap(permutation: permutation, sourceRowCount: destinations.shape[0])
    }

    /// Every routed row is the destination of exactly one (token, choice), the token the
    /// permutation names; other entries are −1.
    private static func checkDestinationRows(_ checks: TensorChecks, problem: QuantizationProblem) throws {
        let destinations = try checks.file.array(TensorName.destinationRows, as: Int32.self, expecting: .i32)
        let topk = try checks.file.info(TensorName.destinationRows).shape[1]
        let permutation = problem.gather?.permutation ?? []
        let routed = problem.segments.routedRowCount
        var seen = [Bool](repeating: false, count: routed)
        for (i, row) in destinations.enumerated() where row != -1 {
            guard (0..<routed).contains(Int(row)), !seen[Int(row)], permutation[Int(row)] == Int32(i / topk) else {
                throw checks.fail("tensor '\(TensorName.destinationRows)' entry \(i) (token \(i / topk)) is \(row),"
                    + " not a routed row whose '\(TensorName.permutation)' entry is that token")
            }
            seen[Int(row)] = true
        }
        guard let missing = seen.firstIndex(of: false) else { return }
        throw checks.fail("routed row \(missing) is the destination of no entry of '\(TensorName.destinationRows)'")
    }

    private static func maskedProblem(
        _ checks: TensorChecks, _ metadata: QuantizedMetadata, codes: TensorInfo, globalScales: [Float]
    ) throws -> MaskedQuantizationProblem {
        let groups = globalScales.count
        try checks.require(TensorName.mask, for: "row_layout 'masked'")
        let mask = try checks.vector(TensorName.mask, count: groups, expected: "L = \(groups) (from '\(TensorName.globalScale)')")
        guard codes.shape[0] == groups else {
            throw checks.fail("tensor '\(TensorName.output)' has shape \(codes.shape): \(codes.shape[0]) groups,"
                + " expected L = \(groups) (from '\(TensorName.globalScale)')")
        }
        return try checks.namingTensors(rowsFrom: TensorName.output) {
            try MaskedQuantizationProblem(
                groupCount: groups, maxRowsPerGroup: codes.shape[1], hiddenSize: try hiddenSize(ofCodes: codes, checks),
                elementType: metadata.elementType, mask: mask, globalScales: globalScales,
                blockFormat: metadata.blockFormat, activation: metadata.activation, scaleLayout: metadata.scaleLayout)
        }
    }

    /// K, twice the last dimension of `output` (K / 2 bytes per row). An empty `output` may
    /// declare any other dimension, so the product is checked.
    private static func hiddenSize(ofCodes codes: TensorInfo, _ checks: TensorChecks) throws -> Int {
        let (hiddenSize, overflow) = codes.shape[codes.shape.count - 1].multipliedReportingOverflow(by: 2)
        guard !overflow else {
            throw checks.fail("tensor '\(TensorName.output)' has shape \(codes.shape): K = 2 × \(codes.shape[codes.shape.count - 1])"
                + " overflows")
        }
        return hiddenSize
    }

    /// Calls `body` with the mapped codes and scales.
    func withCodesAndScales<Result>(
        _ body: (UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) throws -> Result
    ) throws -> Result {
        try file.withBytes(of: TensorName.output) { codes in
            try file.withBytes(of: TensorName.outputScale) { scales in
                // Bytes need no alignment, and the read-only mapping holds no typed values.
                try body(codes.bindMemory(to: UInt8.self), scales.bindMemory(to: UInt8.self))
            }
        }
    }

    /// The dequantized values of the output rows, `problem.valueShape` (rows not quantized are 0).
    func dequantized() throws -> [Float] {
        try withCodesAndScales { codes, scales in try problem.dequantize(codes: codes, scales: scales) }
    }
}

/// The paths of the commands that read one safetensors file and write another.
struct FilePathOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The safetensors file to read.")
    var input: String

    @Option(name: .shortAndLong, help: "The safetensors file to write; replaced atomically, not written on error.")
    var output: String

    func validate() throws {
        guard input != output else {
            throw ValidationError("--output must differ from --input ('\(input)').")
        }
    }
}
