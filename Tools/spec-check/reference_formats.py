"""Number formats and float32 arithmetic of the independent NVFP4 reference.

Written from the spec text (README.md, Documentation/FusedVariants.md and the "Numerics"
section of Documentation/Internals.md) only. Every arithmetic step is an IEEE float32
operation with round-to-nearest-even (NumPy float32 ufuncs), except the conversions, which
are done exactly in float64 by comparison against the rounding boundaries.

  bf16 / fp16     bf16_bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits,
                  to_f32, round_to_input_type (inputs are uint16 bit patterns)
  E4M3 (fn)       e4m3_encode, e4m3_decode, E4M3_VALUES, E4M3_MIDPOINTS
  UE8M0           ue8m0_encode (rounds up), ue8m0_decode
  E2M1            e2m1_encode, E2M1_VALUES, E2M1_MIDPOINTS
  float32 math    fma32 (correctly rounded), exp_silu, silu_mul (FusedVariants.md Step 0)

The block quantization and the scale layouts that use them are in reference_quantize.py.
"""

import numpy as np

F32 = np.float32

# --------------------------------------------------------------------------------------
# Input types (bf16 / fp16 as uint16 bit patterns)
# --------------------------------------------------------------------------------------


def bf16_bits_to_f32(u16):
    return (np.asarray(u16, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def f16_bits_to_f32(u16):
    return np.asarray(u16, dtype=np.uint16).view(np.float16).astype(np.float32)


def f32_to_bf16_bits(f):
    """float32 -> bf16, round to nearest even, overflow to +-Inf, NaN stays NaN (quiet)."""
    f = np.asarray(f, dtype=np.float32)
    u = f.view(np.uint32).astype(np.uint64)
    rounded = (u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)
    quiet_nan = ((u >> np.uint64(16)) | np.uint64(0x0040)).astype(np.uint16)
    return np.where(np.isnan(f), quiet_nan, rounded.astype(np.uint16)).astype(np.uint16)


def f32_to_f16_bits(f):
    """float32 -> fp16, round to nearest even (NumPy's conversion is exact RNE incl.
    subnormals; overflow gives +-Inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(f, dtype=np.float32).astype(np.float16).view(np.uint16)


def to_f32(bits, dtype):
    return bf16_bits_to_f32(bits) if dtype == "bf16" else f16_bits_to_f32(bits)


def round_to_input_type(f, dtype):
    """float32 -> input type (RNE, overflow to Inf) -> back to float32 exactly."""
    if dtype == "bf16":
        return bf16_bits_to_f32(f32_to_bf16_bits(f))
    return f16_bits_to_f32(f32_to_f16_bits(f))


# --------------------------------------------------------------------------------------
# E4M3 (fn), UE8M0, E2M1
# --------------------------------------------------------------------------------------

def _e4m3_value(c):
    e, m = c >> 3, c & 7
    if e == 0:
        return m * 2.0 ** -9
    return (1.0 + m / 8.0) * 2.0 ** (e - 7)


E4M3_VALUES = np.array([_e4m3_value(c) for c in range(127)], dtype=np.float64)  # 0..448
E4M3_MIDPOINTS = (E4M3_VALUES[:-1] + E4M3_VALUES[1:]) / 2.0   # exact in float64


def _round_to_table(a, mids):
    """Index into a sorted table for |a| (float64, non-NaN), nearest, ties to the even index,
    saturating at the last index."""
    i = np.searchsorted(mids, a, side="left")        # number of midpoints < a
    j = np.minimum(i, len(mids) - 1)
    tie = (i < len(mids)) & (mids[j] == a)
    return np.where(tie & (i % 2 == 1), i + 1, i)


def e4m3_encode(sf):
    """float32 scale (>= 0 in practice) -> E4M3 byte: RNE, saturate to 448 (Inf too), NaN->0x7F."""
    sf = np.asarray(sf, dtype=np.float32)
    a = np.abs(sf.astype(np.float64))
    nan = np.isnan(a)
    code = _round_to_table(np.where(nan, 0.0, a), E4M3_MIDPOINTS).astype(np.uint8)
    code = np.where(np.signbit(sf) & (code != 0), code | np.uint8(0x80), code)
    return np.where(nan, np.uint8(0x7F), code).astype(np.uint8)


def e4m3_decode(code):
    code = np.asarray(code, dtype=np.uint8)
    mag = E4M3_VALUES[np.minimum(code & 0x7F, 126)].astype(np.float32)
    mag = np.where((code & 0x7F) == 0x7F, np.float32(np.nan), mag)
    return np.where(code & 0x80, -mag, mag).astype(np.float32)


def ue8m0_encode(sf):
    """float32 scale -> UE8M0 code: smallest c with 2^(c-127) >= sf (round UP), c in 0..254;
    sf <= 2^-127 -> 0."""
    sf = np.asarray(sf, dtype=np.float32).astype(np.float64)
    with np.errstate(invalid="ignore"):
        m, e = np.frexp(np.where(np.isfinite(sf) & (sf > 0), sf, 1.0))   # sf = m*2^e, m in [.5,1)
    c = np.where(m == 0.5, e - 1, e) + 127          # ceil(log2 sf) + 127
    c = np.clip(c, 0, 254)
    c = np.where(sf > 0, c, 0)
    c = np.where(np.isinf(sf) & (sf > 0), 254, c)
    c = np.where(np.isnan(sf), 255, c)
    return c.astype(np.uint8)


def ue8m0_decode(code):
    code = np.asarray(code, dtype=np.uint8).astype(np.int64)
    v = np.ldexp(1.0, np.where(code == 0, -127, code - 127))
    return np.where(code == 255, np.nan, v).astype(np.float32)


E2M1_VALUES = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=np.float64)
E2M1_MIDPOINTS = (E2M1_VALUES[:-1] + E2M1_VALUES[1:]) / 2.0     # .25 .75 1.25 1.75 2.5 3.5 5


def e2m1_encode(y):
    """float32 -> 4-bit code: RNE (ties to even code), saturate to +-6, sign kept (also for a
    value rounding to 0, and -0), NaN -> 0x7, +-Inf -> 0x7/0xF."""
    y = np.asarray(y, dtype=np.float32)
    a = np.abs(y.astype(np.float64))
    nan = np.isnan(a)
    idx = _round_to_table(np.where(nan, 0.0, a), E2M1_MIDPOINTS).astype(np.uint8)
    code = np.where(np.signbit(y), idx | np.uint8(8), idx)
    return np.where(nan, np.uint8(7), code).astype(np.uint8)


# --------------------------------------------------------------------------------------
# Correctly rounded float32 FMA, the SiLU exponential, SiLU * mul
# --------------------------------------------------------------------------------------

def fma32(a, b, c):
    """Correctly rounded float32 fma(a, b, c) for finite operands.

    a*b is exact in float64 (48 significant bits). s = p + c and its exact error err
    (TwoSum) give the exact sum s + err; s is then turned into the round-to-odd double of
    the exact sum (if err != 0 and s's last bit is even, step one ulp toward err), and a
    round-to-odd result with >= 2*24+2 bits rounds to float32 correctly (no double rounding).
    """
    a = np.asarray(a, dtype=np.float32).astype(np.float64)
    b = np.asarray(b, dtype=np.float32).astype(np.float64)
    c = np.asarray(c, dtype=np.float32).astype(np.float64)
    p = a * b                                         # exact
    s = p + c
    cv = s - p                                        # TwoSum (Knuth): p + c == s + err
    pv = s - cv
    err = (p - pv) + (c - cv)
    s = np.asarray(s)
    even = (s.view(np.uint64) & np.uint64(1)) == 0
    adjust = (err != 0) & even & np.isfinite(s)
    s = np.where(adjust, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    with np.errstate(over="ignore"):
        return s.astype(np.float32)


L2E = np.uint32(0x3FB8AA3B).view(np.float32)
LN2HI = np.uint32(0x3F317200).view(np.float32)
LN2LO = np.uint32(0x35BFBE8E).view(np.float32)
C2 = np.uint32(0x3F000000).view(np.float32)
C3 = np.uint32(0x3E2AAAAB).view(np.float32)
C4 = np.uint32(0x3D2AAAAB).view(np.float32)
C5 = np.uint32(0x3C088889).view(np.float32)
C6 = np.uint32(0x3AB60B61).view(np.float32)
ONE = F32(1.0)


def _pow2_f32(n):
    """2^n as float32 built from exponent bits (n in -126..127)."""
    return ((n.astype(np.int64) + 127).astype(np.uint32) << np.uint32(23)).view(np.float32)


def exp_silu(x):
    x = np.asarray(x, dtype=np.float32)
    nan = np.isnan(x)
    xc = np.minimum(np.maximum(np.where(nan, F32(0), x), F32(-104.0)), F32(89.0)).astype(np.float32)
    n = np.rint(xc * L2E).astype(np.float32)
    r = fma32(-n, LN2LO, fma32(-n, LN2HI, xc))
    p = fma32(C6, r, C5)
    p = fma32(p, r, C4)
    p = fma32(p, r, C3)
    p = fma32(p, r, C2)
    p = fma32(p, r, ONE)
    p = fma32(p, r, ONE)
    ni = n.astype(np.int64)
    n1 = np.where(ni < 0, -((-ni) // 2), ni // 2)     # n / 2 truncated toward zero
    n2 = ni - n1
    with np.errstate(over="ignore", under="ignore"):
        out = (p * _pow2_f32(n1)).astype(np.float32) * _pow2_f32(n2)
    return np.where(nan, x, out).astype(np.float32)


def silu_mul(g, u, dtype):
    """gate, up (float32, exact from the input type) -> value (float32 of the input type)."""
    g = np.asarray(g, dtype=np.float32)
    u = np.asarray(u, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        e = exp_silu(-g)
        silu = g / (ONE + e)
        y = (silu * u).astype(np.float32)
    return round_to_input_type(y, dtype)
