/// Step 5 as compares of input bit patterns: for one global scale, the E2M1 magnitude code of
/// each input magnitude under each E4M3 scale byte, held as seven thresholds.
///
/// Within a block everything of step 5 except the value is fixed by the scale byte: the output
/// scale `t = outputScale(byte, gs)` is one of at most 127 numbers for a global scale. The code
/// magnitude of `x` is `E2M1(Float(x) · t)`, and as `|x|` grows its bit pattern (15 bits of a
/// bfloat16 or float16, read as an integer) grows, `Float(|x|) · t` does not fall (a rounded
/// product is monotone) and neither does the code. So code `k` is reached exactly from some
/// least bit pattern `T_k` on, and the magnitude code of `x` is the number of `k` in 1…7 with
/// `|x| ≥ T_k`: seven 16-bit compares, eight lanes an instruction, the same bytes as the float
/// steps by construction (``threshold(level:outputScale:elementType:)`` finds each `T_k` by
/// evaluating those steps).
///
/// A worker fills the entries it meets, one scale byte at a time, and starts over when the
/// global scale changes. Entries where a product can be NaN, which drops the sign, are marked
/// slow, and such blocks take the float steps: an infinite output scale (a global scale so large
/// that `sf' · (1/gs)` underflows: `0 · t` is NaN), and a zero output scale for a non-zero byte
/// (a global scale so small that `1/gs` overflows: `∞ · 0` is NaN). Byte 0 keeps `t = 0`: a
/// block with an infinity has a non-zero byte.
struct CodeThresholds {
    /// How a scale byte's entry stands.
    enum State: UInt8 {
        case unknown = 0
        case ready = 1
        case slow = 2
    }

    /// The byte that stands for four blocks with a NaN among their values: always slow. The
    /// last byte with an entry, so that `use(globalScale:)` resets the others in one run.
    static let nanByte: Int32 = 0x7F
    /// Scale bytes with an entry: the non-negative E4M3 codes below NaN (0x00…0x7E), and
    /// ``nanByte``.
    static let byteCount = Int(nanByte) + 1
    /// Vectors in one entry: the seven thresholds (minus one, for a `>` compare), each
    /// repeated over 8 lanes, and one unused vector that keeps entries 128 bytes apart.
    static let vectorsPerEntry = 8

