import ArgumentParser
import NVFP4

// The files the `quantize`, `dequantize` and `inspect` commands read and write.
//
// Source file (read by `quantize`, and by `inspect --against`):
//
// | tensor          | dtype     | shape   | meaning                                            |
// |-----------------|-----------|---------|----------------------------------------------------|
// | `input`         | BF16, F16 | [M, K]  | activations, K a positive multiple of 16           |
// | `global_scale`  | F32       | [E]     | one global scale per expert, finite and > 0        |
// | `input_offsets` | I32       | [E + 1] | expert e owns rows off[e] ..< off[e + 1]           |
// | `scale_offsets` | I32       | [E + 1] | optional; else computed by the `--scale-offsets` rule |
//
// Quantized file (written by `quantize`), with metadata `format` = `nvfp4`, `layout` =
// `swizzled` | `linear`, `input_dtype` = `BF16` | `F16`:
//
// | tensor          | dtype   | shape                      | meaning                                  |
// |-----------------|---------|----------------------------|------------------------------------------|
// | `output`        | U8      | [M, K / 2]                 | E2M1 pairs, even element in the low nibble; rows ≥ off[E] are 0 |
// | `output_scale`  | F8_E4M3 | [sOff[E], bytesPerRow]     | block scales in `layout` (``ScaleGeometry``) |
// | `scale_offsets` | I32     | [E + 1]                    | the scale rows of each expert            |
// | `input_offsets` | I32     | [E + 1]                    | as in the source                         |
// | `global_scale`  | F32     | [E]                        | as in the source                         |

/// The tensor names of the source and quantized files; kept exactly, other tools read them.
enum TensorName {
    static let input = "input"
    static let globalScale = "global_scale"
    static let inputOffsets = "input_offsets"
    static let scaleOffsets = "scale_offsets"
    static let output = "output"
    static let outputScale = "output_scale"
    static let dequantized = "dequantized"
}

/// The metadata keys and values of a quantized file.
enum QuantizedMetadata {
    static let formatKey = "format"
    static let layoutKey = "layout"
    static let inputTypeKey = "input_dtype"
    static let format = "nvfp4"

    /// The metadata a quantized file of `problem` carries.
    static func values(for problem: QuantizationProblem) -> [String: String] {
        [formatKey: format, layoutKey: problem.scaleLayout.rawValue, inputTypeKey: dtype(of: problem.elementType).rawValue]
    }

    static func dtype(of type: ElementType) -> SafetensorsDType {
        type == .bfloat16 ? .bf16 : .f16
    }
}

/// Checks the tensors of one file; every failure is a `malformedFile` naming the tensor.
struct TensorChecks {
    let file: SafetensorsFile

    func fail(_ reason: String) -> NVFP4Error {
        .malformedFile(path: file.path, reason: reason)
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

    /// The I32 vector `name`, which must hold `count` entries (`E + 1` for offsets).
    func offsets(_ name: String, count: Int) throws -> [Int32] {
        let tensor = try self.tensor(name, dtypes: [.i32], rank: 1)
        guard tensor.shape[0] == count else {
            throw fail("tensor '\(name)' has \(tensor.shape[0]) entries, expected E + 1 = \(count)"
                + " (E = \(count - 1) from '\(TensorName.globalScale)')")
        }
        return try file.array(name, as: Int32.self, expecting: .i32)
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
                "globalScales": TensorName.globalScale, "hiddenSize": rowsTensor, "rowCount": rowsTensor,
            ]
            throw fail("tensor '\(tensors[argument] ?? argument)': \(reason)")
        }
    }
}

/// A validated source file: 16-bit activations with their routing, memory-mapped.
struct QuantizationSource {
    let file: SafetensorsFile
    let elementType: ElementType
    /// M.
    let rowCount: Int
    /// K.
    let hiddenSize: Int
    let inputOffsets: [Int32]
    /// The file's `scale_offsets`, if it has them.
    let scaleOffsets: [Int32]?
    let globalScales: [Float]

    /// Opens and checks `path`: tensor presence, dtypes, ranks and shapes, and the offsets.
    init(path: String) throws {
        let file = try SafetensorsFile(contentsOf: path)
        let checks = TensorChecks(file: file)
        let input = try checks.tensor(TensorName.input, dtypes: [.bf16, .f16], rank: 2)
        let (rows, columns) = (input.shape[0], input.shape[1])
        guard columns > 0, columns % 16 == 0 else {
            throw checks.fail("tensor '\(TensorName.input)' has K = \(columns) columns; K must be a positive multiple of 16")
        }
        let globalScales = try checks.globalScales()
        let inputOffsets = try checks.offsets(TensorName.inputOffsets, count: globalScales.count + 1)
        let scaleOffsets = file.contains(TensorName.scaleOffsets)
            ? try checks.offsets(TensorName.scaleOffsets, count: globalScales.count + 1) : nil
        try checks.namingTensors(rowsFrom: TensorName.input) {
            if let scaleOffsets {
                try ExpertSegments.validate(inputOffsets: inputOffsets, scaleOffsets: scaleOffsets, rowCount: rows)
            } else {
                try ExpertSegments.validateInputOffsets(inputOffsets, rowCount: rows)
            }
        }
        self.file = file
        self.elementType = input.dtype == .bf16 ? .bfloat16 : .float16
        self.rowCount = rows
        self.hiddenSize = columns
        self.inputOffsets = inputOffsets
        self.scaleOffsets = scaleOffsets
        self.globalScales = globalScales
    }

