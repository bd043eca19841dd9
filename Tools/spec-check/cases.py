"""Seeded spec-check cases: option combination, shapes, offsets, routing and masks.

make_case(seed) -> (case description, input tensors, routing tensors or None, expected
outputs of the reference). The option combination (row layout x activation x block format x
scale layout x input type: 3*2*3*2*2 = 72) cycles with the case seed, so any 72 consecutive
seeds cover every combination. The same seed always gives the same input bytes.
"""

import numpy as np

import reference_quantize as reference
from case_silu_values import gen_silu_values
from case_values import gen_gs, gen_values

MODES = ["plain", "gather", "masked"]
FMTS = ["nvfp4", "ue8m0", "mxfp4"]
LAYOUTS = ["swizzled", "linear"]
DTYPES = ["bf16", "f16"]
MAX_ROWS, MAX_ELEMS = 3000, 600_000     # per case (check_cli.py --max-rows / --max-elems)


def combo(seed):
    i = seed % 72
    mode = MODES[i % 3]; i //= 3
    silu = bool(i % 2); i //= 2
    fmt = FMTS[i % 3]; i //= 3
    layout = LAYOUTS[i % 2]; i //= 2
    dtype = DTYPES[i % 2]
    return mode, silu, fmt, layout, dtype


def pick_K(rng, B, W_budget):
    mults = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 33, 64, 128]
    if B == 16:
        mults = mults + [448]        # 7168
    K = B * int(rng.choice(mults))
    return K


def gen_counts(rng, E, max_rows):
    kind = rng.integers(0, 4)
    if kind == 0:     # mostly tiny / empty
        c = np.where(rng.random(E) < 0.4, 0, rng.integers(1, 6, E))
    elif kind == 1:   # 128-boundary sizes
        c = rng.choice([0, 1, 31, 32, 33, 63, 64, 65, 96, 127, 128, 129, 255, 256, 257], size=E)
    elif kind == 2:   # all empty but a few
        c = np.zeros(E, dtype=np.int64)
        k = rng.integers(1, min(E, 4) + 1)
        c[rng.choice(E, size=k, replace=False)] = rng.integers(0, 300, k)
    else:
        c = rng.integers(0, 40, E)
    c = c.astype(np.int64)
    while c.sum() > max_rows:
        c = c // 2
    return c


