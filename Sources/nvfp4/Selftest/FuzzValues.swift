import NVFP4

/// Draws a case's input from its value stream, block by block.
///
/// Each block of B values (B = 16, or 32 for MXFP4; the gate and up halves of a SiLU·mul row
/// are blocked the same way) is one kind, with odds set by the case's ``FuzzValueMix``:
///
/// | kind        | values                                                                  |
/// |-------------|-------------------------------------------------------------------------|
/// | activation  | uniform in ±2^e (e per row), 5 % of them ×8                             |
/// | ties        | one ±6p and the rest ±t·p, t an E2M1 value or a midpoint between two (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5); with a power-of-two global scale p is chosen so that the block scale is exact, making every t·p an exact tie after scaling |
/// | extremes    | ±0, ±Inf, NaNs (quiet, signalling, negative), subnormals, the smallest normal and the largest finite value |
/// | zeros       | ±0                                                                      |
/// | constant    | one value repeated                                                      |
/// | raw bits    | uniformly random 16-bit patterns                                        |
///
/// On top, specials are sprinkled at a per-mix rate. Rows that are never read (offsets rows at
/// or past `off[E]`, masked rows past the mask) hold garbage: NaN, Inf and random patterns.
enum FuzzValues {
    enum BlockKind: CaseIterable { case activation, ties, extremes, zeros, constant, rawBits }

    /// The E2M1 values and the midpoints between neighbours (the ties of step 5).
    static let tieMultiples: [Float] = [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 5, 6]

    /// `problem.inputElementCount` bit patterns for `fuzzCase`.
    static func input(for fuzzCase: FuzzCase) -> [UInt16] {
        var r = FuzzRandom.values(caseSeed: fuzzCase.seed)
        let problem = fuzzCase.problem
        let type = problem.elementType
        let width = problem.inputRowWidth
        let blockSize = problem.blockFormat.blockSize
        let rows = problem.inputRowCount
        let scales = problem.globalScales
        let kinds = kindWeights(fuzzCase.valueMix)
        let sprinkle = sprinkleRate(fuzzCase.valueMix)
        let extremes = extremePatterns(type)
        let wideExponents = r.chance(0.2)
        var result = [UInt16](repeating: 0, count: rows * width)
        for row in 0..<rows {
            let base = row * width
            guard let expert = readingExpert(of: row, fuzzCase, &r) else {
                for i in 0..<width {
                    result[base + i] = r.chance(0.5) ? r.pick(extremes) : UInt16.random(in: 0...UInt16.max, using: &r)
                }
                continue
            }
            let exponent = rowExponent(type: type, wide: wideExponents, &r)
            let tieExponent = tieExponent(type: type, globalScale: scales[expert], &r)
            var start = 0
            while start < width {
                let end = min(start + blockSize, width)
                fillBlock(&result, base + start ..< base + end, kind: r.weighted(kinds), type: type,
                          exponent: exponent, tieExponent: tieExponent, extremes: extremes, &r)
                start = end
            }
            if sprinkle > 0 {
                for i in base..<(base + width) where r.chance(sprinkle) { result[i] = r.pick(extremes) }
            }
        }
        return result
    }

    /// The expert (or group) whose global scale applies to input `row`, or `nil` for a row that
    /// is never read. Gathered tokens take a random expert's scale (a token may feed several).
    static func readingExpert(of row: Int, _ fuzzCase: FuzzCase, _ r: inout FuzzRandom) -> Int? {
        switch fuzzCase.problem {
        case .grouped(let p):
            if p.gather != nil { return r.int(0...(p.segments.expertCount - 1)) }
            guard row < p.segments.routedRowCount else { return nil }
            return p.segments.expert(owningRow: row)
        case .masked(let p):
            let group = row / max(p.maxRowsPerGroup, 1)
            return row - group * p.maxRowsPerGroup < p.validRowCount(ofGroup: group) ? group : nil
        }
    }

