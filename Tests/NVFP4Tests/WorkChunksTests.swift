import Testing
@testable import NVFP4
import NVFP4TestSupport

@Suite("The fast CPU path's units of work")
struct WorkChunksTests {
    static let geometries: [ScaleGeometry] = [16, 48, 80, 320, 2048, 2880, 7168, 16384].flatMap { K in
        [16, 32].filter { K % $0 == 0 }.flatMap { B in
            ScaleLayout.allCases.map { ScaleGeometry(layout: $0, hiddenSize: K, blockSize: B) }
        }
    }

    @Test("every (scale row, k-tile) falls in exactly one unit; units hold whole 128-row tiles and start at an even k-tile",
          arguments: [64, 4096, WorkChunks.defaultValuesPerChunk])
    func cover(valuesPerChunk: Int) {
        for geometry in Self.geometries {
            for scaleRows in [1, 127, 128, 129, 1000, 40000] {
                let chunks = WorkChunks(geometry: geometry, scaleRows: scaleRows, valuesPerChunk: valuesPerChunk)
                var hits = [UInt8](repeating: 0, count: scaleRows * geometry.kTiles)
                for chunk in 0..<chunks.count {
                    let rows = chunks.scaleRows(ofChunk: chunk), kTiles = chunks.kTiles(ofChunk: chunk)
                    #expect(rows.lowerBound % 128 == 0 && (rows.upperBound % 128 == 0 || rows.upperBound == scaleRows))
                    #expect(kTiles.lowerBound % 2 == 0 && !kTiles.isEmpty && kTiles.upperBound <= geometry.kTiles)
                    for s in rows { for t in kTiles { hits[s * geometry.kTiles + t] &+= 1 } }
                }
                #expect(hits.allSatisfy { $0 == 1 }, "\(geometry), \(scaleRows) scale rows, \(valuesPerChunk) values a unit")
            }
        }
    }

    @Test("a long row is cut into slices near the unit size; short rows take several tiles a unit, up to that size")
    func sizes() {
        let long = WorkChunks(geometry: ScaleGeometry(layout: .swizzled, hiddenSize: 7168), scaleRows: 26_000)
        #expect(long.tilesPerChunk == 1 && long.slicesPerRow == 4 && long.count == 204 * 4)
        #expect(long.kTiles(ofChunk: 1) == 28..<56 && long.scaleRows(ofChunk: 5) == 128..<256)
        let short = WorkChunks(geometry: ScaleGeometry(layout: .swizzled, hiddenSize: 256), scaleRows: 1 << 20)
        #expect(short.slicesPerRow == 1 && short.tilesPerChunk == 8 && short.count == 1024)
        let few = WorkChunks(geometry: ScaleGeometry(layout: .swizzled, hiddenSize: 256), scaleRows: 1 << 16)
        #expect(few.tilesPerChunk == 2 && few.count == 256)
    }

    @Test("slices of two k-tiles give the reference's bytes over the shape catalog", arguments: [64, 8192])
    func catalog(valuesPerChunk: Int) throws {
        for testCase in try ProblemFactory.catalog(seed: 0xC4C0) {
            let problem = testCase.problem
            let reference = try testCase.runCPU(.reference, poison: 0xA5)
            let fast = try Self.runFast(QuantizationPlan(problem), input: testCase.input, codeCount: problem.codeByteCount,
                                        scaleCount: problem.scaleByteCount, valuesPerChunk: valuesPerChunk)
            let difference = OutputDiff.firstDifference(
                problem, expectedCodes: reference.codes, actualCodes: fast.codes,
                expectedScales: reference.scales, actualScales: fast.scales)
            #expect(difference == nil, "\(testCase.name): \(difference ?? "")")
        }
    }

    @Test("slices of two k-tiles give the reference's bytes with every fused option (K = 320: 3 slices, or 2 of MXFP4's)",
          arguments: FusedCombination.all)
    func fused(_ combination: FusedCombination) throws {
        let c = combination
        let reference: (codes: [UInt8], scales: [UInt8]), fast: (codes: [UInt8], scales: [UInt8])
        switch c.rowLayout {
        case .masked:
            let (problem, input) = try ProblemFactory.maskedProblem(
                groups: 3, maxRows: 20, hiddenSize: 320, elementType: c.type, mask: [Int32(c.seed % 21), 0, 25],
                blockFormat: c.format, activation: c.activation, seed: c.seed, scaleLayout: c.scaleLayout)
            reference = try MaskedProblemCase(name: "\(c)", seed: c.seed, problem: problem, input: input).runCPU(.reference)
            fast = try Self.runFast(QuantizationPlan(problem), input: input, codeCount: problem.codeByteCount,
                                    scaleCount: problem.scaleByteCount, valuesPerChunk: 64)
        case .gather, .offsets:
            let problem: QuantizationProblem, input: [UInt16]
            if c.rowLayout == .gather {
                (problem, input) = try ProblemFactory.gatherProblem(
                    tokens: 30, topk: 3, experts: 6, hiddenSize: 320, elementType: c.type, blockFormat: c.format,
                    activation: c.activation, seed: c.seed, scaleLayout: c.scaleLayout)
            } else {
                let testCase = try ProblemFactory.make(
                    name: "\(c)", seed: c.seed, experts: 5, routedRows: 90, extraRows: 3, hiddenSize: 320, type: c.type,
                    layout: c.scaleLayout, rule: c.seed % 2 == 0 ? .roundedPrefixSum : .closedForm, specials: true,
                    blockFormat: c.format, activation: c.activation)
                (problem, input) = (testCase.problem, testCase.input)
            }
            reference = try ProblemCase(name: "\(c)", seed: c.seed, problem: problem, input: input).runCPU(.reference)
            fast = try Self.runFast(QuantizationPlan(problem), input: input, codeCount: problem.codeByteCount,
                                    scaleCount: problem.scaleByteCount, valuesPerChunk: 64)
        }
        #expect(fast.codes == reference.codes, "\(c): codes")
        #expect(fast.scales == reference.scales, "\(c): scales")
    }

    /// The fast path on buffers poisoned with 0xA5, its work cut into units of `valuesPerChunk` values.
    static func runFast(_ plan: QuantizationPlan, input: [UInt16], codeCount: Int, scaleCount: Int,
                        valuesPerChunk: Int) throws -> (codes: [UInt8], scales: [UInt8]) {
        var codes = [UInt8](repeating: 0xA5, count: codeCount)
        var scales = [UInt8](repeating: 0xA5, count: scaleCount)
        input.withUnsafeBufferPointer { input in
            codes.withUnsafeMutableBufferPointer { codes in
                scales.withUnsafeMutableBufferPointer { scales in
                    CPUQuantizer.quantize(plan, input: input, codes: codes, scales: scales, valuesPerChunk: valuesPerChunk)
                }
            }
        }
        return (codes, scales)
    }
}
