import NVFP4

/// Whether two `silu` results agree: the same bits, or both NaN. A NaN's sign and payload change
/// no output byte (it is left out of the amax and encodes as `0x7`), and the GPU's default NaN
/// differs from the CPU's.
public func sameSiLU(_ expected: Float, _ actual: Float) -> Bool {
    expected.isNaN ? actual.isNaN : actual.bitPattern == expected.bitPattern
}