    /// The problem for `layout`, with the file's scale offsets or, without them, `rule`'s.
    func problem(layout: ScaleLayout, rule: ExpertSegments.ScaleOffsetRule) throws -> QuantizationProblem {
        try TensorChecks(file: file).namingTensors(rowsFrom: TensorName.input) {
            let segments = try ExpertSegments(
                inputOffsets: inputOffsets,
                scaleOffsets: scaleOffsets ?? ExpertSegments.scaleOffsets(for: inputOffsets, rule: rule),
                rowCount: rowCount)
            return try QuantizationProblem(
                rowCount: rowCount, hiddenSize: hiddenSize, elementType: elementType, segments: segments,
                globalScales: globalScales, scaleLayout: layout)
        }
    }

    /// Calls `body` with the input's bit patterns, read straight from the mapping when the data
    /// is 2-byte aligned (as this package's writers place it), else from a copy.
    func withInput<Result>(_ body: (UnsafeBufferPointer<UInt16>) throws -> Result) throws -> Result {
        try file.withBytes(of: TensorName.input) { bytes in
            let count = bytes.count / 2
            guard let base = bytes.baseAddress, count > 0 else { return try body(UnsafeBufferPointer(start: nil, count: 0)) }
            if Int(bitPattern: base) % MemoryLayout<UInt16>.alignment == 0 {
                // The mapping is read-only and holds no typed values yet: binding it is sound.
                return try body(UnsafeBufferPointer(start: base.bindMemory(to: UInt16.self, capacity: count), count: count))
            }
            let copy = [UInt16](unsafeUninitializedCapacity: count) { buffer, initialized in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: bytes)
                initialized = count
            }
            return try copy.withUnsafeBufferPointer(body)
        }
    }
}

/// A validated quantized file: the problem it encodes and its mapped codes and scales.
struct QuantizedFile {
    /// The tensors every quantized file holds.
    static let requiredTensors = [
        TensorName.output, TensorName.outputScale, TensorName.inputOffsets, TensorName.scaleOffsets, TensorName.globalScale,
    ]

    /// Whether `file` holds every tensor of a quantized file (it may still be malformed).
    static func looksQuantized(_ file: SafetensorsFile) -> Bool {
        requiredTensors.allSatisfy(file.contains)
    }

    let file: SafetensorsFile
    let problem: QuantizationProblem

    /// Checks `file`: dtypes and ranks, offsets, shapes consistent with the offsets and the
    /// layout (metadata `layout`, `swizzled` when absent; `input_dtype`, `BF16` when absent).
    init(_ file: SafetensorsFile) throws {
        let checks = TensorChecks(file: file)
        if let format = file.metadata[QuantizedMetadata.formatKey], format != QuantizedMetadata.format {
            throw checks.fail("metadata 'format' is '\(format)', expected '\(QuantizedMetadata.format)'")
        }
        let layoutName = file.metadata[QuantizedMetadata.layoutKey] ?? ScaleLayout.swizzled.rawValue
        guard let layout = ScaleLayout(rawValue: layoutName) else {
            throw checks.fail("metadata 'layout' is '\(layoutName)', expected 'swizzled' or 'linear'")
        }
        let inputType = file.metadata[QuantizedMetadata.inputTypeKey] ?? SafetensorsDType.bf16.rawValue
        guard inputType == SafetensorsDType.bf16.rawValue || inputType == SafetensorsDType.f16.rawValue else {
            throw checks.fail("metadata 'input_dtype' is '\(inputType)', expected 'BF16' or 'F16'")
        }
        let elementType: ElementType = inputType == SafetensorsDType.f16.rawValue ? .float16 : .bfloat16
        let codes = try checks.tensor(TensorName.output, dtypes: [.u8], rank: 2)
        let scales = try checks.tensor(TensorName.outputScale, dtypes: [.f8E4M3], rank: 2)
        let globalScales = try checks.globalScales()
        let inputOffsets = try checks.offsets(TensorName.inputOffsets, count: globalScales.count + 1)
        let scaleOffsets = try checks.offsets(TensorName.scaleOffsets, count: globalScales.count + 1)
        let problem = try checks.namingTensors(rowsFrom: TensorName.output) {
            try QuantizationProblem(
                rowCount: codes.shape[0], hiddenSize: codes.shape[1] * 2, elementType: elementType,
                segments: ExpertSegments(inputOffsets: inputOffsets, scaleOffsets: scaleOffsets, rowCount: codes.shape[0]),
                globalScales: globalScales, scaleLayout: layout)
        }
        let expected = [problem.segments.scaleRowCount, problem.geometry.bytesPerRow]
        guard scales.shape == expected else {
            throw checks.fail("tensor '\(TensorName.outputScale)' has shape \(scales.shape), expected \(expected)"
                + " (scale_offsets[E] rows of \(layout) scales for K = \(problem.hiddenSize))")
        }
        self.file = file
        self.problem = problem
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

    /// The dequantized values, M·K floats (rows past off[E] are 0).
    func dequantized() throws -> [Float] {
        var values = [Float](repeating: 0, count: problem.inputElementCount)
        try withCodesAndScales { codes, scales in
            try values.withUnsafeMutableBufferPointer { output in
                try Dequantizer.dequantize(problem, codes: codes, scales: scales, into: output)
            }
        }
        return values
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
