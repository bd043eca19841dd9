import Testing
import NVFP4
import NVFP4TestSupport

@Suite("Scale layouts")
struct ScaleLayoutTests {
    @Test("swizzled offsets are in bounds and injective, and match the per-expert formula",
          arguments: [16, 48, 64, 80, 2048, 2880])
    func swizzled(hiddenSize K: Int) {
        let geometry = ScaleGeometry(layout: .swizzled, hiddenSize: K)
        let rows = 384
        var seen = [Bool](repeating: false, count: geometry.byteCount(scaleRows: rows))
        for s in 0..<rows {
            for kb in 0..<(geometry.kTiles * 4) {
                let offset = geometry.byteOffset(scaleRow: s, block: kb)
                #expect(offset >= 0 && offset < seen.count)
                #expect(!seen[offset], "offset \(offset) written twice")
                seen[offset] = true
                // The per-expert form, with an expert starting at scale row 128.
                if s >= 128 {
                    let m = s - 128
                    let perExpert = 128 * geometry.bytesPerRow
                        + ((m / 128) * geometry.kTiles + kb / 4) * 512 + (m % 32) * 16 + ((m / 32) % 4) * 4 + kb % 4
                    #expect(offset == perExpert)
                }
            }
        }
        #expect(seen.allSatisfy { $0 })
    }

