import NVFP4

/// How the rows of a quantized file are grouped, as its `row_layout` metadata spells it.
enum RowLayout: String, CaseIterable {
    /// Expert `e` owns rows `input_offsets[e] ..< input_offsets[e + 1]` of the input and the output.
    case offsets
    /// As `offsets`, but output row `r` is the quantization of token `permutation[r]` (`--routing`).
    case gathered
    /// `[L, Mmax, ·]` tensors, the first `mask[l]` rows of group `l` valid (`--masked`).
    case masked
}

/// The problem a quantized file encodes (or a self-test case quantizes), in either of the
/// library's two kinds.
enum FileProblem: Sendable {
    /// Rows grouped by expert segments, with or without a gather.
    case grouped(QuantizationProblem)
    case masked(MaskedQuantizationProblem)

    var rowLayout: RowLayout {
        switch self {
        case .grouped(let problem): return problem.gather == nil ? .offsets : .gathered
        case .masked: return .masked
        }
    }

    var elementType: ElementType {
        switch self {
        case .grouped(let problem): return problem.elementType
        case .masked(let problem): return problem.elementType
        }
    }

    var scaleLayout: ScaleLayout {
        switch self {
        case .grouped(let problem): return problem.scaleLayout
        case .masked(let problem): return problem.scaleLayout
        }
    }

    var blockFormat: BlockFormat {
        switch self {
        case .grouped(let problem): return problem.blockFormat
        case .masked(let problem): return problem.blockFormat
        }
    }

    var activation: Activation {
        switch self {
        case .grouped(let problem): return problem.activation
        case .masked(let problem): return problem.activation
        }
    }

    var geometry: ScaleGeometry {
        switch self {
        case .grouped(let problem): return problem.geometry
        case .masked(let problem): return problem.geometry
        }
    }

    /// K, the values of an output row.
    var hiddenSize: Int {
        switch self {
        case .grouped(let problem): return problem.hiddenSize
        case .masked(let problem): return problem.hiddenSize
        }
    }

    /// Output rows: M, or `L·Mmax`.
    var rowCount: Int {
        switch self {
        case .grouped(let problem): return problem.rowCount
        case .masked(let problem): return problem.rowCount
        }
    }

    var globalScales: [Float] {
        switch self {
        case .grouped(let problem): return problem.globalScales
        case .masked(let problem): return problem.globalScales
        }
    }

    /// Rows of the input (`T` with a gather, `L·Mmax` masked) and values per row.
    var inputRowCount: Int {
        switch self {
        case .grouped(let problem): return problem.inputRowCount
        case .masked(let problem): return problem.rowCount
        }
    }

    var inputRowWidth: Int {
        switch self {
        case .grouped(let problem): return problem.inputRowWidth
        case .masked(let problem): return problem.inputRowWidth
        }
    }

    var inputElementCount: Int {
        switch self {
        case .grouped(let problem): return problem.inputElementCount
        case .masked(let problem): return problem.inputElementCount
        }
    }

    var codeByteCount: Int {
        switch self {
        case .grouped(let problem): return problem.codeByteCount
        case .masked(let problem): return problem.codeByteCount
        }
    }

    var scaleByteCount: Int {
        switch self {
        case .grouped(let problem): return problem.scaleByteCount
        case .masked(let problem): return problem.scaleByteCount
        }
    }

    /// The code bytes, from the first, that the quantizer writes in full: the routed rows, or
    /// none in the masked layout (rows past each mask are left as they are).
    var codeBytesWrittenInFull: Int {
        switch self {
        case .grouped(let problem): return problem.segments.routedRowCount * problem.hiddenSize / 2
        case .masked: return 0
        }
    }