def make_case(seed):
    rng = np.random.default_rng(seed)
    mode, silu, fmt, layout, dtype = combo(seed)
    B = reference.FORMATS[fmt][0]
    K = pick_K(rng, B, None)
    W = 2 * K if silu else K
    max_rows = int(max(1, min(MAX_ROWS, MAX_ELEMS // W)))
    case = dict(seed=seed, mode=mode, silu=silu, fmt=fmt, layout=layout, dtype=dtype, K=K)
    in_dt = "BF16" if dtype == "bf16" else "F16"
    gv = gen_silu_values if silu else gen_values
    if mode == "plain":
        E = int(rng.choice([1, 2, 3, 4, 5, 7, 8, 13, 16, 17, 31, 64, 100, 127, 255, 256, 257, 299, 300]))
        counts = gen_counts(rng, E, max_rows)
        off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        extra = 0 if rng.random() < 0.4 else int(rng.integers(1, 12))
        M = int(off[E]) + extra
        gs, hints = gen_gs(rng, E, dtype, fmt)
        expert = np.repeat(np.arange(E), counts)
        x = np.zeros((M, W), dtype=np.uint16)
        x[:off[E]] = gv(rng, gs[expert], K, B, dtype, fmt, hints[expert])
        if extra:   # rows past off[E]: garbage that must not matter
            x[off[E]:] = rng.integers(0, 0x10000, (extra, W))
        soff = None
        if rng.random() < 0.3:
            # given offsets: multiples of 128, each expert at least roundUp(count, 128) rows;
            # half the time with spare 128-row tiles (padding rows, all zero)
            gaps = reference.round_up(counts, 128)
            if rng.random() < 0.5:
                gaps = gaps + 128 * rng.integers(0, 3, E) * (rng.random(E) < 0.3)
            soff = np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64)
        tensors = {"input": (in_dt, x), "global_scale": ("F32", gs), "input_offsets": ("I32", off)}
        if soff is not None:
            tensors["scale_offsets"] = ("I32", soff)
        expected = reference.quantize_offsets(x, gs, off, soff, dtype, silu, fmt, layout)
        case.update(E=E, M=M, rows=int(off[E]), given_soff=soff is not None)
        if soff is None and rng.random() < 0.3:
            case["rule"] = "closed-form"
        return case, tensors, None, expected
    if mode == "gather":
        E = int(rng.choice([1, 2, 3, 5, 8, 16, 17, 33, 64, 100, 256, 257, 300]))
        topk = int(rng.integers(1, 9))
        T = int(rng.integers(1, max(2, max_rows // topk)))
        if rng.random() < 0.3:
            T = int(rng.integers(1, 5))
        p_skip = float(rng.choice([0.0, 0.0, 0.0, 0.1, 0.1, 0.3, 0.5, 0.5, 0.9, 1.0], p=[.12, .12, .12, .1, .1, .1, .1, .1, .1, .04]))
        hot = rng.random() < 0.3
        if hot:   # few hot experts
            pool = rng.choice(E, size=min(E, 3), replace=False)
        else:
            pool = np.arange(E)
        if rng.random() < 0.8 and topk <= len(pool):   # distinct experts per token
            ids = np.stack([rng.choice(pool, size=topk, replace=False) for _ in range(T)])
        else:
            ids = rng.choice(pool, size=(T, topk))
        ids = ids.astype(np.int64)
        ids[rng.random((T, topk)) < p_skip] = -1
        gs, hints = gen_gs(rng, E, dtype, fmt)
        # every token's values are quantized with the gs of each expert it goes to; generate
        # them for the gs of its first valid expert
        first = np.where((ids >= 0).any(1), ids[np.arange(T), np.argmax(ids >= 0, axis=1)], 0)
        first = np.maximum(first, 0)
        x = gv(rng, gs[first], K, B, dtype, fmt, hints[first])
        tensors = {"input": (in_dt, x), "global_scale": ("F32", gs)}
        topk_t = {"topk_ids": ("I32", ids)}
        expected = reference.quantize_gather(x, gs, ids, dtype, silu, fmt, layout)
        case.update(E=E, T=T, topk=topk, rows=int(expected["input_offsets"][E]))
        return case, tensors, topk_t, expected
    # masked
    L = int(rng.integers(1, 20))
    Mmax = int(rng.choice([1, 2, 5, 31, 64, 127, 128, 129, 200, 256]))
    while L * Mmax > max_rows and L > 1:
        L = max(1, L // 2)
    if L * Mmax > max_rows:
        Mmax = max(1, max_rows // L)
    mk = rng.integers(0, 5, L)
    mask = np.where(mk == 0, 0, np.where(mk == 1, Mmax, np.where(mk == 2, Mmax + rng.integers(1, 1000, L),
                    rng.integers(0, Mmax + 1, L)))).astype(np.int64)
    gs, hints = gen_gs(rng, L, dtype, fmt)
    x = gv(rng, np.repeat(gs, Mmax), K, B, dtype, fmt, np.repeat(hints, Mmax)).reshape(L, Mmax, W)
    valid = np.minimum(mask, Mmax)
    for l in range(L):   # garbage past the mask
        x[l, valid[l]:] = rng.integers(0, 0x10000, (Mmax - valid[l], W))
    tensors = {"input": (in_dt, x), "mask": ("I32", mask), "global_scale": ("F32", gs)}
    expected = reference.quantize_masked(x, mask, gs, dtype, silu, fmt, layout)
    case.update(L=L, Mmax=Mmax, rows=int(valid.sum()), mask_over=int((mask > Mmax).sum()))
    return case, tensors, None, expected
