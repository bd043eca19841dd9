/// How the rows of an activation tensor, and the rows of its scale tensor, are split among experts.
///
/// Expert `e` owns input rows `inputOffsets[e] ..< inputOffsets[e + 1]` and scale rows
/// `scaleOffsets[e] ..< scaleOffsets[e + 1]`. Scale offsets are multiples of 128 (the swizzled
/// tile height), and each expert has at least as many scale rows as input rows; the extra rows
/// are padding, written as zeros.
public struct ExpertSegments: Hashable, Sendable {
    /// `E + 1` non-decreasing row offsets into the input, starting at 0.
    public let inputOffsets: [Int32]
    /// `E + 1` offsets into the scale rows, multiples of 128, starting at 0.
    public let scaleOffsets: [Int32]

    /// How scale offsets are derived from input offsets.
    public enum ScaleOffsetRule: String, Sendable, CaseIterable {
        /// The prefix sum of each expert's row count rounded up to 128: no space for empty experts.
        case roundedPrefixSum
        /// `roundUp(inputOffsets[e] + 127·e, 128)`: computable per expert without a scan.
        case closedForm
    }

    /// Segments from explicit offsets, validated (see ``validate(inputOffsets:scaleOffsets:rowCount:)``).
    public init(inputOffsets: [Int32], scaleOffsets: [Int32], rowCount: Int) throws {
        try ExpertSegments.validate(inputOffsets: inputOffsets, scaleOffsets: scaleOffsets, rowCount: rowCount)
        self.inputOffsets = inputOffsets
        self.scaleOffsets = scaleOffsets
    }

    /// Segments from input offsets, with scale offsets computed by `rule`.
    public init(inputOffsets: [Int32], rowCount: Int, rule: ScaleOffsetRule = .roundedPrefixSum) throws {
        try ExpertSegments.validateInputOffsets(inputOffsets, rowCount: rowCount)
        guard Int(inputOffsets[inputOffsets.count - 1]) + 127 * inputOffsets.count <= Int(Int32.max) else {
            throw NVFP4Error.invalidArgument(
                argument: "inputOffsets",
                reason: "off[E] = \(inputOffsets[inputOffsets.count - 1]) leaves no room for \(rule) scale offsets in Int32")
        }
        self.inputOffsets = inputOffsets
        self.scaleOffsets = ExpertSegments.scaleOffsets(for: inputOffsets, rule: rule)
    }

    /// Segments for experts holding `rowCounts[e]` consecutive rows each.
    public init(rowCounts: [Int], rule: ScaleOffsetRule = .roundedPrefixSum) throws {
        guard !rowCounts.isEmpty else {
            throw NVFP4Error.invalidArgument(argument: "rowCounts", reason: "needs at least one expert")
        }
        var offsets: [Int32] = [0]
        offsets.reserveCapacity(rowCounts.count + 1)
        var total = 0
        for (e, count) in rowCounts.enumerated() {
            guard count >= 0 else {
                throw NVFP4Error.invalidArgument(argument: "rowCounts", reason: "expert \(e) has \(count) rows")
            }
            guard count <= Int(Int32.max) - 127 * (rowCounts.count + 1) - total else {
                throw NVFP4Error.invalidArgument(argument: "rowCounts", reason: "more rows than Int32 offsets hold")
            }
            total += count
            offsets.append(Int32(total))
        }
        try self.init(inputOffsets: offsets, rowCount: total, rule: rule)
    }

    /// The number of experts, `E`.
    public var expertCount: Int { inputOffsets.count - 1 }
    /// Rows that belong to some expert, `inputOffsets[E]`; rows past it are not quantized.
    public var routedRowCount: Int { Int(inputOffsets[expertCount]) }
    /// Rows of the scale tensor, `scaleOffsets[E]`.
    public var scaleRowCount: Int { Int(scaleOffsets[expertCount]) }
    /// Rows expert `e` owns.
    public func rowCount(ofExpert e: Int) -> Int { Int(inputOffsets[e + 1] - inputOffsets[e]) }

    /// The expert that owns scale row `scaleRow`: the last `e` with `scaleOffsets[e] <= scaleRow`
    /// among non-empty scale segments (binary search).
    public func expert(owningScaleRow scaleRow: Int) -> Int {
        ExpertSegments.lastSegment(in: scaleOffsets, startingAtOrBefore: scaleRow)
    }