    /// The shape of the problem in one line: `M=… K=… E=…`, or `L=… Mmax=… K=…`.
    var summary: String {
        switch self {
        case .grouped(let problem):
            let segments = problem.segments
            let gather = problem.gather.map { " T=\($0.sourceRowCount)" } ?? ""
            return "M=\(problem.rowCount) K=\(problem.hiddenSize) E=\(segments.expertCount)\(gather)"
                + " routed=\(segments.routedRowCount) scale rows=\(segments.scaleRowCount)"
        case .masked(let problem):
            let valid = (0..<problem.groupCount).map(problem.validRowCount(ofGroup:)).reduce(0, +)
            return "L=\(problem.groupCount) Mmax=\(problem.maxRowsPerGroup) K=\(problem.hiddenSize)"
                + " valid=\(valid) scale rows=\(problem.scaleRowCount)"
        }
    }

    /// The leading dimensions of the output tensors: `[M]`, or `[L, Mmax]`.
    private var rowShape: [Int] {
        switch self {
        case .grouped(let problem): return [problem.rowCount]
        case .masked(let problem): return [problem.groupCount, problem.maxRowsPerGroup]
        }
    }

    /// The shape of `output`: `[M, K/2]`, or `[L, Mmax, K/2]`.
    var codeShape: [Int] { rowShape + [hiddenSize / 2] }

    /// The shape of `dequantized`: `[M, K]`, or `[L, Mmax, K]`.
    var valueShape: [Int] { rowShape + [hiddenSize] }

    /// The shape of `output_scale`: `[sOff[E], bytesPerRow]`, or `[L, S, bytesPerRow]`.
    var scaleShape: [Int] {
        switch self {
        case .grouped(let problem): return [problem.segments.scaleRowCount, problem.geometry.bytesPerRow]
        case .masked(let problem): return [problem.groupCount, problem.scaleRowsPerGroup, problem.geometry.bytesPerRow]
        }
    }

    /// The dtype of `output_scale`: `F8_E4M3` or `F8_E8M0`.
    var scaleDType: SafetensorsDType { QuantizedMetadata.scaleDType(of: blockFormat) }

    /// The scale rows of the quantized (routed, or valid) rows, in order.
    var quantizedScaleRows: [Int] {
        switch self {
        case .grouped(let problem):
            let segments = problem.segments
            return (0..<segments.expertCount).flatMap { e in
                (0..<segments.rowCount(ofExpert: e)).map { Int(segments.scaleOffsets[e]) + $0 }
            }
        case .masked(let problem):
            return (0..<problem.groupCount).flatMap { l in
                (0..<problem.validRowCount(ofGroup: l)).map { problem.firstScaleRow(ofGroup: l) + $0 }
            }
        }
    }

    /// Quantizes `input` on `backend` (see ``Backend``).
    func quantize(on backend: Backend, input: UnsafeBufferPointer<UInt16>,
                  codes: UnsafeMutableBufferPointer<UInt8>, scales: UnsafeMutableBufferPointer<UInt8>) throws {
        switch self {
        case .grouped(let problem): try backend.quantize(problem, input: input, codes: codes, scales: scales)
        case .masked(let problem): try backend.quantize(problem, input: input, codes: codes, scales: scales)
        }
    }

    /// The dequantized values of the output rows (rows not quantized are 0).
    func dequantize(codes: UnsafeBufferPointer<UInt8>, scales: UnsafeBufferPointer<UInt8>) throws -> [Float] {
        var values = [Float](repeating: 0, count: rowCount * hiddenSize)
        try values.withUnsafeMutableBufferPointer { output in
            switch self {
            case .grouped(let problem): try Dequantizer.dequantize(problem, codes: codes, scales: scales, into: output)
            case .masked(let problem): try Dequantizer.dequantize(problem, codes: codes, scales: scales, into: output)
            }
        }
        return values
    }
}

