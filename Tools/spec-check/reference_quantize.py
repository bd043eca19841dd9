"""Block quantization and scale layouts of the independent NVFP4 reference.

Written from the spec text (README.md, Documentation/FusedVariants.md and the "Numerics"
section of Documentation/Internals.md) only, to cross-check the Swift `nvfp4` tool byte
for byte. The number formats and the float32 arithmetic are in reference_formats.py (always
called through the module, so that mutants.py can swap them).

Entry points:
  quantize_offsets(x, gs, in_off, scale_off=None, ...)   plain (offsets) layout
  quantize_gather(x, gs, topk_ids, ...)                   --routing
  quantize_masked(x, mask, gs, ...)                       --masked
each with   dtype='bf16'|'f16', silu_mul=bool, fmt='nvfp4'|'ue8m0'|'mxfp4',
layout='swizzled'|'linear'.  `x` is the raw input as uint16 bit patterns.
"""

import numpy as np

import reference_formats as formats

F32 = np.float32
ONE = F32(1.0)
R6 = F32(1.0) / F32(6.0)            # float32(1/6), correctly rounded

# --------------------------------------------------------------------------------------
# Block quantization of rows
# --------------------------------------------------------------------------------------

FORMATS = {"nvfp4": (16, "e4m3"), "ue8m0": (16, "ue8m0"), "mxfp4": (32, "ue8m0")}


def block_out_scale(amax, gs, fmt):
    """(scale byte, outScale) of blocks with the given amax (float32 >= 0) and global scale."""
    sfmt = FORMATS[fmt][1]
    amax = np.asarray(amax, dtype=np.float32)
    gs = np.asarray(gs, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        sf = (gs * (amax * R6).astype(np.float32)).astype(np.float32)
        if sfmt == "e4m3":
            sbyte = formats.e4m3_encode(sf)
            sfp = formats.e4m3_decode(sbyte)
            zero = sfp == 0
        else:
            sbyte = formats.ue8m0_encode(sf)
            sfp = formats.ue8m0_decode(sbyte)
            zero = sbyte == 0
        inv_gs = (ONE / gs).astype(np.float32)
        out_scale = (ONE / (sfp * inv_gs).astype(np.float32)).astype(np.float32)
        out_scale = np.where(zero, F32(0), out_scale).astype(np.float32)
    return sbyte.astype(np.uint8), out_scale


def quantize_rows(v, gs_rows, fmt):
    """v: [N, K] float32 values; gs_rows: [N] float32 global scale of each row's expert.
    Returns (packed codes [N, K/2] uint8, scale bytes [N, K/B] uint8)."""
    B, sfmt = FORMATS[fmt]
    v = np.asarray(v, dtype=np.float32)
    N, K = v.shape
    assert K % B == 0
    nb = K // B
    blk = v.reshape(N, nb, B)
    gs = np.asarray(gs_rows, dtype=np.float32).reshape(N, 1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        a = np.abs(blk)
        amax = np.where(np.isnan(a), F32(0), a).max(axis=2) if N * nb else np.zeros((N, nb), np.float32)
        amax = amax.astype(np.float32)
        sbyte, out_scale = block_out_scale(amax, gs, fmt)
        y = (blk * out_scale[:, :, None]).astype(np.float32)
    codes = formats.e2m1_encode(y).reshape(N, K)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << np.uint8(4))).astype(np.uint8)
    return packed, sbyte.astype(np.uint8)


# The documents do not state the linear layout's row width. FusedVariants.md says both
# layouts "use kb = column / B in the same formulas" and that padding columns (kb >= K/B up
# to a multiple of 4) are 0, which reads as roundUp(K/B, 4) for both; the tool writes
# linear scales as [rows, K/B] (no padding columns). LINEAR_PADDED selects the reading.
LINEAR_PADDED = False


def bytes_per_row(K, fmt, layout="swizzled"):
    B = FORMATS[fmt][0]
    nb = K // B
    if layout == "linear" and not LINEAR_PADDED:
        return nb
    return (nb + 3) // 4 * 4


