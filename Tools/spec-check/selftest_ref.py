"""Checks of the reference's own building blocks against exact arithmetic (fractions)."""
import math, sys
from fractions import Fraction
import numpy as np
import reference_formats as formats

rng = np.random.default_rng(1)
fails = 0

def f32_round_exact(q):
    """Correctly round a Fraction to float32 (RNE), via exhaustive neighbour check."""
    if q == 0: return np.float32(0.0)
    d = np.float32(float(q))       # float(q) is correctly rounded to double; then adjust
    cands = [d, np.nextafter(d, np.float32(np.inf)), np.nextafter(d, np.float32(-np.inf))]
    cands = [c for c in cands if np.isfinite(c)]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - q), int(np.array(c).view(np.uint32)) & 1))
    return best

# fma32 against exact
def rand_f32(n):
    m = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return m[np.isfinite(m)]
N = 20000
a = rand_f32(N); b = rand_f32(N); c = rand_f32(N)
n = min(len(a), len(b), len(c)); a, b, c = a[:n], b[:n], c[:n]
# make many cases where c ~ -a*b to stress cancellation and midpoints
sel = rng.random(n) < 0.5
c = np.where(sel, (a.astype(np.float64) * b).astype(np.float32) * np.float32(-1), c)
# scale to avoid overflow
ok = np.isfinite(a.astype(np.float64) * b) & (np.abs(a.astype(np.float64) * b) < 1e38)
a, b, c = a[ok], b[ok], c[ok]
got = formats.fma32(a, b, c)
for i in range(len(a)):
    q = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
    e = f32_round_exact(q)
    if not (got[i] == e or (got[i] == 0 and e == 0)):
        fails += 1
        if fails < 5: print("fma mismatch", a[i], b[i], c[i], got[i], e)
# midpoint-targeted: p + c exactly at a float32 midpoint + tiny
cnt = 0
for i in range(3000):
    x = np.float32(rng.uniform(1, 2)); y = np.float32(rng.uniform(1, 2))
    p = Fraction(float(x)) * Fraction(float(y))
    # choose c so that p + c is near a float32 midpoint of 1.x range
    mid = Fraction(float(np.float32(rng.uniform(4, 8)))) + Fraction(1, 2**22)  # midpoint in [4,8) (ulp 2^-21)
    cc = np.float32(float(mid - p))
    q = p + Fraction(float(cc))
    e = f32_round_exact(q)
    g = formats.fma32(np.array([x]), np.array([y]), np.array([cc]))[0]
    if g != e:
        fails += 1; print("fma mid mismatch", x, y, cc, g, e)
    cnt += 1
# double-rounding traps: p = 2^i (1 - a^2 2^-46) exactly, c + 2^i on (or next to) a float32
# midpoint, so fl64(p + c) lands on the midpoint while the exact sum is just off it
for t in range(20000):
    i = int(rng.integers(-20, 20)); aa = int(rng.integers(1, 2**11))
    x = np.float32(2.0**i * (1 + aa * 2.0**-23)); y = np.float32(1 - aa * 2.0**-23)
    if rng.random() < 0.5: y = -y
    e = int(rng.integers(i + 23, i + 27))
    c = np.float32(2.0**e * (1 + int(rng.integers(0, 2**23)) * 2.0**-23))
    if rng.random() < 0.5: c = -c
    q = Fraction(float(x)) * Fraction(float(y)) + Fraction(float(c))
    ex = f32_round_exact(q)
    g = formats.fma32(np.array([x]), np.array([y]), np.array([c]))[0]
    if g != ex:
        fails += 1
        if fails < 10: print("fma trap mismatch", x, y, c, g, ex)
    cnt += 1
print("fma checked", len(a) + cnt)

# E4M3: encode all decoded values back; midpoints ties to even
v = formats.E4M3_VALUES.astype(np.float32)
assert (formats.e4m3_encode(v) == np.arange(127)).all()
assert (formats.e4m3_decode(np.arange(127, dtype=np.uint8)) == v).all()
mids = formats.E4M3_MIDPOINTS.astype(np.float32)
assert (mids.astype(np.float64) == formats.E4M3_MIDPOINTS).all()
enc = formats.e4m3_encode(mids)
exp = np.where(np.arange(126) % 2 == 0, np.arange(126), np.arange(126) + 1)
assert (enc == exp).all(), (enc, exp)
assert formats.e4m3_encode(np.float32(np.inf)) == 126 and formats.e4m3_encode(np.float32(1e30)) == 126
assert formats.e4m3_encode(np.float32(464.0)) == 126 and formats.e4m3_encode(np.float32(2**-10)) == 0
assert formats.e4m3_encode(np.float32(2**-10 * 1.0001)) == 1
# UE8M0
assert formats.ue8m0_encode(np.float32(1.0)) == 127 and formats.ue8m0_encode(np.float32(1.0000001)) == 128
assert formats.ue8m0_encode(np.float32(2.0**-127)) == 0 and formats.ue8m0_encode(np.float32(2.0**-127 * 1.5)) == 1
assert formats.ue8m0_encode(np.float32(2.0**-149)) == 0 and formats.ue8m0_encode(np.float32(0)) == 0
assert formats.ue8m0_encode(np.float32(2.0**127)) == 254 and formats.ue8m0_encode(np.float32(3e38)) == 254
assert formats.ue8m0_encode(np.float32(np.inf)) == 254
assert formats.ue8m0_decode(np.uint8(0)) == np.float32(2.0**-127)
# E2M1
y = np.array([0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 6, 7, 1e9, np.inf, -0.0, -0.1, -0.25, -5, -np.inf, np.nan, 0.2500001, 4.999], np.float32)
exp = [0, 0, 2, 2, 4, 4, 6, 6, 7, 7, 7, 7, 8, 8, 8, 14, 15, 7, 1, 6]
got = formats.e2m1_encode(y)
assert list(got) == exp, (list(got), exp)

# exp_silu accuracy vs math.exp (<= 3 ulp as documented)
xs = np.concatenate([rng.uniform(-104, 89, 200000), np.linspace(-104, 89, 100001)]).astype(np.float32)
e = formats.exp_silu(xs)
worst = 0
for x, g in zip(xs[::7], e[::7]):
    t = math.exp(float(x))
    if t == 0 or t > 3.4e38: continue
    ulp = float(np.spacing(np.float32(t)))
    worst = max(worst, abs(float(g) - t) / ulp)
print("exp_silu worst ulp (sample)", round(worst, 3))
if worst > 3: fails += 1
print("special exp", formats.exp_silu(np.array([np.nan, -np.inf, np.inf, 0, -0.0, -104, 89, 100], np.float32)))
print("silu_mul specials", formats.silu_mul(np.array([np.inf, -np.inf, np.nan, 0, 1e30, -1e30], np.float32), np.ones(6, np.float32), "bf16"))
print("FAILS", fails)
sys.exit(1 if fails else 0)
