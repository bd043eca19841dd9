"""Mutation check of the harness: deliberately wrong variants of the reference must be caught.
python3 mutants.py NVFP4 [CASES] [MUTANT,...]

A mutant replaces a name in the module that looks it up: reference_quantize calls the formats
through `formats.NAME`, so a swapped reference_formats.NAME reaches the quantizer too."""
import sys, tempfile
import numpy as np
import reference_formats as formats
import reference_quantize as reference
import check_cli as C

nvfp4 = sys.argv[1]
ncases = int(sys.argv[2]) if len(sys.argv) > 2 else 72
orig_formats = {k: getattr(formats, k) for k in dir(formats)}
orig_reference = {k: getattr(reference, k) for k in dir(reference)}

def _ties_up(midpoint_count):
    """Ties rounded up (away from zero) in the table with `midpoint_count` midpoints."""
    real = orig_formats["_round_to_table"]
    def rt(a, mids):
        if len(mids) == midpoint_count:
            return np.minimum(np.searchsorted(mids, a, side="right"), midpoint_count)
        return real(a, mids)
    formats._round_to_table = rt
def m_e2m1_ties_away(): _ties_up(7)
def m_e4m3_ties_up(): _ties_up(126)
def m_ue8m0_nearest():
    def enc(sf):
        sf = np.asarray(sf, np.float32).astype(np.float64)
        c = np.clip(np.rint(np.log2(np.where(sf > 0, sf, 1.0))) + 127, 0, 254)
        return np.where(sf > 0, c, 0).astype(np.uint8)
    formats.ue8m0_encode = enc
def m_ue8m0_strict_up():   # pow2 exactly goes one up
    real = orig_formats["ue8m0_encode"]
    def enc(sf):
        c = real(sf).astype(np.int64)
        sf64 = np.asarray(sf, np.float32).astype(np.float64)
        m, e = np.frexp(np.where(sf64 > 0, sf64, 1))
        return np.where((m == 0.5) & (sf64 > 2**-127) & (c < 254), c + 1, c).astype(np.uint8)
    formats.ue8m0_encode = enc
def m_outscale_one_div():
    def bos(amax, gs, fmt):
        b, o = orig_reference["block_out_scale"](amax, gs, fmt)
        sfp = formats.e4m3_decode(b) if fmt == "nvfp4" else formats.ue8m0_decode(b)
        with np.errstate(all="ignore"):
            o2 = (np.asarray(gs, np.float32) / sfp).astype(np.float32)
        return b, np.where(o == 0, np.float32(0), o2).astype(np.float32)
    reference.block_out_scale = bos
def m_no_fma():
    formats.fma32 = lambda a, b, c: (np.float32(a) * np.float32(b) + np.float32(c)).astype(np.float32) if np.isscalar(a) else ((np.asarray(a, np.float32) * np.asarray(b, np.float32)).astype(np.float32) + np.asarray(c, np.float32)).astype(np.float32)
def m_neg_zero_unsigned():
    real = orig_formats["e2m1_encode"]
    formats.e2m1_encode = lambda y: np.where(real(y) == 8, np.uint8(0), real(y)).astype(np.uint8)
def m_bf16_truncate():
    formats.round_to_input_type = lambda f, dt: (formats.bf16_bits_to_f32((np.asarray(f, np.float32).view(np.uint32) >> 16).astype(np.uint16)) if dt == "bf16" else orig_formats["round_to_input_type"](f, dt))
def m_r6_div():
    def bos(amax, gs, fmt):
        amax = np.asarray(amax, np.float32); gs = np.asarray(gs, np.float32)
        sf = (gs * (amax / np.float32(6))).astype(np.float32)
        # reuse the rest by inverting: feed an amax giving this sf
        return orig_reference["block_out_scale"]((sf / gs / reference.R6).astype(np.float32), gs, fmt)
    reference.block_out_scale = bos
def m_nan_zero_code():
    real = orig_formats["e2m1_encode"]
    formats.e2m1_encode = lambda y: np.where(np.isnan(np.asarray(y, np.float32)), np.uint8(0), real(y)).astype(np.uint8)
def m_exp_poly_short():
    formats.exp_silu = lambda x: np.exp(np.asarray(x, np.float32)).astype(np.float32)
def m_linear_width():
    reference.LINEAR_PADDED = True
def m_gather_order_kmajor():
    def rl(ids, E):
        ids = np.asarray(ids, np.int64); T, k = ids.shape
        flatT = ids.T.ravel(); valid = np.flatnonzero(flatT >= 0)
        order = valid[np.argsort(flatT[valid], kind="stable")]
        kk, tt = order // T, order % T
        counts = np.bincount(flatT[valid], minlength=E)[:E]
        off = np.concatenate([[0], np.cumsum(counts)])
        dest = np.full((T, k), -1); dest[tt, kk] = np.arange(len(order))
        return off, tt, dest
    reference.routing_layout = rl

def m_silu_recip():
    real_exp = orig_formats["exp_silu"]
    def sm(g, u, dtype):
        g = np.asarray(g, np.float32); u = np.asarray(u, np.float32)
        with np.errstate(all="ignore"):
            e = real_exp(-g)
            y = (g * (np.float32(1) / (np.float32(1) + e)).astype(np.float32)).astype(np.float32) * u
        return formats.round_to_input_type(y.astype(np.float32), dtype)
    formats.silu_mul = sm

muts = [v for k, v in list(globals().items()) if k.startswith("m_")]
if len(sys.argv) > 3:
    muts = [v for v in muts if v.__name__ in sys.argv[3].split(",")]
def restore():
    for module, originals in ((formats, orig_formats), (reference, orig_reference)):
        for k, v in originals.items():
            setattr(module, k, v)


for mut in muts:
    def mutate(f, mut=mut):
        mut()
        try:
            return f()
        finally:
            restore()
    restore()
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        for s in range(1000, 1000 + ncases):
            try:
                case, errs, *_ = C.run_case(s, nvfp4, d, {}, mutate=mutate)
            except Exception as e:
                errs = [repr(e)]
            bad += bool(errs)
    print(f"{mut.__name__}: {bad}/{ncases} cases caught", flush=True)
