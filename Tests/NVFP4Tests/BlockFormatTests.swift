import Testing
import NVFP4
import NVFP4TestSupport

/// One row of `K` values quantized by both CPU paths (which must agree), poisoned first.
private func quantizeOneRow(
    _ values: [Float], format: BlockFormat, globalScale: Float = 1, type: ElementType = .bfloat16,
    layout: ScaleLayout = .swizzled
) throws -> (codes: [UInt8], scales: [UInt8], problem: QuantizationProblem) {
    let problem = try QuantizationProblem(
        rowCount: 1, hiddenSize: values.count, elementType: type, segments: try ExpertSegments(rowCounts: [1]),
        globalScales: [globalScale], scaleLayout: layout, blockFormat: format)
    let testCase = ProblemCase(name: "row", seed: 0, problem: problem, input: values.map { type.bits(rounding: $0) })
    let reference = try testCase.runCPU(.reference, poison: 0xA5)
    let fast = try testCase.runCPU(.fast, poison: 0xA5)
    #expect(fast.codes == reference.codes && fast.scales == reference.scales, "fast ≠ reference for \(format)")
    return (reference.codes, reference.scales, problem)
}

@Suite("Block formats")
struct BlockFormatTests {
    @Test("accepts 16-value blocks with either scale, 32 only with UE8M0")
    func validation() throws {
        #expect(try BlockFormat(scaleEncoding: .e4m3) == .nvfp4)
        #expect(try BlockFormat(scaleEncoding: .ue8m0) == .nvfp4UE8M0)
        #expect(try BlockFormat(scaleEncoding: .ue8m0, blockSize: 32) == .mxfp4)
        for (encoding, size) in [(BlockFormat.ScaleEncoding.e4m3, 32), (.ue8m0, 64), (.e4m3, 8), (.ue8m0, 0)] {
            let error = #expect(throws: NVFP4Error.self) { try BlockFormat(scaleEncoding: encoding, blockSize: size) }
            #expect(error?.argument == "blockSize")
        }
        #expect(BlockFormat.allFormats.map(\.description) == ["nvfp4", "nvfp4UE8M0", "mxfp4"])
    }