    static func kindWeights(_ mix: FuzzValueMix) -> [(BlockKind, Double)] {
        switch mix {
        case .activations:
            return [(.activation, 0.8), (.ties, 0.05), (.extremes, 0.03), (.zeros, 0.03), (.constant, 0.04), (.rawBits, 0.05)]
        case .ties:
            return [(.activation, 0.2), (.ties, 0.7), (.extremes, 0.02), (.zeros, 0.03), (.constant, 0.03), (.rawBits, 0.02)]
        case .specials:
            return [(.activation, 0.4), (.ties, 0.05), (.extremes, 0.35), (.zeros, 0.05), (.constant, 0.05), (.rawBits, 0.1)]
        case .rawBits:
            return [(.activation, 0.2), (.rawBits, 0.8)]
        }
    }

    static func sprinkleRate(_ mix: FuzzValueMix) -> Double {
        switch mix {
        case .activations: return 1.0 / 512
        case .ties: return 1.0 / 256
        case .specials: return 1.0 / 16
        case .rawBits: return 0
        }
    }

    /// ±0, ±Inf, NaNs, subnormals, the smallest normal and the largest finite value of `type`.
    static func extremePatterns(_ type: ElementType) -> [UInt16] {
        switch type {
        case .bfloat16:
            return [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x7F81, 0xFF81, 0x0001, 0x807F, 0x0040, 0x0080,
                    0x8080, 0x7F7F, 0xFF7F]
        case .float16:
            return [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x7C01, 0xFC01, 0x0001, 0x83FF, 0x0200, 0x0400,
                    0x8400, 0x7BFF, 0xFBFF]
        }
    }

    /// A row's magnitude exponent: moderate, or (in a fifth of the cases) across the type's range.
    static func rowExponent(type: ElementType, wide: Bool, _ r: inout FuzzRandom) -> Int {
        switch (type, wide) {
        case (.bfloat16, false), (.float16, false): return r.int(-10...8)
        case (.bfloat16, true): return r.int(-133...124)
        case (.float16, true): return r.int(-24...12)
        }
    }

    /// The exponent of p for tie blocks: with a power-of-two `gs`, `gs·p` lands in `2^[-9, 8]`
    /// (exact E4M3 and UE8M0 scales), clamped to where 6p and the ties are representable.
    static func tieExponent(type: ElementType, globalScale gs: Float, _ r: inout FuzzRandom) -> Int {
        let target = r.int(-9...8) - Int(gs.exponent)
        switch type {
        case .bfloat16: return min(max(target, -126), 124)
        case .float16: return min(max(target, -14), 12)
        }
    }

    static func fillBlock(
        _ result: inout [UInt16], _ range: Range<Int>, kind: BlockKind, type: ElementType, exponent: Int,
        tieExponent: Int, extremes: [UInt16], _ r: inout FuzzRandom
    ) {
        func sign(_ x: Float) -> Float { r.chance(0.5) ? -x : x }
        switch kind {
        case .activation:
            let scale = Float(sign: .plus, exponent: exponent, significand: 1)
            for i in range {
                var x = Float.random(in: -1...1, using: &r) * scale
                if r.chance(0.05) { x *= 8 }
                result[i] = type.bits(rounding: x)
            }
        case .ties:
            let p = Float(sign: .plus, exponent: tieExponent, significand: 1)
            let peak = r.int(range.lowerBound...(range.upperBound - 1))
            for i in range {
                let x = i == peak ? 6 * p : r.pick(tieMultiples) * p
                result[i] = type.bits(rounding: sign(x))
            }
        case .extremes:
            for i in range { result[i] = r.pick(extremes) }
        case .zeros:
            for i in range { result[i] = r.chance(0.5) ? 0x8000 : 0 }
        case .constant:
            let value = r.chance(0.3) ? r.pick(extremes) : UInt16.random(in: 0...UInt16.max, using: &r)
            for i in range { result[i] = value }
        case .rawBits:
            for i in range { result[i] = UInt16.random(in: 0...UInt16.max, using: &r) }
        }
    }
}
