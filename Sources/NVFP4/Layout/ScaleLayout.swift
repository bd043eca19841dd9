/// Where each block scale lives in the scale buffer.
///
/// Legend: `s` is a scale row (expert `e`'s row `m` is scale row `scaleOffsets[e] + m`),
/// `kb = column / B` the block index in the row, `B` the block size (16, or 32 for MXFP4),
/// `K` the hidden size.
public enum ScaleLayout: String, Sendable, CaseIterable {
    /// The 128×4 tiles the FP4 GEMMs read: per expert, byte
    /// `(mTile·kTiles + kTile)·512 + (m % 32)·16 + ((m / 32) % 4)·4 + kb % 4` from the expert's
    /// base `scaleOffsets[e] · roundUp(K/B, 4)`, with `mTile = m / 128`, `kTile = kb / 4`,
    /// `kTiles = ceil(K/B / 4)`. Rows padded to 128 per expert, columns to a multiple of 4.
    case swizzled
    /// Row-major `[scale rows, K / B]`.
    case linear
}

/// The scale buffer's geometry for one hidden size, block size and layout: a value you can
/// print and test over every coordinate.
public struct ScaleGeometry: Hashable, Sendable, CustomStringConvertible {
    public let layout: ScaleLayout
    /// K, the number of values in a row.
    public let hiddenSize: Int
    /// B, the values that share one scale: 16 (NVFP4), or 32 (MXFP4).
    public let blockSize: Int

    public init(layout: ScaleLayout, hiddenSize: Int, blockSize: Int = 16) {
        self.layout = layout
        self.hiddenSize = hiddenSize
        self.blockSize = blockSize
    }

    /// Blocks (scales) in a row: K / B.
    public var blocksPerRow: Int { hiddenSize / blockSize }
    /// Tiles of 4 blocks (4·B columns) in a row: ceil(K/B / 4).
    public var kTiles: Int { (blocksPerRow + 3) / 4 }
    /// Bytes of one scale row: `roundUp(K/B, 4)` swizzled, `K/B` linear.
    public var bytesPerRow: Int { layout == .swizzled ? kTiles * 4 : blocksPerRow }

    /// Bytes of a buffer of `scaleRows` rows.
    public func byteCount(scaleRows: Int) -> Int { scaleRows * bytesPerRow }

    /// The byte offset of block `block` of scale row `scaleRow`: ``rowOffset(scaleRow:)`` plus
    /// ``blockOffset(_:)``.
    ///
    /// For the swizzled layout this is the per-expert formula with the expert's base folded in:
    /// scale offsets are multiples of 128, so `m % 128 == s % 128` and the base adds whole tiles.
    @inlinable @inline(__always)
    public func byteOffset(scaleRow s: Int, block kb: Int) -> Int {
        rowOffset(scaleRow: s) + blockOffset(kb)
    }

    /// The part of a byte offset that depends on the row only:
    /// `(s / 128)·kTiles·512 + (s % 32)·16 + ((s / 32) % 4)·4` swizzled, `s·(K/B)` linear.
    @inlinable @inline(__always)
    public func rowOffset(scaleRow s: Int) -> Int {
        switch layout {
        case .linear: return s * blocksPerRow
        case .swizzled: return (s / 128) * kTiles * 512 + (s % 32) * 16 + ((s / 32) % 4) * 4
        }
    }

    /// The part of a byte offset that depends on the block only: `(kb / 4)·512 + kb % 4`
    /// swizzled, `kb` linear (`kb ≥ 0`; written with shifts, which need no signed-division fix-ups).
    @inlinable @inline(__always)
    public func blockOffset(_ kb: Int) -> Int {
        layout == .linear ? kb : (kb &>> 2) &<< 9 | (kb & 3)
    }

    /// Every byte position of a padding column (`kb` in `K/B ..< roundUp(K/B, 4)`) of row `s`.
    public func paddingColumnOffsets(scaleRow s: Int) -> [Int] {
        guard layout == .swizzled else { return [] }
        return (blocksPerRow..<(kTiles * 4)).map { byteOffset(scaleRow: s, block: $0) }
    }

    public var description: String {
        "ScaleGeometry(\(layout), K=\(hiddenSize), B=\(blockSize): \(blocksPerRow) blocks/row, \(bytesPerRow) bytes/row)"
    }
}

extension ScaleGeometry {
    /// Copies scales from `source` (laid out as `from`) into `destination` (laid out as `self`),
    /// for `scaleRows` rows. Padding columns of a swizzled destination are written as 0.
    public func convert(
        _ source: UnsafeBufferPointer<UInt8>, from: ScaleGeometry,
        into destination: UnsafeMutableBufferPointer<UInt8>, scaleRows: Int
    ) throws {
        guard from.hiddenSize == hiddenSize else {
            throw NVFP4Error.invalidArgument(argument: "from", reason: "hidden sizes differ: \(from.hiddenSize) vs \(hiddenSize)")
        }
        guard from.blockSize == blockSize else {
            throw NVFP4Error.invalidArgument(argument: "from", reason: "block sizes differ: \(from.blockSize) vs \(blockSize)")
        }
        guard source.count >= from.byteCount(scaleRows: scaleRows) else {
            throw NVFP4Error.invalidArgument(argument: "source", reason: "holds \(source.count) bytes, needs \(from.byteCount(scaleRows: scaleRows))")
        }
        guard destination.count >= byteCount(scaleRows: scaleRows) else {
            throw NVFP4Error.invalidArgument(argument: "destination", reason: "holds \(destination.count) bytes, needs \(byteCount(scaleRows: scaleRows))")
        }
        for s in 0..<scaleRows {
            for kb in 0..<blocksPerRow {
                destination[byteOffset(scaleRow: s, block: kb)] = source[from.byteOffset(scaleRow: s, block: kb)]
            }
            for offset in paddingColumnOffsets(scaleRow: s) { destination[offset] = 0 }
        }
    }
}