    @Test("encodes and decodes scales: E4M3 nearest-even, UE8M0 rounded up")
    func scales() {
        #expect(BlockFormat.nvfp4.encodeScale(1.25) == 0x3A)
        #expect(BlockFormat.nvfp4.decodeScale(0x3A) == 1.25)
        #expect(BlockFormat.nvfp4.encodeScale(1e9) == 0x7E)
        for format in [BlockFormat.nvfp4UE8M0, .mxfp4] {
            #expect(format.encodeScale(1) == 127)
            #expect(format.encodeScale(Float(1).nextUp) == 128)
            #expect(format.encodeScale(1.5) == 128)
            #expect(format.encodeScale(0.25) == 125)
            #expect(format.encodeScale(0) == 0)
            #expect(format.encodeScale(.infinity) == 254)
            #expect(format.decodeScale(128) == 2)
            #expect(format.decodeScale(0) == 0x1p-127)
            for code in UInt8(1)...254 { #expect(format.encodeScale(format.decodeScale(code)) == code) }
        }
    }

    @Test("32-value geometry: K/32 blocks, swizzled offsets in bounds and injective", arguments: [32, 96, 128, 2880])
    func geometry(hiddenSize K: Int) {
        let geometry = ScaleGeometry(layout: .swizzled, hiddenSize: K, blockSize: 32)
        #expect(geometry.blocksPerRow == K / 32)
        #expect(geometry.bytesPerRow == roundUp(K / 32, 4))
        #expect(geometry.description.contains("B=32"))
        #expect(ScaleGeometry(layout: .linear, hiddenSize: K, blockSize: 32).bytesPerRow == K / 32)
        let rows = 256
        var seen = [Bool](repeating: false, count: geometry.byteCount(scaleRows: rows))
        for s in 0..<rows {
            for kb in 0..<(geometry.kTiles * 4) {
                let offset = geometry.byteOffset(scaleRow: s, block: kb)
                #expect(offset >= 0 && offset < seen.count && !seen[offset])
                if offset >= 0 && offset < seen.count { seen[offset] = true }
            }
        }
        #expect(seen.allSatisfy { $0 })
    }

    @Test("a hand-computed MXFP4 block: 0, 0.25, …, 7.75 with gs = 1")
    func handComputedMXFP4() throws {
        let run = try quantizeOneRow((0..<32).map { Float($0) * 0.25 }, format: .mxfp4)
        // amax 7.75 → sf = 7.75·r6 ≈ 1.29 → UE8M0 rounds up to 2 (code 128) → outScale 0.5;
        // x·0.5 = 0, .125, …, 3.875 → codes 0 0 0 1 1 1 2 2 | 2 2 2 3 3 3 4 4 | 4 4 4 4 4 5 5 5 | 5 5 5 5 6 6 6 6
        // (ties 0.25 → 0, 1.25 → 1, 2.5 → 2 go to the even code).
        #expect(run.codes == [0x00, 0x10, 0x11, 0x22, 0x22, 0x32, 0x33, 0x44,
                              0x44, 0x44, 0x54, 0x55, 0x55, 0x55, 0x66, 0x66])
        #expect(run.scales.count == 128 * 4)
        #expect(run.scales[0] == 128)
        #expect(run.scales.dropFirst().allSatisfy { $0 == 0 })
    }

    @Test("UE8M0 rounds the scale up, so the block maximum does not clip")
    func ue8m0RoundsUp() throws {
        var values = [Float](repeating: 0, count: 16)
        values[0] = 6.5
        values[1] = -6.5
        values[2] = 1
        values[4] = 6  // with sf = 1 this would be the maximum code; here 6·0.5 = 3 → code 5
        let run = try quantizeOneRow(values, format: .nvfp4UE8M0)
        // sf = 6.5·r6 ≈ 1.083 → 2 (code 128), outScale 0.5: 3.25 → 3 (5), −3.25 → 0xD, 0.5 → 1, 3 → 5.
        #expect(run.scales[0] == 128)
        #expect(run.codes == [0xD5, 0x01, 0x05, 0, 0, 0, 0, 0])
        // An exact power of two stays: amax 6 → sf = 1 → code 127, outScale 1, 6 → 7.
        values[0] = 6
        values[1] = -6
        let exact = try quantizeOneRow(values, format: .nvfp4UE8M0)
        #expect(exact.scales[0] == 127)
        #expect(exact.codes == [0xF7, 0x02, 0x07, 0, 0, 0, 0, 0])
    }

    @Test("an all-zero block with gs = 4 gives code bytes 0 and scale byte 0 in every format",
          arguments: BlockFormat.allFormats)
    func zeroBlock(format: BlockFormat) throws {
        let run = try quantizeOneRow([Float](repeating: 0, count: 64), format: format, globalScale: 4, layout: .linear)
        #expect(run.codes.allSatisfy { $0 == 0 })
        #expect(run.scales.allSatisfy { $0 == 0 })
        #expect(run.scales.count == 128 * 64 / format.blockSize)  // one expert: 128 linear scale rows
    }

    @Test("dequantized block formats stay within the E2M1 grid's error", arguments: BlockFormat.allFormats)
    func dequantize(format: BlockFormat) throws {
        let testCase = try ProblemFactory.make(
            name: "dequant \(format)", seed: 11, experts: 3, routedRows: 40, hiddenSize: 64,
            globalScale: { _ in 448 * 6 / 64 }, blockFormat: format)
        let run = try testCase.runCPU(.fast)
        var output = [Float](repeating: .nan, count: testCase.problem.rowCount * 64)
        try run.codes.withUnsafeBufferPointer { codes in
            try run.scales.withUnsafeBufferPointer { scales in
                try output.withUnsafeMutableBufferPointer {
                    try Dequantizer.dequantize(testCase.problem, codes: codes, scales: scales, into: $0)
                }
            }
        }
        let B = format.blockSize
        for block in 0..<(testCase.input.count / B) {
            let x = (0..<B).map { testCase.problem.elementType.float(fromBits: testCase.input[block * B + $0]) }
            let amax = QuantizationSteps.blockAbsMax(x)
            // UE8M0 scales are up to 2× the exact one: half the widest step is then amax/3.
            let bound = format.scaleEncoding == .e4m3 ? amax / 6 + amax / 16 : amax / 3 * (1 + 0x1p-10)
            for i in 0..<B { #expect(abs(output[block * B + i] - x[i]) <= bound, "block \(block)") }
        }
    }
}
