import NVFP4
import NVFP4CUDA

/// The bytes one side wrote: codes and scales, both first filled with the case's poison byte.
struct FuzzOutputs: Equatable {
    var codes: [UInt8]
    var scales: [UInt8]
}

/// Runs a case on both sides: on the CPU, ``ReferenceQuantizer`` (expected) against
/// ``CPUQuantizer`` (actual); on CUDA, ``CPUQuantizer`` (expected) against the GPU through the
/// device API (actual), with one ``CUDAQuantizer`` for every case.
///
/// Every output buffer is filled with the case's poison byte (never 0) before the run, so a
/// byte a side should write and does not, or writes and should not, differs from the other side.
struct FuzzRunner {
    /// The GPU quantizer; `nil` compares the two CPU paths.
    let quantizer: CUDAQuantizer?

    /// The side whose bytes are expected: the reference, or the CPU path when checking the GPU.
    var expectedName: String { quantizer == nil ? "reference" : "cpu" }
    /// The side being checked: the fast CPU path, or the GPU.
    var actualName: String { quantizer == nil ? "cpu" : "cuda" }
    var deviceName: String { quantizer == nil ? "cpu" : "cuda" }

    func run(_ fuzzCase: FuzzCase, input: [UInt16]) throws -> (expected: FuzzOutputs, actual: FuzzOutputs) {
        if let quantizer {
            let expected = try Self.runCPU(fuzzCase, input: input, reference: false)
            return (expected, try Self.runGPU(fuzzCase, input: input, quantizer: quantizer))
        }
        return (try Self.runCPU(fuzzCase, input: input, reference: true),
                try Self.runCPU(fuzzCase, input: input, reference: false))
    }

    /// The reference or the fast CPU path on poisoned buffers.
    static func runCPU(_ fuzzCase: FuzzCase, input: [UInt16], reference: Bool) throws -> FuzzOutputs {
        let problem = fuzzCase.problem
        var codes = [UInt8](repeating: fuzzCase.poison, count: problem.codeByteCount)
        var scales = [UInt8](repeating: fuzzCase.poison, count: problem.scaleByteCount)
        try input.withUnsafeBufferPointer { input in
            try codes.withUnsafeMutableBufferPointer { codes in
                try scales.withUnsafeMutableBufferPointer { scales in
                    switch (problem, reference) {
                    case (.grouped(let p), true): try ReferenceQuantizer.quantize(p, input: input, codes: codes, scales: scales)
                    case (.grouped(let p), false): try CPUQuantizer.quantize(p, input: input, codes: codes, scales: scales)
                    case (.masked(let p), true): try ReferenceQuantizer.quantize(p, input: input, codes: codes, scales: scales)
                    case (.masked(let p), false): try CPUQuantizer.quantize(p, input: input, codes: codes, scales: scales)
                    }
                }
            }
        }
        return FuzzOutputs(codes: codes, scales: scales)
    }

    /// The GPU through the device API: buffers from ``DeviceProblem`` or ``DeviceMaskedProblem``,
    /// codes and scales filled with the poison on the device, the case's variant, then both copied back.
    static func runGPU(_ fuzzCase: FuzzCase, input: [UInt16], quantizer: CUDAQuantizer) throws -> FuzzOutputs {
        let stream = CUDAStreamHandle.legacyDefault
        var outputs = FuzzOutputs(codes: [UInt8](repeating: 0, count: fuzzCase.problem.codeByteCount),
                                  scales: [UInt8](repeating: 0, count: fuzzCase.problem.scaleByteCount))
        switch fuzzCase.problem {
        case .grouped(let p):
            let device = try DeviceProblem(p, input: input, context: quantizer.context)
            try device.codes.fill(byte: fuzzCase.poison, stream: stream)
            try device.scales.fill(byte: fuzzCase.poison, stream: stream)
            try quantizer.quantize(device.arguments, variant: fuzzCase.variant, stream: stream)
            try quantizer.context.synchronize()
            try outputs.codes.withUnsafeMutableBytes { try device.codes.copy(to: $0) }
            try outputs.scales.withUnsafeMutableBytes { try device.scales.copy(to: $0) }
        case .masked(let p):
            let device = try DeviceMaskedProblem(p, input: input, context: quantizer.context)
            try device.codes.fill(byte: fuzzCase.poison, stream: stream)
            try device.scales.fill(byte: fuzzCase.poison, stream: stream)
            try quantizer.quantize(device.arguments, stream: stream)
            try quantizer.context.synchronize()
            try outputs.codes.withUnsafeMutableBytes { try device.codes.copy(to: $0) }
            try outputs.scales.withUnsafeMutableBytes { try device.scales.copy(to: $0) }
        }
        return outputs
    }

    /// For `--inject-mismatch`: flips bits of one byte the checked side wrote (a code byte in
    /// the middle of the first row that is quantized, else the middle scale byte), so that the
    /// report, the reproducer and the exit status can be tested. Returns `false` when the case
    /// writes nothing.
    static func injectMismatch(into outputs: inout FuzzOutputs, _ fuzzCase: FuzzCase) -> Bool {
        let rowBytes = fuzzCase.problem.hiddenSize / 2
        var row: Int?
        switch fuzzCase.problem {
        case .grouped(let p):
            if p.segments.routedRowCount > 0 { row = p.segments.routedRowCount / 2 }
        case .masked(let p):
            if let group = (0..<p.groupCount).first(where: { p.validRowCount(ofGroup: $0) > 0 }) {
                row = p.firstRow(ofGroup: group) + p.validRowCount(ofGroup: group) / 2
            }
        }
        if let row {
            outputs.codes[row * rowBytes + rowBytes / 2] ^= 0x5A
        } else if !outputs.scales.isEmpty {
            outputs.scales[outputs.scales.count / 2] ^= 0x5A
        } else {
            return false
        }
        return true
    }
}
