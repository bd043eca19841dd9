"""Adversarial input values and global scales for the spec-check cases.

Values are built block by block so that block scales land on E4M3 midpoints / UE8M0 powers of
two, scaled values land on E2M1 ties, and specials (NaN, Inf, signed zero, subnormals, max)
appear; the global scales are nudged so that a scale lands exactly on a rounding boundary.
The gate / up pairs of --silu-mul are in case_silu_values.py.
"""

import numpy as np

import reference_formats as formats
import reference_quantize as reference

F16_MAX = 65504.0
BF16_MAX = 3.3895313892515355e38


def to_bits(v64, dtype):
    """float64 -> dtype bits (through float32; overflow to Inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.asarray(v64, dtype=np.float64).astype(np.float32)
    return formats.f32_to_bf16_bits(f) if dtype == "bf16" else formats.f32_to_f16_bits(f)


def bump(bits, rng, p):
    """Move a fraction p of finite nonzero values one ulp up or down in magnitude."""
    bits = bits.copy()
    sel = rng.random(bits.shape) < p
    mag = bits & np.uint16(0x7FFF)
    sel &= (mag != 0)
    delta = np.where(rng.random(bits.shape) < 0.5, 1, -1).astype(np.int32)
    nb = (bits.astype(np.int32) + np.where(sel, delta, 0)).astype(np.uint16)
    return nb


def special_bits(dtype, kind, shape, rng):
    if dtype == "bf16":
        table = {"nan": 0x7FC0, "-nan": 0xFFC0, "inf": 0x7F80, "-inf": 0xFF80, "zero": 0x0000,
                 "-zero": 0x8000, "max": 0x7F7F, "-max": 0xFF7F}
        sub = rng.integers(1, 0x80, shape)
    else:
        table = {"nan": 0x7E00, "-nan": 0xFE00, "inf": 0x7C00, "-inf": 0xFC00, "zero": 0x0000,
                 "-zero": 0x8000, "max": 0x7BFF, "-max": 0xFBFF}
        sub = rng.integers(1, 0x400, shape)
    if kind == "sub":
        sign = (rng.random(shape) < 0.5).astype(np.int64) << 15
        return (sub | sign).astype(np.uint16)
    return np.full(shape, table[kind], dtype=np.uint16)


def gen_values(rng, gs_rows, K, B, dtype, fmt, hint_rows=None):
    """[N, K] dtype bits built block by block to be adversarial for the quantizer.
    hint_rows: per row, an amax (dtype bits, 0 = none) for which the row's global scale was
    tuned so that gs * (amax * r6) lands exactly on a scale rounding boundary."""
    N = len(gs_rows)
    nb = K // B
    nblk = N * nb
    if nblk == 0:
        return np.zeros((N, K), dtype=np.uint16)
    gsb = np.repeat(np.asarray(gs_rows, np.float32), nb).astype(np.float64)
    dmax = BF16_MAX if dtype == "bf16" else F16_MAX
    # target scale exponent: the E4M3 range and just past both ends; wider for UE8M0
    if fmt == "nvfp4":
        t = rng.uniform(-13, 10, nblk)
    else:
        t = np.where(rng.random(nblk) < 0.7, rng.uniform(-13, 10, nblk), rng.uniform(-135, 130, nblk))
    amax_t = 6.0 * np.exp2(t) / gsb
    style = rng.choice(11, size=nblk, p=[.16, .2, .08, .14, .1, .05, .04, .05, .05, .06, .07])
    # style 3: sf exactly at an E4M3 midpoint (or a UE8M0 power of two) for power-of-two gs
    mids = formats.E4M3_MIDPOINTS
    midsel = np.concatenate([mids, [464.0, 480.0, 512.0]])  # past 448 too
    if fmt == "nvfp4":
        target_sf = midsel[rng.integers(0, len(midsel), nblk)]
    else:
        target_sf = np.exp2(rng.integers(-140, 130, nblk).astype(np.float64))
    amax_t = np.where(style == 3, 6.0 * target_sf / gsb, amax_t)
    amax_t = np.minimum(amax_t, dmax)
    amax_bits = to_bits(amax_t, dtype)
    amax_bits = np.where(style == 3, bump(amax_bits, rng, 0.25), amax_bits)
    if hint_rows is not None:
        hb = np.repeat(np.asarray(hint_rows, np.uint16), nb)
        use = (hb != 0) & ((style == 3) | (rng.random(nblk) < 0.15))
        style = np.where(use & (style != 3), 0, style)
        amax_bits = np.where(use, np.where(rng.random(nblk) < 0.8, hb, bump(hb, rng, 1.0)), amax_bits)
    amax_bits &= np.uint16(0x7FFF)
    amax_val = formats.to_f32(amax_bits, dtype)
    _, osc = reference.block_out_scale(amax_val, gsb.astype(np.float32), fmt)
    osc64 = osc.astype(np.float64)
    a64 = amax_val.astype(np.float64)

    out = np.zeros((nblk, B), dtype=np.uint16)
    sgn = np.where(rng.random((nblk, B)) < 0.5, -1.0, 1.0)
    # default: uniform within amax
    u = rng.uniform(0, 1, (nblk, B)) * a64[:, None] * sgn
    out[:] = to_bits(u, dtype)
    # E2M1 ties (style 1, 3) and exact grid values (style 2)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = np.where(osc64 > 0, 1.0 / osc64, 0.0)
    tiesel = np.concatenate([formats.E2M1_MIDPOINTS, [6.5, 7.0]])
    tv = tiesel[rng.integers(0, len(tiesel), (nblk, B))] * inv[:, None] * sgn
    tb = bump(to_bits(tv, dtype), rng, 0.3)
    gv = formats.E2M1_VALUES[rng.integers(0, 8, (nblk, B))] * inv[:, None] * sgn
    gb = to_bits(gv, dtype)
    for st, bits in ((1, tb), (3, tb), (2, gb)):
        m = style == st
        out[m] = bits[m]
    # specials mix
    m = style == 4
    kinds = ["nan", "-nan", "inf", "-inf", "zero", "-zero", "sub", "max", "-max"]
    pick = rng.integers(0, len(kinds) + 3, (nblk, B))
    for ki, k in enumerate(kinds):
        sel = m[:, None] & (pick == ki)
        out[sel] = special_bits(dtype, k, (int(sel.sum()),), rng)
    # all (signed) zero
    m = style == 5
    out[m] = np.where(rng.random((int(m.sum()), B)) < 0.5, 0x8000, 0).astype(np.uint16)
    # all NaN, or NaN and zeros
    m = style == 6
    nn = special_bits(dtype, "nan", (int(m.sum()), B), rng)
    out[m] = np.where(rng.random((int(m.sum()), B)) < 0.8, nn, np.uint16(0x8000))
    # subnormal inputs only
    m = style == 7
    out[m] = special_bits(dtype, "sub", (int(m.sum()), B), rng)
    # constant magnitude (amax everywhere, random signs)
    m = style == 8
    out[m] = (amax_bits[:, None] | np.where(sgn < 0, 0x8000, 0).astype(np.uint16))[m]
    # random bit patterns (any exponent, NaN/Inf included)
    m = style == 9
    out[m] = rng.integers(0, 0x10000, (int(m.sum()), B)).astype(np.uint16)
    # a few Inf / NaN sprinkled into otherwise normal blocks (style 10)
    m = style == 10
    sp = rng.random((nblk, B)) < 0.15
    out[m[:, None] & sp] = special_bits(dtype, "inf", (1,), rng)[0] | np.uint16(0x8000 * int(rng.random() < .5))
    sp2 = rng.random((nblk, B)) < 0.1
    out[m[:, None] & sp2] = special_bits(dtype, "nan", (1,), rng)[0]
    # place the amax element (styles with an intended amax; others keep theirs)
    has_amax = np.isin(style, [0, 1, 2, 3, 10])
    # values must not exceed the intended amax (NaN / Inf placed on purpose are kept)
    vals = formats.to_f32(out, dtype).astype(np.float64)
    too_big = has_amax[:, None] & np.isfinite(vals) & (np.abs(vals) > a64[:, None])
    out[too_big] = to_bits(a64[:, None] * sgn * 0.5, dtype)[too_big]
    pos = rng.integers(0, B, nblk)
    rows = np.flatnonzero(has_amax)
    out[rows, pos[rows]] = amax_bits[rows] | np.where(rng.random(len(rows)) < 0.5, 0x8000, 0).astype(np.uint16)
    return out.reshape(N, K)



def gen_gs(rng, E, dtype="bf16", fmt="nvfp4"):
    """Per-expert global scales, and per expert an amax hint (dtype bits, 0 = none): for about
    a third of the experts gs is nudged so that float32(gs * float32(A * r6)) is exactly an
    E4M3 rounding midpoint (nvfp4) or a power of two (UE8M0, the round-up boundary) for a
    dtype value A, preferring an A where A * r6 and A / 6 round differently."""
    st = rng.integers(0, 5, E)
    g = np.where(st == 0, np.exp(rng.uniform(np.log(1e-6), np.log(1e6), E)),
        np.where(st == 1, np.exp2(rng.integers(-20, 21, E)),
        np.where(st == 2, 1.0,
        np.where(st == 3, np.exp(rng.uniform(np.log(0.1), np.log(1000), E)),
                 np.exp2(rng.integers(-3, 10, E)) * 448.0 / 6.0 / 2.0))))
    g = g.astype(np.float32)
    hints = np.zeros(E, dtype=np.uint16)
    dmax = BF16_MAX if dtype == "bf16" else F16_MAX
    for e in np.flatnonzero(rng.random(E) < 0.35):
        g0 = float(g[e])
        tt = rng.uniform(-10, 8, 8)
        cand = to_bits(np.minimum(6.0 * np.exp2(tt) / g0, dmax), dtype) & np.uint16(0x7FFF)
        cand = cand[(cand != 0) & np.isfinite(formats.to_f32(cand, dtype))]
        if len(cand) == 0:
            continue
        A = formats.to_f32(cand, dtype)
        q = (A * reference.R6).astype(np.float32)
        disc = q != (A / np.float32(6)).astype(np.float32)
        k = int(np.argmax(disc)) if disc.any() else 0
        qk = q[k]
        if qk == 0 or not np.isfinite(qk):
            continue
        sf0 = g0 * float(qk)
        if fmt == "nvfp4":
            target = formats.E4M3_MIDPOINTS[int(np.argmin(np.abs(formats.E4M3_MIDPOINTS - sf0)))]
        else:
            target = 2.0 ** round(np.log2(sf0))
        gt = np.float32(target / float(qk))
        if not np.isfinite(gt) or gt == 0:
            continue
        cs = [gt]
        up, dn = gt, gt
        for _ in range(4):
            up = np.nextafter(up, np.float32(np.inf)); dn = np.nextafter(dn, np.float32(-np.inf))
            cs += [up, dn]
        for c in cs:
            if float(np.float32(c * qk)) == target:
                g[e] = c
                hints[e] = cand[k]
                break
    if rng.random() < 0.1:   # beyond the brief's 1e-6..1e6: 1/gs overflowing or subnormal
        k = rng.random(E) < 0.3
        ext = np.where(rng.random(E) < 0.5, np.exp2(rng.uniform(-149, -100, E)), np.exp2(rng.uniform(100, 128, E)))
        g = np.where(k, ext.astype(np.float32), g).astype(np.float32)
        g[np.isinf(g)] = np.float32(3.4e38)
        hints[k] = 0
    return g, hints