    @Test("linear ↔ swizzled conversions are inverse and zero the padding columns", arguments: [16, 48, 208])
    func conversions(hiddenSize K: Int) throws {
        let rows = 256
        let linear = ScaleGeometry(layout: .linear, hiddenSize: K)
        let swizzled = ScaleGeometry(layout: .swizzled, hiddenSize: K)
        var generator = SeededGenerator(seed: UInt64(K))
        let original = (0..<linear.byteCount(scaleRows: rows)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        var middle = [UInt8](repeating: 0xAB, count: swizzled.byteCount(scaleRows: rows))
        var middle2 = [UInt8](repeating: 0x54, count: middle.count)
        var back = [UInt8](repeating: 0xCD, count: original.count)
        try original.withUnsafeBufferPointer { source in
            try middle.withUnsafeMutableBufferPointer { try swizzled.convert(source, from: linear, into: $0, scaleRows: rows) }
            try middle2.withUnsafeMutableBufferPointer { try swizzled.convert(source, from: linear, into: $0, scaleRows: rows) }
        }
        try middle.withUnsafeBufferPointer { source in
            try back.withUnsafeMutableBufferPointer { try linear.convert(source, from: swizzled, into: $0, scaleRows: rows) }
        }
        #expect(back == original)
        for s in 0..<rows {
            for offset in swizzled.paddingColumnOffsets(scaleRow: s) { #expect(middle[offset] == 0) }
        }
        #expect(middle == middle2, "some swizzled byte was not written")
    }
}

@Suite("Expert segments and routing")
struct SegmentTests {
    @Test("scale offsets: rounded prefix sum and closed form")
    func scaleOffsets() throws {
        let offsets: [Int32] = [0, 5, 5, 300, 301]
        #expect(ExpertSegments.scaleOffsets(for: offsets, rule: .roundedPrefixSum) == [0, 128, 128, 512, 640])
        #expect(ExpertSegments.scaleOffsets(for: offsets, rule: .closedForm) == [0, 256, 384, 768, 896])
        for rule in ExpertSegments.ScaleOffsetRule.allCases {
            var generator = SeededGenerator(seed: 9)
            for _ in 0..<200 {
                let counts = (0..<Int.random(in: 1...40, using: &generator)).map { _ in Int.random(in: 0...300, using: &generator) }
                let segments = try ExpertSegments(rowCounts: counts, rule: rule)
                try ExpertSegments.validate(inputOffsets: segments.inputOffsets, scaleOffsets: segments.scaleOffsets,
                                            rowCount: counts.reduce(0, +))
                for s in 0..<segments.scaleRowCount {
                    let e = segments.expert(owningScaleRow: s)
                    #expect(Int(segments.scaleOffsets[e]) <= s && s < Int(segments.scaleOffsets[e + 1]))
                }
            }
        }
    }

    @Test("invalid offsets are rejected with the argument named")
    func invalid() {
        func argument(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let error as NVFP4Error { return error.argument } catch { return "?" }
        }
        #expect(argument { _ = try ExpertSegments(inputOffsets: [1, 4], rowCount: 10) } == "inputOffsets")
        #expect(argument { _ = try ExpertSegments(inputOffsets: [0, 4, 3], rowCount: 10) } == "inputOffsets")
        #expect(argument { _ = try ExpertSegments(inputOffsets: [0, 11], rowCount: 10) } == "inputOffsets")
        #expect(argument { _ = try ExpertSegments(inputOffsets: [0], rowCount: 10) } == "inputOffsets")
        #expect(argument { _ = try ExpertSegments(inputOffsets: [0, 4], scaleOffsets: [0, 100], rowCount: 10) } == "scaleOffsets")
        #expect(argument { _ = try ExpertSegments(inputOffsets: [0, 200], scaleOffsets: [0, 128], rowCount: 200) } == "scaleOffsets")
        #expect(argument { _ = try ExpertSegments(inputOffsets: [0, 4], scaleOffsets: [0, 128, 256], rowCount: 10) } == "scaleOffsets")
        #expect(argument { _ = try ExpertSegments(inputOffsets: [0, 4], scaleOffsets: [128, 256], rowCount: 10) } == "scaleOffsets")
        #expect(argument { _ = try ExpertSegments(rowCounts: [3, -1]) } == "rowCounts")
    }

    @Test("routing groups rows by expert, stable within an expert, skipping -1")
    func routing() throws {
        let ids: [Int32] = [2, 0, -1, 2, 1, 0, 2, -1]  // tokens 0..3, topk 2
        let layout = try RoutingLayout(topkIds: ids, tokenCount: 4, topk: 2, expertCount: 4)
        #expect(layout.rowCounts == [2, 1, 3, 0])
        #expect(layout.segments.inputOffsets == [0, 2, 3, 6, 6])
        #expect(layout.permutation == [0, 2, 2, 0, 1, 3])
        #expect(layout.destinationRows == [3, 0, -1, 4, 2, 1, 5, -1])
        #expect(throws: NVFP4Error.self) { try RoutingLayout(topkIds: [0, 4], tokenCount: 1, topk: 2, expertCount: 4) }
        #expect(throws: NVFP4Error.self) { try RoutingLayout(topkIds: [0, -2], tokenCount: 1, topk: 2, expertCount: 4) }
        #expect(throws: NVFP4Error.self) { try RoutingLayout(topkIds: [0], tokenCount: 1, topk: 2, expertCount: 4) }
    }

    @Test("routing round-trips: every routed (token, k) lands on a row of its expert holding that token")
    func routingProperty() throws {
        var generator = SeededGenerator(seed: 77)
        for _ in 0..<50 {
            let E = Int.random(in: 1...64, using: &generator), T = Int.random(in: 0...100, using: &generator), topk = Int.random(in: 1...8, using: &generator)
            let ids = (0..<(T * topk)).map { _ in Int32.random(in: -1..<Int32(E), using: &generator) }
            let layout = try RoutingLayout(topkIds: ids, tokenCount: T, topk: topk, expertCount: E)
            var hits = [Int](repeating: 0, count: layout.permutation.count)
            for (i, id) in ids.enumerated() {
                let row = Int(layout.destinationRows[i])
                if id < 0 { #expect(row == -1); continue }
                #expect(Int(layout.permutation[row]) == i / topk)
                #expect(Int(layout.segments.inputOffsets[Int(id)]) <= row && row < Int(layout.segments.inputOffsets[Int(id) + 1]))
                hits[row] += 1
            }
            #expect(hits.allSatisfy { $0 == 1 })
        }
    }
}
