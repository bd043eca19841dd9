/// How a block of values shares one scale: the scale's encoding and the number of values.
///
/// | format        | scale encoding | values per block | scale rounding              |
/// |---------------|----------------|------------------|-----------------------------|
/// | ``nvfp4``       | E4M3           | 16               | nearest-even, saturated to 448 |
/// | ``nvfp4UE8M0``  | UE8M0          | 16               | up to a power of two        |
/// | ``mxfp4``       | UE8M0          | 32               | up to a power of two        |
///
/// The element codes are E2M1 in every format; only steps 3 and 4 of the spec (encoding the
/// block scale and deriving the output scale from it) and the block length change.
public struct BlockFormat: Hashable, Sendable, CustomStringConvertible {
    /// The 8-bit encoding of a block scale.
    public enum ScaleEncoding: String, Sendable, CaseIterable {
        /// ``E4M3``: nearest-even, saturated to 448 (`cvt.rn.satfinite.e4m3x2.f32`).
        case e4m3
        /// ``UE8M0``: a power of two, rounded up (so no value of the block clips).
        case ue8m0
    }

    /// How the block scale is stored.
    public let scaleEncoding: ScaleEncoding
    /// Values that share one scale: 16, or 32 (UE8M0 only).
    public let blockSize: Int

    /// A format, validated: `blockSize` is 16, or 32 with ``ScaleEncoding/ue8m0``.
    public init(scaleEncoding: ScaleEncoding, blockSize: Int = 16) throws {
        guard blockSize == 16 || (blockSize == 32 && scaleEncoding == .ue8m0) else {
            throw NVFP4Error.invalidArgument(
                argument: "blockSize",
                reason: "\(blockSize) values per block with \(scaleEncoding) scales; must be 16, or 32 with ue8m0")
        }
        self.init(validScaleEncoding: scaleEncoding, blockSize: blockSize)
    }

    private init(validScaleEncoding: ScaleEncoding, blockSize: Int) {
        self.scaleEncoding = validScaleEncoding
        self.blockSize = blockSize
    }

    /// NVFP4: E4M3 scales over 16 values (the plain spec).
    public static let nvfp4 = BlockFormat(validScaleEncoding: .e4m3, blockSize: 16)
    /// NVFP4 values with UE8M0 (power-of-two) scales over 16 values.
    public static let nvfp4UE8M0 = BlockFormat(validScaleEncoding: .ue8m0, blockSize: 16)
    /// OCP MXFP4: UE8M0 scales over 32 values.
    public static let mxfp4 = BlockFormat(validScaleEncoding: .ue8m0, blockSize: 32)

    /// The three formats, in the order above.
    public static let allFormats: [BlockFormat] = [.nvfp4, .nvfp4UE8M0, .mxfp4]

    /// Step 3: the scale byte of a block scale `sf` (``E4M3/code(rounding:)`` or
    /// ``UE8M0/init(roundingUp:)``).
    @inlinable
    public func encodeScale(_ sf: Float) -> UInt8 {
        switch scaleEncoding {
        case .e4m3: return E4M3.code(rounding: sf)
        case .ue8m0: return UE8M0(roundingUp: sf).rawValue
        }
    }

    /// The value `sf'` a scale byte stands for (UE8M0 code 0 is 2⁻¹²⁷, not 0).
    @inlinable
    public func decodeScale(_ byte: UInt8) -> Float {
        switch scaleEncoding {
        case .e4m3: return E4M3.decodeTable[Int(byte)]
        case .ue8m0: return UE8M0(rawValue: byte).floatValue
        }
    }

    public var description: String {
        switch (scaleEncoding, blockSize) {
        case (.e4m3, 16): return "nvfp4"
        case (.ue8m0, 16): return "nvfp4UE8M0"
        case (.ue8m0, 32): return "mxfp4"
        default: return "\(scaleEncoding)/\(blockSize)"
        }
    }
}
