"""Counts the adversarial events the generated cases contain (no CLI needed).
python3 coverage.py --cases 720 --seed 1"""
import argparse, collections
import numpy as np
import cases
import reference_formats as formats
import reference_quantize as reference

np.seterr(all="ignore")
ap = argparse.ArgumentParser(); ap.add_argument("--cases", type=int, default=72); ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
cnt = collections.Counter()


def rows_of(case, tensors, topk):
    """(values float32 [N, K], gs per row) of the quantized rows."""
    x = tensors["input"][1]; gs = tensors["global_scale"][1]; dt = case["dtype"]
    if case["mode"] == "plain":
        off = tensors["input_offsets"][1]; E = len(gs)
        src = np.arange(off[0], off[E]); ex = np.repeat(np.arange(E), np.diff(off))
        xr = x[src]
    elif case["mode"] == "gather":
        off, perm, _ = reference.routing_layout(topk["topk_ids"][1], len(gs))
        ex = np.repeat(np.arange(len(gs)), np.diff(off)); xr = x[perm]
    else:
        L, Mmax, W = x.shape; valid = np.minimum(tensors["mask"][1], Mmax)
        ex = np.repeat(np.arange(L), valid)
        xr = np.concatenate([x[l, :valid[l]] for l in range(L)]) if L else x.reshape(0, W)
    if case["silu"]:
        f = formats.to_f32(xr, dt); K = f.shape[1] // 2
        g, u = f[:, :K], f[:, K:]
        cnt["silu gate +Inf"] += int(np.isposinf(g).sum()); cnt["silu gate -Inf"] += int(np.isneginf(g).sum())
        cnt["silu gate NaN"] += int(np.isnan(g).sum())
        e = formats.exp_silu(-g); y32 = ((g / (np.float32(1) + e)).astype(np.float32) * u).astype(np.float32)
        v = formats.round_to_input_type(y32, dt)
        fin = np.isfinite(y32)
        cnt["silu y overflows to Inf in the input type"] += int((fin & np.isinf(v)).sum())
        yb = y32.view(np.uint32)
        mask, half = (0xFFFF, 0x8000) if dt == "bf16" else (0x1FFF, 0x1000)
        normal = fin & (np.abs(y32) >= (2.0 ** -126 if dt == "bf16" else 2.0 ** -14))
        cnt["silu y exactly on an input-type midpoint"] += int((normal & ((yb & mask) == half)).sum())
        cnt["silu y within 3 ulp of a midpoint (not on)"] += int((normal & (np.abs((yb & mask).astype(np.int64) - half) <= 3) & ((yb & mask) != half)).sum())
    else:
        v = formats.to_f32(xr, dt)
    return v, gs[ex]


for seed in range(a.seed, a.seed + a.cases):
    case, tensors, topk, expected = cases.make_case(seed)
    v, gsr = rows_of(case, tensors, topk)
    fmt = case["fmt"]; B = reference.FORMATS[fmt][0]
    N, K = v.shape
    cnt["cases " + case["mode"]] += 1
    if N == 0:
        cnt["cases with no quantized row"] += 1
        continue
    blk = v.reshape(N, K // B, B)
    gsb = np.repeat(gsr, K // B).reshape(N, K // B)
    am = np.where(np.isnan(blk), 0, np.abs(blk)).max(axis=2).astype(np.float32)
    q = (am * reference.R6).astype(np.float32)
    sf = (gsb * q).astype(np.float32)
    sb, osc = reference.block_out_scale(am, gsb, fmt)
    cnt["blocks"] += am.size
    if fmt == "nvfp4":
        cnt["E4M3: sf exactly on a rounding midpoint"] += int(np.isin(sf.astype(np.float64), formats.E4M3_MIDPOINTS).sum())
        cnt["E4M3: sf > 448 (saturated)"] += int((sf > 448).sum())
        cnt["E4M3: subnormal scale code (1..7)"] += int(((sb >= 1) & (sb <= 7)).sum())
        cnt["E4M3: code 0 with amax > 0"] += int(((sb == 0) & (am > 0)).sum())
    else:
        m, e = np.frexp(sf.astype(np.float64))
        cnt["UE8M0: sf exactly a power of two"] += int(((m == 0.5) & (sf > 0)).sum())
        cnt["UE8M0: code 254 (saturated)"] += int((sb == 254).sum())
        cnt["UE8M0: code 0 with amax > 0"] += int(((sb == 0) & (am > 0)).sum())
    disc = (q != (am / np.float32(6)).astype(np.float32))
    sf6 = (gsb * (am / np.float32(6)).astype(np.float32)).astype(np.float32)
    sb6 = formats.e4m3_encode(sf6) if fmt == "nvfp4" else formats.ue8m0_encode(sf6)
    cnt["blocks where amax*r6 vs amax/6 changes the scale byte"] += int((disc & (sb6 != sb)).sum())
    cnt["blocks with outScale 0"] += int((osc == 0).sum())
    cnt["blocks with outScale Inf"] += int(np.isinf(osc).sum())
    cnt["all-NaN blocks"] += int(np.isnan(blk).all(axis=2).sum())
    cnt["all-zero blocks"] += int((blk == 0).all(axis=2).sum())
    y = (blk * osc[:, :, None]).astype(np.float32)
    ay = np.abs(y.astype(np.float64))
    for t in formats.E2M1_MIDPOINTS:
        cnt[f"E2M1: |x*outScale| exactly {t}"] += int((ay == t).sum())
    cnt["E2M1: NaN value"] += int(np.isnan(y).sum())
    cnt["E2M1: +-Inf value"] += int(np.isinf(y).sum())
    cnt["E2M1: saturating (|y| > 6, finite)"] += int((np.isfinite(y) & (ay > 6)).sum())
    cnt["E2M1: negative value rounding to -0 code (0x8)"] += int(((y < 0) & (ay <= 0.25)).sum() + (np.signbit(y) & (y == 0)).sum())
    cnt["subnormal inputs"] += int(((np.abs(v) > 0) & (np.abs(v) < (2.0 ** -126 if case["dtype"] == "bf16" else 2.0 ** -14))).sum())
    if case["mode"] == "plain":
        cnt["plain: rows past off[E]"] += case["M"] - case["rows"]
        cnt["plain: empty experts"] += int((np.diff(tensors["input_offsets"][1]) == 0).sum())
    if case["mode"] == "gather":
        cnt["gather: skipped (-1) top-k entries"] += int((topk["topk_ids"][1] < 0).sum())
    if case["mode"] == "masked":
        mk = tensors["mask"][1]
        cnt["masked: mask 0"] += int((mk == 0).sum()); cnt["masked: mask > Mmax"] += int((mk > case["Mmax"]).sum())
        cnt["masked: mask == Mmax"] += int((mk == case["Mmax"]).sum())
for k, val in cnt.items():
    print(f"{val:>10}  {k}")
