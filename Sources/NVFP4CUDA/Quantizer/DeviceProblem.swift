import NVFP4

/// A quantization problem on the device: its input, offsets and global scales copied over, and
/// room for its codes and scales. Owns every buffer; ``arguments`` describes them for
/// ``CUDAQuantizer/quantize(_:variant:stream:)``.
///
/// The copies go through the legacy default stream (`cuMemcpyHtoD`, which may return before a
/// pageable source has reached the device): wait for the legacy stream
/// (`context.synchronize(stream: .legacyDefault)`) before quantizing on a non-blocking
/// ``CUDAStream``, which does not wait for it.
public struct DeviceProblem: ~Copyable {
    public let problem: QuantizationProblem
    public let input: DeviceBuffer
    public let codes: DeviceBuffer
    public let scales: DeviceBuffer
    public let inputOffsets: DeviceBuffer
    public let scaleOffsets: DeviceBuffer
    public let globalScales: DeviceBuffer
    /// The gather's permutation (zero bytes without a gather).
    public let permutation: DeviceBuffer

    /// Allocates the buffers and copies `input` (at least M·K values) and the problem's tables.
    public init(_ problem: QuantizationProblem, input: UnsafeBufferPointer<UInt16>, context: CUDAContext) throws {
        try self.init(problem, inputCount: input.count, context: context) { buffer, byteCount in
            try buffer.copy(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[..<byteCount]))
        }
    }

    /// Allocates the buffers and copies `input` (at least M·K values) and the problem's tables.
    public init(_ problem: QuantizationProblem, input: [UInt16], context: CUDAContext) throws {
        try self.init(problem, inputCount: input.count, context: context) { buffer, byteCount in
            try input.withUnsafeBytes { try buffer.copy(from: UnsafeRawBufferPointer(rebasing: $0[..<byteCount])) }
        }
    }

    private init(_ problem: QuantizationProblem, inputCount: Int, context: CUDAContext,
                 copyInput: (borrowing DeviceBuffer, Int) throws -> Void) throws {
        guard inputCount >= problem.inputElementCount else {
            throw NVFP4Error.invalidArgument(argument: "input", reason: "holds \(inputCount) values, needs \(problem.inputElementCount)")
        }
        let segments = problem.segments
        let input = try DeviceBuffer(context: context, byteCount: problem.inputElementCount * 2)
        try copyInput(input, problem.inputElementCount * 2)
        let inputOffsets = try DeviceBuffer(context: context, copying: segments.inputOffsets)
        let scaleOffsets = try DeviceBuffer(context: context, copying: segments.scaleOffsets)
        let globalScales = try DeviceBuffer(context: context, copying: problem.globalScales)
        // At least one entry with a gather, so that its address is never null (no routed rows
        // leaves the permutation empty, and the device API refuses a null permutation).
        let permutation = try DeviceBuffer(
            context: context, copying: problem.gather.map { $0.permutation.isEmpty ? [0] : $0.permutation } ?? [Int32]())
        let codes = try DeviceBuffer(context: context, byteCount: problem.codeByteCount)
        let scales = try DeviceBuffer(context: context, byteCount: problem.scaleByteCount)
        self.problem = problem
        self.input = input
        self.codes = codes
        self.scales = scales
        self.inputOffsets = inputOffsets
        self.scaleOffsets = scaleOffsets
        self.globalScales = globalScales
        self.permutation = permutation
    }

    /// The device addresses and shapes of this problem.
    public var arguments: DeviceQuantizationArguments {
        DeviceQuantizationArguments(
            input: input.address, codes: codes.address, scales: scales.address, scaleByteCapacity: problem.scaleByteCount,
            inputOffsets: inputOffsets.address, scaleOffsets: scaleOffsets.address, globalScales: globalScales.address,
            rowCount: problem.rowCount, expertCount: problem.segments.expertCount, hiddenSize: problem.hiddenSize,
            elementType: problem.elementType, scaleLayout: problem.scaleLayout, blockFormat: problem.blockFormat,
            activation: problem.activation,
            gather: problem.gather.map { DeviceGather(permutation: permutation.address, sourceRowCount: $0.sourceRowCount) })
    }
}

/// A masked-layout problem on the device: input, mask and global scales copied over, and room
/// for its codes and scales. Owns every buffer. The copies go through the legacy default stream,
/// as for ``DeviceProblem``: synchronize before using a non-blocking stream.
public struct DeviceMaskedProblem: ~Copyable {
    public let problem: MaskedQuantizationProblem
    public let input: DeviceBuffer
    public let codes: DeviceBuffer
    public let scales: DeviceBuffer
    public let mask: DeviceBuffer
    public let globalScales: DeviceBuffer

    /// Allocates the buffers and copies `input` (at least L·Mmax·W values), the mask and the scales.
    public init(_ problem: MaskedQuantizationProblem, input: UnsafeBufferPointer<UInt16>, context: CUDAContext) throws {
        try self.init(problem, inputCount: input.count, context: context) { buffer, byteCount in
            try buffer.copy(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[..<byteCount]))
        }
    }

    /// Allocates the buffers and copies `input` (at least L·Mmax·W values), the mask and the scales.
    public init(_ problem: MaskedQuantizationProblem, input: [UInt16], context: CUDAContext) throws {
        try self.init(problem, inputCount: input.count, context: context) { buffer, byteCount in
            try input.withUnsafeBytes { try buffer.copy(from: UnsafeRawBufferPointer(rebasing: $0[..<byteCount])) }
        }
    }

    private init(_ problem: MaskedQuantizationProblem, inputCount: Int, context: CUDAContext,
                 copyInput: (borrowing DeviceBuffer, Int) throws -> Void) throws {
        guard inputCount >= problem.inputElementCount else {
            throw NVFP4Error.invalidArgument(argument: "input", reason: "holds \(inputCount) values, needs \(problem.inputElementCount)")
        }
        let device = try DeviceBuffer(context: context, byteCount: problem.inputElementCount * 2)
        try copyInput(device, problem.inputElementCount * 2)
        let mask = try DeviceBuffer(context: context, copying: problem.mask)
        let globalScales = try DeviceBuffer(context: context, copying: problem.globalScales)
        let codes = try DeviceBuffer(context: context, byteCount: problem.codeByteCount)
        let scales = try DeviceBuffer(context: context, byteCount: problem.scaleByteCount)
        self.problem = problem
        self.codes = codes
        self.scales = scales
        self.input = device
        self.mask = mask
        self.globalScales = globalScales
    }

    /// The device addresses and shapes of this problem.
    public var arguments: DeviceMaskedQuantizationArguments {
        DeviceMaskedQuantizationArguments(
            input: input.address, codes: codes.address, scales: scales.address, scaleByteCapacity: problem.scaleByteCount,
            mask: mask.address, globalScales: globalScales.address, groupCount: problem.groupCount,
            maxRowsPerGroup: problem.maxRowsPerGroup, hiddenSize: problem.hiddenSize, elementType: problem.elementType,
            scaleLayout: problem.scaleLayout, blockFormat: problem.blockFormat, activation: problem.activation)
    }
}
