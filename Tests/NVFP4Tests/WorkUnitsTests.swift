import Testing
@testable import NVFP4
import NVFP4TestSupport

@Suite("The fast CPU path's units of work")
struct WorkUnitsTests {
    static let geometries: [ScaleGeometry] = [16, 48, 80, 320, 2048, 2880, 7168, 16384].flatMap { K in
        [16, 32].filter { K % $0 == 0 }.flatMap { B in
            ScaleLayout.allCases.map { ScaleGeometry(layout: $0, hiddenSize: K, blockSize: B) }
        }
    }

    /// Routed rows per tile: full, empty, part-filled and single-row tiles in a seeded mix.
    static func routedRows(tiles: Int, seed: UInt64) -> [Int] {
        var generator = SeededGenerator(seed: seed)
        return (0..<tiles).map { _ in [0, 1, 20, 64, 100, 128, 128][Int.random(in: 0..<7, using: &generator)] }
    }

    @Test("every (scale row, k-tile) falls in exactly one unit; units hold whole 128-row tiles, a slice starts at an even k-tile",
          arguments: [64, 4096, WorkUnits.defaultValuesPerUnit, 1 << 22])
    func cover(valuesPerUnit: Int) {
        for geometry in Self.geometries {
            for (scaleRows, seed) in [(1, 1), (127, 2), (128, 3), (129, 4), (1000, 5), (40000, 6)] as [(Int, UInt64)] {
                let rows = Self.routedRows(tiles: (scaleRows + 127) / 128, seed: seed)
                let work = WorkUnits(routedRowsPerTile: rows, scaleRows: scaleRows, geometry: geometry,
                                        valuesPerUnit: valuesPerUnit)
                var hits = [UInt8](repeating: 0, count: scaleRows * geometry.kTiles)
                for unit in work.units {
                    let rows = unit.scaleRows, kTiles = unit.kTiles
                    #expect(rows.lowerBound % 128 == 0 && (rows.upperBound % 128 == 0 || rows.upperBound == scaleRows))
                    #expect(kTiles.lowerBound % 2 == 0 && !kTiles.isEmpty && kTiles.upperBound <= geometry.kTiles)
                    #expect(kTiles.count == geometry.kTiles || rows.count <= 128, "only a single tile is sliced")
                    for s in rows { for t in kTiles { hits[s * geometry.kTiles + t] &+= 1 } }
                }
                #expect(hits.allSatisfy { $0 == 1 }, "\(geometry), \(scaleRows) scale rows, \(valuesPerUnit) values a unit")
            }
        }
    }

    @Test("a costly tile is sliced near the unit size; a sparse tile is one unit; cheap tiles are packed into units of at most 2^18 values and a 256th of the call")
    func sizes() {
        let wide = ScaleGeometry(layout: .swizzled, hiddenSize: 7168)
        let dense = WorkUnits(routedRowsPerTile: [128, 128], scaleRows: 256, geometry: wide)
        #expect(dense.units.count == 8 && dense.units[1] == .init(scaleRows: 0..<128, kTiles: 28..<56))
        let sparse = WorkUnits(routedRowsPerTile: [20, 0, 50], scaleRows: 384, geometry: wide)
        #expect(sparse.units.map(\.kTiles.count) == [112, 112, 56, 56], "\(sparse.units)")
        let k2048 = WorkUnits(routedRowsPerTile: [128, 128, 128], scaleRows: 384, geometry: ScaleGeometry(layout: .swizzled, hiddenSize: 2048))
        #expect(k2048.units.count == 3 && k2048.units.allSatisfy { $0.kTiles == 0..<32 })
        let narrow = ScaleGeometry(layout: .swizzled, hiddenSize: 256)
        let many = WorkUnits(routedRowsPerTile: Array(repeating: 128, count: 8192), scaleRows: 8192 * 128, geometry: narrow)
        #expect(many.units.count == 1024 && many.units[3].scaleRows == 3 * 1024..<4 * 1024)
        let few = WorkUnits(routedRowsPerTile: Array(repeating: 128, count: 512), scaleRows: 512 * 128, geometry: narrow)
        #expect(few.units.count == 256 && few.units.allSatisfy { $0.scaleRows.count == 256 })
        let padding = WorkUnits(routedRowsPerTile: Array(repeating: 0, count: 300) + [128], scaleRows: 301 * 128, geometry: wide)
        #expect(padding.units.last == .init(scaleRows: 300 * 128..<301 * 128, kTiles: 84..<112))
    }