def scatter_scales(sbytes, expert_base_row, m_in_expert, R, K, fmt, layout):
    """Place per-row block scale bytes into a [R, bytesPerRow] buffer (zeros elsewhere).
    expert_base_row: scale offset (row) of each row's expert; m_in_expert: row in expert."""
    bpr = bytes_per_row(K, fmt, layout)
    out = np.zeros(R * bpr, dtype=np.uint8)
    N, nb = sbytes.shape
    if N == 0 or nb == 0:
        return out.reshape(R, bpr)
    m = np.asarray(m_in_expert, dtype=np.int64)[:, None]
    base = np.asarray(expert_base_row, dtype=np.int64)[:, None]
    kb = np.arange(nb, dtype=np.int64)[None, :]
    if layout == "swizzled":
        k_tiles = bpr // 4
        off = (base * bpr + ((m // 128) * k_tiles + kb // 4) * 512 + (m % 32) * 16
               + ((m // 32) % 4) * 4 + (kb % 4))
    elif layout == "linear":
        off = (base + m) * bpr + kb
    else:
        raise ValueError(layout)
    out[off.ravel()] = sbytes.ravel()
    return out.reshape(R, bpr)


def _values(rows_bits, dtype, silu):
    x = formats.to_f32(rows_bits, dtype)
    if not silu:
        return x
    W = x.shape[1]
    K = W // 2
    return formats.silu_mul(x[:, :K], x[:, K:], dtype)


def round_up(n, m):
    return (n + m - 1) // m * m


def default_scale_offsets(in_off):
    counts = np.diff(np.asarray(in_off, dtype=np.int64))
    return np.concatenate([[0], np.cumsum(round_up(counts, 128))]).astype(np.int64)


def _quantize_segments(x_rows, gs, in_off, scale_off, M_out, dtype, silu, fmt, layout,
                       src_rows=None):
    """Shared core of the plain and gather layouts. x_rows: [*, W] uint16 source rows;
    output row r (off[0] <= r < off[E]) reads source row src_rows[r] (or r)."""
    gs = np.asarray(gs, dtype=np.float32)
    in_off = np.asarray(in_off, dtype=np.int64)
    scale_off = np.asarray(scale_off, dtype=np.int64)
    E = len(gs)
    W = x_rows.shape[1]
    K = W // 2 if silu else W
    counts = np.diff(in_off)
    rows = np.arange(in_off[0], in_off[E], dtype=np.int64)
    expert = np.repeat(np.arange(E), counts)
    m_in = rows - in_off[expert]
    src = rows if src_rows is None else np.asarray(src_rows, dtype=np.int64)[rows]
    v = _values(x_rows[src], dtype, silu)
    packed, sbytes = quantize_rows(v, gs[expert], fmt)
    codes = np.zeros((M_out, K // 2), dtype=np.uint8)
    codes[rows] = packed
    R = int(scale_off[E])
    scales = scatter_scales(sbytes, scale_off[expert], m_in, R, K, fmt, layout)
    return codes, scales


def quantize_offsets(x_bits, gs, in_off, scale_off=None, dtype="bf16", silu_mul=False,
                     fmt="nvfp4", layout="swizzled"):
    if scale_off is None:
        scale_off = default_scale_offsets(in_off)
    M = x_bits.shape[0]
    codes, scales = _quantize_segments(x_bits, gs, in_off, scale_off, M, dtype, silu_mul, fmt, layout)
    return {"output": codes, "output_scale": scales, "scale_offsets": np.asarray(scale_off),
            "input_offsets": np.asarray(in_off), "global_scale": np.asarray(gs, np.float32)}


def routing_layout(topk_ids, E):
    """Stable grouping: the rows of expert e are its (token, k) pairs in order of token, then k."""
    ids = np.asarray(topk_ids, dtype=np.int64)
    T, topk = ids.shape
    flat = ids.ravel()
    valid = np.flatnonzero(flat >= 0)
    order = valid[np.argsort(flat[valid], kind="stable")]
    counts = np.bincount(flat[valid], minlength=E)[:E]
    in_off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    permutation = (order // topk).astype(np.int64)
    dest = np.full(T * topk, -1, dtype=np.int64)
    dest[order] = np.arange(len(order))
    return in_off, permutation, dest.reshape(T, topk)


def quantize_gather(x_bits, gs, topk_ids, dtype="bf16", silu_mul=False, fmt="nvfp4",
                    layout="swizzled"):
    E = len(gs)
    in_off, perm, dest = routing_layout(topk_ids, E)
    scale_off = default_scale_offsets(in_off)
    M = int(in_off[E])
    codes, scales = _quantize_segments(x_bits, gs, in_off, scale_off, M, dtype, silu_mul, fmt,
                                       layout, src_rows=perm)
    return {"output": codes, "output_scale": scales, "scale_offsets": scale_off,
            "input_offsets": in_off, "global_scale": np.asarray(gs, np.float32),
            "permutation": perm, "destination_rows": dest}


def quantize_masked(x_bits, mask, gs, dtype="bf16", silu_mul=False, fmt="nvfp4",
                    layout="swizzled"):
    """x_bits: [L, Mmax, W]."""
    L, Mmax, W = x_bits.shape
    K = W // 2 if silu_mul else W
    S = round_up(Mmax, 128)
    valid = np.minimum(np.asarray(mask, dtype=np.int64), Mmax)
    assert (valid >= 0).all()
    flat = x_bits.reshape(L * Mmax, W)
    group = np.repeat(np.arange(L), valid)
    m_in = np.concatenate([np.arange(c) for c in valid]) if L else np.zeros(0, np.int64)
    m_in = m_in.astype(np.int64)
    rows = group * Mmax + m_in
    v = _values(flat[rows], dtype, silu_mul)
    packed, sbytes = quantize_rows(v, np.asarray(gs, np.float32)[group], fmt)
    codes = np.zeros((L * Mmax, K // 2), dtype=np.uint8)
    codes[rows] = packed
    scales = scatter_scales(sbytes, group * S, m_in, L * S, K, fmt, layout)
    bpr = bytes_per_row(K, fmt, layout)
    return {"output": codes.reshape(L, Mmax, K // 2), "output_scale": scales.reshape(L, S, bpr),
            "mask": np.asarray(mask), "global_scale": np.asarray(gs, np.float32)}

