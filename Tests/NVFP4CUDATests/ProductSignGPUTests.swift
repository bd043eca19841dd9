import NVFP4
@testable import NVFP4CUDA
import NVFP4TestSupport
import Testing

/// Blocks whose products y = x · outScale are NaN: the tuned kernel takes a block's code signs
/// from its input words only when every value and the output scale are finite (then y has x's
/// sign); a NaN product is the canonical positive NaN, code 0x7 whatever x's sign, so these blocks
/// must take their signs from the products.
@Suite("GPU quantizer: NaN products keep no sign", .serialized)
struct ProductSignGPUTests {
    static let hiddenSize = 64
    /// More than 64 rows an expert, so that its first tile is dense and line units can take it.
    static let rowsPerExpert = 72

    /// Three experts of 72 rows, K = 64 (4 blocks a row), ordinary values around the specials
    /// (for SiLU·mul the specials are gates, every up is 1):
    /// - expert 0 (gs = 1): a negative NaN (row 0, value 19), −Inf (row 1, value 37: an infinite
    ///   product, which keeps its sign, code 0xF), a positive NaN beside −0 (row 2, values 50 and 51);
    /// - expert 1 (gs = 3·10^38): its first row's first block holds only ±10^-38, ±0, so its output
    ///   scale overflows to +Inf (in bfloat16; float16 rounds 10^-38 to 0) and −0 · Inf is NaN
    ///   (value 2);
    /// - expert 2 (gs = 2·10^-38): ±Inf make the scale byte 0x7E (448), whose output scale is then
    ///   0, and −Inf · 0 is NaN (its first row, value 1).
    /// Returns the case and, for NVFP4 without SiLU·mul (the numbers above are E4M3's), the codes
    /// that some values (row, column) must get.
    static func problemCase(_ type: ElementType, format: BlockFormat, activation: Activation) throws
        -> (ProblemCase, [(row: Int, column: Int, code: UInt8)]) {
        let K = hiddenSize, rows = rowsPerExpert
        let segments = try ExpertSegments(rowCounts: [rows, rows, rows])
        let problem = try QuantizationProblem(
            rowCount: 3 * rows, hiddenSize: K, elementType: type, segments: segments,
            globalScales: [1, 3e38, 2e-38], scaleLayout: .swizzled, blockFormat: format, activation: activation)
        let width = problem.inputRowWidth
        var values = (0..<(3 * rows * width)).map { i in
            type.bits(rounding: i % width >= K ? 1 : Float(i % 7 - 3) * 0.37)
        }
        func set(_ row: Int, _ column: Int, _ bits: UInt16) { values[row * width + column] = bits }
        let negativeNaN: UInt16 = type == .bfloat16 ? 0xFFC0 : 0xFE00
        set(0, 19, negativeNaN)
        set(1, 37, type.bits(rounding: -.infinity))
        set(2, 50, type.bits(rounding: .nan))
        set(2, 51, type.bits(rounding: -0.0))
        for column in 0..<16 { set(rows, column, type.bits(rounding: [1e-38, -1e-38, -0.0, 0][column % 4])) }
        set(2 * rows, 0, type.bits(rounding: .infinity))
        set(2 * rows, 1, type.bits(rounding: -.infinity))
        var codes: [(row: Int, column: Int, code: UInt8)] = [
            (0, 19, 0x7), (1, 37, 0xF), (2, 50, 0x7), (2, 51, 0x8), (2 * rows, 0, 0x7), (2 * rows, 1, 0x7),
        ]
        if type == .bfloat16 { codes.append((rows, 2, 0x7)) }
        let name = "NaN products \(type) \(format) \(activation)"
        let handComputed = format == .nvfp4 && activation == .identity  // (UE8M0's 2^0 keeps expert 1's scale finite)
        return (ProblemCase(name: name, seed: 0, problem: problem, input: values), handComputed ? codes : [])
    }

    static func code(_ codes: [UInt8], row: Int, column: Int) -> UInt8 {
        let byte = codes[row * hiddenSize / 2 + column / 2]
        return column % 2 == 0 ? byte & 0xF : byte >> 4
    }

    static let kernels: [(BlockFormat, Activation)] = [
        (.nvfp4, .identity), (.nvfp4UE8M0, .identity), (.mxfp4, .identity), (.nvfp4, .siluMul),
    ]

    @Test("every variant equals the CPU reference where a product is NaN, in row and in line units",
          arguments: [ElementType.bfloat16, .float16])
    func nanProducts(type: ElementType) throws {
        var cases: [(ProblemCase, (codes: [UInt8], scales: [UInt8]))] = []
        for (format, activation) in Self.kernels {
            let (testCase, specialCodes) = try Self.problemCase(type, format: format, activation: activation)
            let expected = try testCase.runCPU(.reference)
            for (row, column, code) in specialCodes {
                #expect(Self.code(expected.codes, row: row, column: column) == code,
                        "\(testCase): the reference's code at row \(row), value \(column) is not \(code)")
            }
            let fast = try testCase.runCPU(.fast)
            #expect(fast.codes == expected.codes && fast.scales == expected.scales,
                    "\(testCase): the fast CPU path differs from the reference")
            cases.append((testCase, expected))
        }
        let context = try requireGPUOrSkip()
        for lineUnits in [LineUnitPolicy.automatic, .always] {
            let quantizer = try CUDAQuantizer(context: context, lineUnits: lineUnits)
            for (testCase, expected) in cases {
                let plain = testCase.problem.blockFormat == .nvfp4 && testCase.problem.activation == .identity
                for variant in plain ? QuantizerVariant.allCases : [.tuned] {
                    let difference = try quantizer.firstDifference(testCase, from: expected, variant: variant)
                    #expect(difference == nil, "\(variant) \(lineUnits) \(testCase): \(difference ?? "")")
                }
            }
        }
    }
}