    @Test("routed rows per tile follow the groups: full tiles, the last part-filled one, padding tiles at 0")
    func routedRowsPerTile() throws {
        let problem = try QuantizationProblem(
            rowCount: 300, hiddenSize: 64, elementType: .bfloat16, segments: ExpertSegments(rowCounts: [130, 0, 170]),
            globalScales: [1, 2, 3])
        #expect(WorkUnits.routedRowsPerTile(QuantizationPlan(problem)) == [128, 2, 128, 42])
        let masked = try MaskedQuantizationProblem(
            groupCount: 3, maxRowsPerGroup: 200, hiddenSize: 64, elementType: .bfloat16, mask: [5, 0, 300],
            globalScales: [1, 2, 3])
        #expect(WorkUnits.routedRowsPerTile(QuantizationPlan(masked)) == [5, 0, 0, 0, 128, 72])
    }

    /// The catalog, and swizzled rows whose last slice starts past k-tile 0 with a tail of fewer
    /// than 4 blocks and padding columns (K/16 = 13 and 21).
    static func cases() throws -> [ProblemCase] {
        try ProblemFactory.catalog(seed: 0xC4C0) + [
            ProblemFactory.make(name: "K=208 swizzled", seed: 0xC4C1, experts: 5, routedRows: 300, extraRows: 3,
                                hiddenSize: 208, specials: true),
            ProblemFactory.make(name: "K=336 swizzled fp16 closed form", seed: 0xC4C2, experts: 9, routedRows: 400,
                                hiddenSize: 336, type: .float16, rule: .closedForm, specials: true),
        ]
    }

    @Test("slices of two k-tiles, and packed tiles, give the reference's bytes over the shape catalog",
          arguments: [64, 8192, 1 << 22])
    func catalog(valuesPerUnit: Int) throws {
        for testCase in try Self.cases() {
            let problem = testCase.problem
            let reference = try testCase.runCPU(.reference, poison: 0xA5)
            let fast = try Self.runFast(QuantizationPlan(problem), input: testCase.input, codeCount: problem.codeByteCount,
                                        scaleCount: problem.scaleByteCount, valuesPerUnit: valuesPerUnit)
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
        let plan: QuantizationPlan, input: [UInt16], reference: (codes: [UInt8], scales: [UInt8])
        switch c.rowLayout {
        case .masked:
            let (problem, values) = try ProblemFactory.maskedProblem(
                groups: 3, maxRows: 20, hiddenSize: 320, elementType: c.type, mask: [Int32(c.seed % 21), 0, 25],
                blockFormat: c.format, activation: c.activation, seed: c.seed, scaleLayout: c.scaleLayout)
            (plan, input) = (QuantizationPlan(problem), values)
            reference = try MaskedProblemCase(name: "\(c)", seed: c.seed, problem: problem, input: values).runCPU(.reference)
        case .gather, .offsets:
            let testCase: ProblemCase
            if c.rowLayout == .gather {
                let (problem, values) = try ProblemFactory.gatherProblem(
                    tokens: 30, topk: 3, experts: 6, hiddenSize: 320, elementType: c.type, blockFormat: c.format,
                    activation: c.activation, seed: c.seed, scaleLayout: c.scaleLayout)
                testCase = ProblemCase(name: "\(c)", seed: c.seed, problem: problem, input: values)
            } else {
                testCase = try ProblemFactory.make(
                    name: "\(c)", seed: c.seed, experts: 5, routedRows: 90, extraRows: 3, hiddenSize: 320, type: c.type,
                    layout: c.scaleLayout, rule: c.seed % 2 == 0 ? .roundedPrefixSum : .closedForm, specials: true,
                    blockFormat: c.format, activation: c.activation)
            }
            (plan, input) = (QuantizationPlan(testCase.problem), testCase.input)
            reference = try testCase.runCPU(.reference)
        }
        let fast = try Self.runFast(plan, input: input, codeCount: reference.codes.count, scaleCount: reference.scales.count,
                                    valuesPerUnit: 64)
        #expect(fast.codes == reference.codes, "\(c): codes")
        #expect(fast.scales == reference.scales, "\(c): scales")
    }

    /// The fast path on buffers poisoned with 0xA5, its work cut into units of `valuesPerUnit` values.
    static func runFast(_ plan: QuantizationPlan, input: [UInt16], codeCount: Int, scaleCount: Int,
                        valuesPerUnit: Int) throws -> (codes: [UInt8], scales: [UInt8]) {
        var codes = [UInt8](repeating: 0xA5, count: codeCount)
        var scales = [UInt8](repeating: 0xA5, count: scaleCount)
        input.withUnsafeBufferPointer { input in
            codes.withUnsafeMutableBufferPointer { codes in
                scales.withUnsafeMutableBufferPointer { scales in
                    CPUQuantizer.quantize(plan, input: input, codes: codes, scales: scales, valuesPerUnit: valuesPerUnit)
                }
            }
        }
        return (codes, scales)
    }
}
