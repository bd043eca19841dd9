"""Adversarial gate / up inputs for the --silu-mul cases.

Half the blocks take gate = +-2^j with an up chosen so that y = silu(gate) * up hits the plain
generator's values; in those blocks, (gate, up) pairs whose y sits within a few float32 ulps of
an input-type rounding midpoint (and straddles an E2M1 boundary) are planted, so that an
expSiLU or SiLU computed any other way flips a code.
"""

import numpy as np

import reference_formats as formats
import reference_quantize as reference
from case_values import BF16_MAX, F16_MAX, gen_values, special_bits, to_bits


def gen_silu_values(rng, gs_rows, K, B, dtype, fmt, hint_rows=None):
    """[N, 2K] bits: gate | up. Half the blocks: gate = +-2^j (j >= 5, so silu(g) == g or ~0
    exactly) and up = adversarial value / g, so y hits the plain generator's ties; the rest
    random gates (exp over its whole range, specials) and ups sized to the target scale."""
    N = len(gs_rows)
    v = gen_values(rng, gs_rows, K, B, dtype, fmt, hint_rows)   # target values
    vf = formats.to_f32(v, dtype).astype(np.float64)
    j = rng.integers(5, 8, (N, K))
    g_pow = np.exp2(j)
    up_pow = to_bits(vf / g_pow, dtype)
    gate_pow = to_bits(g_pow, dtype)
    # random gates
    gsc = np.exp2(rng.uniform(-6, 4.5, (N, K)))
    g_rand = rng.standard_normal((N, K)) * gsc
    neg_big = rng.random((N, K)) < 0.05
    g_rand = np.where(neg_big, -rng.uniform(80, 110, (N, K)), g_rand)
    gate_rand = to_bits(g_rand, dtype)
    # ups: scaled from the plain target values' magnitudes, plus raw randoms
    up_rand = to_bits(vf * rng.uniform(0.5, 4, (N, K)), dtype)
    # specials in gates
    sp = rng.random((N, K))
    for thr, kind in ((0.01, "inf"), (0.02, "-inf"), (0.03, "nan"), (0.04, "-zero"), (0.05, "sub"), (0.055, "max"), (0.06, "-max")):
        sel = (sp >= thr - 0.01) & (sp < thr)
        gate_rand[sel] = special_bits(dtype, kind, (int(sel.sum()),), rng)
    bw = rng.random((N, K // B)) < 0.5
    blockwise = np.repeat(bw, B, axis=1)
    gate = np.where(blockwise, gate_pow, gate_rand)
    up = np.where(blockwise, up_pow, up_rand)
    plant_silu_midpoints(rng, gate, up, bw, gs_rows, B, dtype, fmt)
    return np.concatenate([gate, up], axis=1).astype(np.uint16)


_POOLS = {}


def silu_pool(dtype):
    """(gate, up) pairs whose float32 y = silu(g) * u lies within 3 float32 ulps of a
    rounding midpoint of the input type (up in [1, 2); any power of two may scale it)."""
    if dtype in _POOLS:
        return _POOLS[dtype]
    allb = np.arange(0x10000, dtype=np.uint32).astype(np.uint16)
    v = formats.to_f32(allb, dtype)
    lo = 2.0 ** -30 if dtype == "bf16" else 2.0 ** -14
    gsel = np.flatnonzero(np.isfinite(v) & (np.abs(v) >= lo) & (np.abs(v) <= 110))
    gb = allb[gsel]
    g = formats.to_f32(gb, dtype)
    e = formats.exp_silu(-g)
    sl = (g / (np.float32(1) + e)).astype(np.float32)
    ub = allb[(v >= 1) & (v < 2)]
    u = formats.to_f32(ub, dtype)
    # near-midpoint pairs from a subset of the gates (all of them for bf16)
    sub = np.arange(len(g)) if dtype == "bf16" else np.random.default_rng(7).choice(len(g), 6000, replace=False)
    y = (sl[sub, None] * u[None, :]).astype(np.float32)
    yb = y.view(np.uint32)
    mask, half = (0xFFFF, 0x8000) if dtype == "bf16" else (0x1FFF, 0x1000)
    d = (yb & np.uint32(mask)).astype(np.int64) - half
    ok = (np.abs(d) <= 3) & (np.abs(y) >= np.float32(2.0 ** -100)) & np.isfinite(y)
    gi, ui = np.nonzero(ok)
    gi = sub[gi]
    flag = np.zeros(len(gi), np.int64)
    # pairs where a plausible other formulation of silu(g) (no FMA in expSiLU, libm exp,
    # silu in float64, g * (1 / (1 + e))) gives a y that rounds to another input-type value
    fg, fu = _flip_pairs(g, sl, u, dtype)
    gi = np.concatenate([gi, fg]); ui = np.concatenate([ui, fu])
    flag = np.concatenate([flag, np.ones(len(fg), np.int64)])
    yy = (sl[gi] * u[ui]).astype(np.float32).astype(np.float64)
    dd = (yy.astype(np.float32).view(np.uint32) & np.uint32(mask)).astype(np.int64) - half
    ym, ye = np.frexp(np.abs(yy))          # |y| = ym * 2^ye, ym in [0.5, 1)
    pool = dict(g=gb[gi], u=u[ui].astype(np.float64), y=yy, ym=ym * 2, ye=ye - 1, d=dd, flip=flag)
    _POOLS[dtype] = pool
    return pool


def _flip_pairs(g, s, u, dtype):
    """Indices (into g, u) of (gate, up-mantissa) pairs where an alternative silu gives a
    differently rounded y."""
    alts = []
    real = formats.fma32
    try:
        formats.fma32 = lambda a, b, c: ((np.asarray(a, np.float32) * np.asarray(b, np.float32)).astype(np.float32)
                                         + np.asarray(c, np.float32)).astype(np.float32)
        e = formats.exp_silu(-g)
    finally:
        formats.fma32 = real
    one = np.float32(1)
    alts.append((g / (one + e)).astype(np.float32))
    alts.append((g / (one + np.exp(-g.astype(np.float64)).astype(np.float32))).astype(np.float32))
    alts.append((g.astype(np.float64) / (1 + np.exp(-g.astype(np.float64)))).astype(np.float32))
    alts.append((g * (one / (one + formats.exp_silu(-g))).astype(np.float32)).astype(np.float32))
    sens = np.zeros(len(g), bool)
    for a in alts:
        sens |= (a != s)
    sens &= np.abs(s) >= np.float32(2.0 ** -100)
    gi = np.flatnonzero(sens)
    y = (s[gi, None] * u[None, :]).astype(np.float32)
    ex = np.frexp(y)[1]

    def rnd(v):   # rounding to the input type, normalized to [1, 2] (scale-invariant)
        return formats.round_to_input_type(np.ldexp(v, 1 - ex).astype(np.float32), dtype)
    r0 = rnd(y)
    flip = np.zeros(y.shape, bool)
    for a in alts:
        flip |= rnd((a[gi, None] * u[None, :]).astype(np.float32)) != r0
    fg, fu = np.nonzero(flip)
    return gi[fg], fu


def _pick_near(rng, ym_sorted, xm, w):
    """A random index of ym_sorted within (xm - w, xm + w) per xm, or -1."""
    lo = np.searchsorted(ym_sorted, xm - w, side="right")
    hi = np.searchsorted(ym_sorted, xm + w, side="left")
    n = hi - lo
    pick = lo + (rng.random(len(xm)) * np.maximum(n, 1)).astype(np.int64)
    return np.where(n > 0, pick, -1)


def plant_silu_midpoints(rng, gate, up, bw, gs_rows, B, dtype, fmt):
    """In blocks with an exactly known amax (bw), put (gate, up) pairs from the pool whose y
    is within a few float32 ulps of an input-type midpoint that straddles an E2M1 rounding
    boundary of the block: a y off by an ulp (a different exp or silu) flips a code."""
    pool = silu_pool(dtype)
    if len(pool["y"]) == 0:
        return
    if "order" not in pool:
        for key, sel in (("all", np.ones(len(pool["y"]), bool)), ("off", pool["d"] != 0),
                         ("flip", pool["flip"] == 1)):
            idx = np.flatnonzero(sel)
            idx = idx[np.argsort(pool["ym"][idx], kind="stable")]
            pool[key] = (idx, pool["ym"][idx])
        pool["order"] = True
    N, K = gate.shape
    frac_bits = 7 if dtype == "bf16" else 10
    dmin = 2.0 ** -126 if dtype == "bf16" else 2.0 ** -14
    dmax = BF16_MAX if dtype == "bf16" else F16_MAX
    blocks = np.argwhere(bw)
    blocks = blocks[rng.random(len(blocks)) < 0.6][:3000]
    if len(blocks) == 0:
        return
    nbk = len(blocks)
    cols = blocks[:, 1:2] * B + np.arange(B)[None, :]
    rows = np.repeat(blocks[:, 0:1], B, axis=1)
    gb, ub = gate[rows, cols], up[rows, cols]
    yv = formats.silu_mul(formats.to_f32(gb, dtype), formats.to_f32(ub, dtype), dtype)
    a = np.where(np.isnan(yv), np.float32(0), np.abs(yv))
    amax = a.max(axis=1)
    _, o = reference.block_out_scale(amax, np.asarray(gs_rows, np.float32)[blocks[:, 0]], fmt)
    o = o.astype(np.float64)
    pos_amax = np.argmax(a, axis=1)
    t = formats.E2M1_MIDPOINTS[rng.integers(0, 7, (nbk, B))]
    with np.errstate(all="ignore"):
        X = t / o[:, None]
    ok = (np.isfinite(amax) & (amax > 0) & (o > 0) & np.isfinite(o))[:, None]
    ok = ok & (np.arange(B)[None, :] != pos_amax[:, None]) & (rng.random((nbk, B)) < 0.7)
    ok &= (X > dmin * 4) & (X < np.minimum(amax.astype(np.float64), dmax / 4)[:, None])
    Xf = np.where(ok, X, 1.0).ravel()
    xm, xe = np.frexp(Xf)
    xm, xe = xm * 2, xe - 1
    w = 2.0 ** -frac_bits / 4
    rr = rng.random(len(xm))
    which = np.where(rr < 0.6, "flip", np.where(rr < 0.85, "off", "all"))
    c = np.full(len(xm), -1)
    for key in ("flip", "off", "all"):     # the chosen pool, falling back to the next ones
        idx, yms = pool[key]
        sel = (c < 0) & ((which == key) | (key == "all") | ((key == "off") & (which == "flip")))
        if len(idx) == 0 or not sel.any():
            continue
        p = _pick_near(rng, yms, xm[sel], w)
        c[sel] = np.where(p >= 0, idx[np.maximum(p, 0)], -1)
    ok = ok.ravel() & (c >= 0)
    cc = np.maximum(c, 0)
    j = xe - pool["ye"][cc]
    uval = pool["u"][cc] * np.exp2(j.astype(np.float64))
    ok &= (np.abs(uval) >= dmin) & (np.abs(uval) <= dmax)
    uval = np.where(rng.random(len(uval)) < 0.5, -uval, uval)
    gflat = gb.ravel().copy(); uflat = ub.ravel().copy()
    gflat[ok] = pool["g"][cc[ok]]
    uflat[ok] = to_bits(uval[ok], dtype)
    gate[rows, cols] = gflat.reshape(nbk, B)
    up[rows, cols] = uflat.reshape(nbk, B)