    /// The expert that owns input row `row` (`row < routedRowCount`): the last `e` with
    /// `inputOffsets[e] <= row`, which skips empty experts (binary search).
    public func expert(owningRow row: Int) -> Int {
        ExpertSegments.lastSegment(in: inputOffsets, startingAtOrBefore: row)
    }

    /// The last `e < E` with `offsets[e] <= row`, for non-decreasing `offsets` that start at 0.
    private static func lastSegment(in offsets: [Int32], startingAtOrBefore row: Int) -> Int {
        var low = 0, high = offsets.count - 1  // invariant: offsets[low] <= row < offsets[high]
        while high - low > 1 {
            let mid = (low + high) / 2
            if Int(offsets[mid]) <= row { low = mid } else { high = mid }
        }
        return low
    }

    /// Scale offsets for `inputOffsets` under `rule`.
    public static func scaleOffsets(for inputOffsets: [Int32], rule: ScaleOffsetRule) -> [Int32] {
        switch rule {
        case .roundedPrefixSum:
            var result: [Int32] = [0]
            result.reserveCapacity(inputOffsets.count)
            for e in 0..<(inputOffsets.count - 1) {
                let count = inputOffsets[e + 1] - inputOffsets[e]
                result.append(result[e] + roundUp(count, 128))
            }
            return result
        case .closedForm:
            return inputOffsets.indices.map { e in roundUp(inputOffsets[e] + 127 * Int32(e), 128) }
        }
    }
}

extension ExpertSegments {
    /// Checks input offsets: `E + 1 >= 2` entries, `off[0] == 0`, non-decreasing, `off[E] <= rowCount`.
    public static func validateInputOffsets(_ offsets: [Int32], rowCount: Int) throws {
        func fail(_ reason: String) -> NVFP4Error { .invalidArgument(argument: "inputOffsets", reason: reason) }
        guard offsets.count >= 2 else { throw fail("needs E + 1 >= 2 entries, has \(offsets.count)") }
        guard offsets[0] == 0 else { throw fail("must start at 0, starts at \(offsets[0])") }
        for e in 0..<(offsets.count - 1) where offsets[e + 1] < offsets[e] {
            throw fail("decreases at expert \(e): \(offsets[e]) > \(offsets[e + 1])")
        }
        guard Int(offsets[offsets.count - 1]) <= rowCount else {
            throw fail("last offset \(offsets[offsets.count - 1]) is beyond the \(rowCount) input rows")
        }
    }

    /// Checks both offset arrays and their agreement: same `E`, scale offsets start at 0, are
    /// multiples of 128, and give each expert at least as many scale rows as it has input rows.
    public static func validate(inputOffsets: [Int32], scaleOffsets: [Int32], rowCount: Int) throws {
        try validateInputOffsets(inputOffsets, rowCount: rowCount)
        func fail(_ reason: String) -> NVFP4Error { .invalidArgument(argument: "scaleOffsets", reason: reason) }
        guard scaleOffsets.count == inputOffsets.count else {
            throw fail("has \(scaleOffsets.count) entries; inputOffsets has \(inputOffsets.count) (E mismatch)")
        }
        guard scaleOffsets[0] == 0 else { throw fail("must start at 0, starts at \(scaleOffsets[0])") }
        for e in 0..<(scaleOffsets.count - 1) {
            guard scaleOffsets[e + 1] % 128 == 0 else {
                throw fail("entry \(e + 1) = \(scaleOffsets[e + 1]) is not a multiple of 128")
            }
            let rows = Int(scaleOffsets[e + 1]) - Int(scaleOffsets[e])
            let needed = Int(inputOffsets[e + 1] - inputOffsets[e])
            guard rows >= needed else {
                throw fail("expert \(e) gets \(rows) scale rows but has \(needed) input rows")
            }
        }
    }
}

/// `value` rounded up to a multiple of `multiple`.
@inlinable @inline(__always)
public func roundUp<T: BinaryInteger>(_ value: T, _ multiple: T) -> T {
    (value + multiple - 1) / multiple * multiple
}