    /// The rounding boundaries of E2M1 magnitudes between codes k − 1 and k, k = 1…7.
    static let boundaries: [Float] = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5]

    private let entries: UnsafeMutablePointer<SIMD8<Int16>>
    private let states: UnsafeMutablePointer<UInt8>
    private let elementType: ElementType
    private var globalScale: Float

    /// A table over caller-owned storage (`byteCount · vectorsPerEntry` vectors, 16-byte
    /// aligned, and `byteCount` state bytes), empty.
    init(entries: UnsafeMutablePointer<SIMD8<Int16>>, states: UnsafeMutablePointer<UInt8>, elementType: ElementType) {
        self.entries = entries
        self.states = states
        self.elementType = elementType
        self.globalScale = .nan
        states.initialize(repeating: State.unknown.rawValue, count: Self.byteCount)
        states[Int(Self.nanByte)] = State.slow.rawValue
    }

    /// Runs `body` with an empty table on temporary storage.
    static func withTable<R>(elementType: ElementType, _ body: (inout CodeThresholds) -> R) -> R {
        withUnsafeTemporaryAllocation(of: SIMD8<Int16>.self, capacity: byteCount * vectorsPerEntry) { entries in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: byteCount) { states in
                var table = CodeThresholds(entries: entries.baseAddress!, states: states.baseAddress!, elementType: elementType)
                return body(&table)
            }
        }
    }

    /// Makes the table the one of global scale `gs`, dropping every entry of another scale
    /// (``nanByte``'s, the last, stays slow).
    @inline(__always)
    mutating func use(globalScale gs: Float) {
        guard gs.bitPattern != globalScale.bitPattern else { return }
        globalScale = gs
        states.update(repeating: State.unknown.rawValue, count: Self.byteCount - 1)
    }

    /// The entries of four scale bytes (each 0…0x7E, or ``nanByte``), filled first where
    /// missing; `nil` when any of them is slow.
    @inline(__always)
    mutating func entries(_ bytes: SIMD4<Int32>) -> (UnsafePointer<SIMD8<Int16>>, UnsafePointer<SIMD8<Int16>>,
                                                      UnsafePointer<SIMD8<Int16>>, UnsafePointer<SIMD8<Int16>>)? {
        let b0 = Int(bytes[0]), b1 = Int(bytes[1]), b2 = Int(bytes[2]), b3 = Int(bytes[3])
        if states[b0] & states[b1] & states[b2] & states[b3] != State.ready.rawValue {
            fillIfUnknown(byte: b0)
            fillIfUnknown(byte: b1)
            fillIfUnknown(byte: b2)
            fillIfUnknown(byte: b3)
            if states[b0] | states[b1] | states[b2] | states[b3] != State.ready.rawValue { return nil }
        }
        return (UnsafePointer(entry(b0)), UnsafePointer(entry(b1)), UnsafePointer(entry(b2)), UnsafePointer(entry(b3)))
    }

    @inline(__always)
    private func entry(_ byte: Int) -> UnsafeMutablePointer<SIMD8<Int16>> {
        entries + byte * Self.vectorsPerEntry
    }

    private mutating func fillIfUnknown(byte: Int) {
        guard states[byte] == State.unknown.rawValue else { return }
        let code = UInt8(byte)
        let t = QuantizationSteps.outputScale(scaleByte: code, decodedScale: E4M3(rawValue: code).floatValue,
                                              globalScale: globalScale)
        // An infinite t, or t = 0 for a non-zero byte (1/gs overflowed): a product can be NaN.
        guard t.isFinite && (t > 0 || byte == 0) else {
            states[byte] = State.slow.rawValue
            return
        }
        for level in 1...7 {
            let least = Self.threshold(level: level, outputScale: t, elementType: elementType)
            entry(byte)[level - 1] = SIMD8(repeating: Int16(truncatingIfNeeded: least &- 1))
        }
        states[byte] = State.ready.rawValue
    }

    /// The E2M1 magnitude code of the input magnitude `bits` (0…Inf's pattern) under output scale
    /// `t`: steps 4–5 of the spec on a non-negative value.
    @inline(__always)
    static func level(_ bits: UInt16, outputScale t: Float, elementType: ElementType) -> Int {
        Int(QuantizationSteps.roundToE2M1(elementType.float(fromBits: bits), outputScale: t))
    }

    /// The least magnitude bit pattern whose code under output scale `t` (finite, ≥ 0) is at
    /// least `level` (1…7), or 0x8000 (above every magnitude) when none is (t = 0: exact for the
    /// finite magnitudes, the only ones a block with scale byte 0 holds). Starts from
    /// the pattern nearest `boundary / t` and walks to the exact one by evaluating
    /// ``level(_:outputScale:elementType:)``.
    static func threshold(level: Int, outputScale t: Float, elementType: ElementType) -> UInt16 {
        guard t > 0 else { return 0x8000 }
        let infinity = elementType.infinityBits
        let estimate = Self.boundaries[level - 1] / t
        var bits = estimate.isFinite ? min(elementType.bits(roundingToNearestEven: estimate) & 0x7FFF, infinity) : infinity
        if Self.level(bits, outputScale: t, elementType: elementType) >= level {
            while bits > 0 && Self.level(bits - 1, outputScale: t, elementType: elementType) >= level { bits -= 1 }
        } else {
            while Self.level(bits, outputScale: t, elementType: elementType) < level { bits += 1 }
        }
        return bits
    }
}