/// The metadata keys and values of a quantized file. Keys other than `format`, `layout` and
/// `input_dtype` came with the fused variants; a file without them is an NVFP4 file (E4M3
/// scales over 16 values) of the identity activation in the offsets layout.
struct QuantizedMetadata {
    static let formatKey = "format"
    static let layoutKey = "layout"
    static let inputTypeKey = "input_dtype"
    static let scaleFormatKey = "scale_format"
    static let blockSizeKey = "block_size"
    static let activationKey = "activation"
    static let rowLayoutKey = "row_layout"
    static let format = "nvfp4"

    let scaleLayout: ScaleLayout
    let elementType: ElementType
    let blockFormat: BlockFormat
    let activation: Activation
    let rowLayout: RowLayout

    /// The metadata a quantized file of `problem` carries.
    static func values(for problem: FileProblem) -> [String: String] {
        [
            formatKey: format, layoutKey: problem.scaleLayout.rawValue, inputTypeKey: dtype(of: problem.elementType).rawValue,
            scaleFormatKey: problem.blockFormat.scaleEncoding.rawValue, blockSizeKey: "\(problem.blockFormat.blockSize)",
            activationKey: name(of: problem.activation), rowLayoutKey: problem.rowLayout.rawValue,
        ]
    }

    /// Reads and checks the metadata of `checks.file`, with the defaults above for absent keys.
    init(of checks: TensorChecks) throws {
        let metadata = checks.file.metadata
        func value(_ key: String, default fallback: String, allowed: [String]) throws -> String {
            let value = metadata[key] ?? fallback
            guard allowed.contains(value) else {
                throw checks.fail("metadata '\(key)' is '\(value)', expected "
                    + allowed.map { "'\($0)'" }.joined(separator: " or "))
            }
            return value
        }
        _ = try value(Self.formatKey, default: Self.format, allowed: [Self.format])
        let layout = try value(Self.layoutKey, default: ScaleLayout.swizzled.rawValue, allowed: ScaleLayout.allCases.map(\.rawValue))
        let inputType = try value(Self.inputTypeKey, default: SafetensorsDType.bf16.rawValue,
                                  allowed: [SafetensorsDType.bf16.rawValue, SafetensorsDType.f16.rawValue])
        let encoding = try value(Self.scaleFormatKey, default: BlockFormat.ScaleEncoding.e4m3.rawValue,
                                 allowed: BlockFormat.ScaleEncoding.allCases.map(\.rawValue))
        let blockSize = try value(Self.blockSizeKey, default: "16", allowed: ["16", "32"])
        let activation = try value(Self.activationKey, default: Self.name(of: .identity),
                                   allowed: Activation.allCases.map(Self.name(of:)))
        let rowLayout = try value(Self.rowLayoutKey, default: RowLayout.offsets.rawValue, allowed: RowLayout.allCases.map(\.rawValue))
        do {
            blockFormat = try BlockFormat(scaleEncoding: BlockFormat.ScaleEncoding(rawValue: encoding)!, blockSize: Int(blockSize)!)
        } catch {
            throw checks.fail("metadata 'block_size' is '\(blockSize)' with 'scale_format' '\(encoding)'; 32 needs 'ue8m0'")
        }
        scaleLayout = ScaleLayout(rawValue: layout)!
        elementType = inputType == SafetensorsDType.f16.rawValue ? .float16 : .bfloat16
        self.activation = Activation.allCases.first { Self.name(of: $0) == activation }!
        self.rowLayout = RowLayout(rawValue: rowLayout)!
    }

    static func dtype(of type: ElementType) -> SafetensorsDType {
        type == .bfloat16 ? .bf16 : .f16
    }

    /// `F8_E4M3` for E4M3 scales, `F8_E8M0` for UE8M0 scales.
    static func scaleDType(of format: BlockFormat) -> SafetensorsDType {
        format.scaleEncoding == .e4m3 ? .f8E4M3 : .f8E8M0
    }

    /// The metadata spelling of `activation`: `identity` or `silu_mul`.
    static func name(of activation: Activation) -> String {
        activation == .identity ? "identity" : "silu_mul"
    }
}
