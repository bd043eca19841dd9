"""Edge-case probes of `nvfp4 quantize --device cpu`: inputs the documents call errors (must
fail, naming the option/tensor, writing nothing) and corner shapes / values the documents leave
open (reported, compared with the reference where it has an answer).
python3 probes.py NVFP4"""
import os, subprocess, sys, tempfile
import numpy as np
import case_values
import reference_quantize as reference
import safetensors_io

np.seterr(all="ignore")
nvfp4 = sys.argv[1]
d = tempfile.mkdtemp()
rng = np.random.default_rng(5)


def bits(v, dt="bf16"):
    return case_values.to_bits(np.asarray(v, np.float64), dt)


def run(name, tensors, args, topk=None, expect_error=False, expected=None, fmt="nvfp4"):
    inp, out = os.path.join(d, name + "-in.safetensors"), os.path.join(d, name + "-out.safetensors")
    if os.path.exists(out):
        os.remove(out)
    safetensors_io.write_safetensors(inp, tensors)
    cmd = [nvfp4, "quantize", "--input", inp, "--output", out, "--device", "cpu"] + args
    if topk is not None:
        tk = os.path.join(d, name + "-topk.safetensors"); safetensors_io.write_safetensors(tk, topk); cmd += ["--routing", tk]
    p = subprocess.run(cmd, capture_output=True, text=True)
    msg = (p.stderr or p.stdout).strip().replace("\n", " ")[:300]
    status = "error" if p.returncode else "ok"
    verdict = ""
    if expect_error:
        verdict = "as documented" if p.returncode and not os.path.exists(out) else "NOT AS DOCUMENTED"
    elif expected is not None and not p.returncode:
        got, meta = safetensors_io.read_safetensors(out)
        case = {"seed": name, "fmt": fmt}
        bad = []
        for k, v in expected.items():
            g = safetensors_io.as_array(got[k]) if k in got else None
            if g is None or g.shape != np.asarray(v).shape or not np.array_equal(
                    g.view(np.uint8) if g.dtype == np.float32 else g.astype(np.int64) if g.dtype.kind == "i" else g,
                    np.asarray(v).view(np.uint8) if np.asarray(v).dtype == np.float32 else np.asarray(v).astype(np.int64) if np.asarray(v).dtype.kind == "i" else np.asarray(v)):
                bad.append(k)
        verdict = "matches reference" if not bad else f"DIFFERS from reference in {bad}"
    print(f"{name:38s} {status:5s} {verdict:22s} {msg if p.returncode else ''}")


K = 32
x = bits(rng.standard_normal((6, K)))
gs2 = np.array([1.0, 2.0], np.float32)
off = np.array([0, 2, 5], np.int32)
base = {"input": ("BF16", x), "global_scale": ("F32", gs2), "input_offsets": ("I32", off)}
run("plain baseline", base, [], expected=reference.quantize_offsets(x, gs2, off))
# documented errors
run("masked negative mask", {"input": ("BF16", x.reshape(2, 3, K)), "mask": ("I32", np.array([1, -1])), "global_scale": ("F32", gs2)}, ["--masked"], expect_error=True)
run("topk id == E", {"input": ("BF16", x), "global_scale": ("F32", gs2)}, [], topk={"topk_ids": ("I32", np.array([[0], [2], [1], [0], [1], [1]]))}, expect_error=True)
run("topk id < -1", {"input": ("BF16", x), "global_scale": ("F32", gs2)}, [], topk={"topk_ids": ("I32", np.array([[0], [-2], [1], [0], [1], [1]]))}, expect_error=False)
run("block 32 with e4m3", base, ["--block-size", "32"], expect_error=True)
run("odd W with silu", {"input": ("BF16", bits(rng.standard_normal((6, 33)))), "global_scale": ("F32", gs2), "input_offsets": ("I32", off)}, ["--silu-mul"], expect_error=True)
run("routing with masked", {"input": ("BF16", x), "global_scale": ("F32", gs2)}, ["--masked"], topk={"topk_ids": ("I32", np.zeros((6, 1)))}, expect_error=True)
run("--scale-offsets with masked", {"input": ("BF16", x.reshape(2, 3, K)), "mask": ("I32", np.array([1, 3])), "global_scale": ("F32", gs2)}, ["--masked", "--scale-offsets", "prefix"], expect_error=True)
run("K not multiple of B (K=24)", {"input": ("BF16", bits(rng.standard_normal((6, 24)))), "global_scale": ("F32", gs2), "input_offsets": ("I32", off)}, [], expect_error=True)
run("K=32 not multiple of 32? (K=48, mxfp4)", {"input": ("BF16", bits(rng.standard_normal((6, 48)))), "global_scale": ("F32", gs2), "input_offsets": ("I32", off)}, ["--scale-format", "ue8m0", "--block-size", "32"], expect_error=True)
# scale offsets that do not follow the prefix rule
run("scale_offsets with a 128 gap", dict(base, scale_offsets=("I32", np.array([0, 256, 384], np.int32))), [], expect_error=True)
run("scale_offsets prefix given", dict(base, scale_offsets=("I32", np.array([0, 128, 256], np.int32))), [], expected=reference.quantize_offsets(x, gs2, off))
# corners the documents leave open
off0 = np.array([1, 3, 5], np.int32)
run("input_offsets[0] = 1", dict(base, input_offsets=("I32", off0)), [], expected=reference.quantize_offsets(x, gs2, off0))
run("input_offsets decreasing", dict(base, input_offsets=("I32", np.array([0, 3, 2], np.int32))), [], expect_error=True)
run("input_offsets[E] > M", dict(base, input_offsets=("I32", np.array([0, 3, 7], np.int32))), [], expect_error=True)
for g in (0.0, -1.0, np.nan, np.inf, 2.0 ** -149, 3.4e38):
    gsx = np.array([g, 1.0], np.float32)
    run(f"global scale {g}", dict(base, global_scale=("F32", gsx)), [], expected=reference.quantize_offsets(x, gsx, off))
x3 = np.zeros((2, 0, K), np.uint16)
run("masked Mmax = 0", {"input": ("BF16", x3), "mask": ("I32", np.array([0, 5])), "global_scale": ("F32", gs2)}, ["--masked"], expected=reference.quantize_masked(x3, np.array([0, 5]), gs2))
run("masked L = 0", {"input": ("BF16", np.zeros((0, 4, K), np.uint16)), "mask": ("I32", np.zeros(0, np.int32)), "global_scale": ("F32", np.zeros(0, np.float32))}, ["--masked"], expected=reference.quantize_masked(np.zeros((0, 4, K), np.uint16), np.zeros(0, np.int64), np.zeros(0, np.float32)))
run("plain E = 0", {"input": ("BF16", x), "global_scale": ("F32", np.zeros(0, np.float32)), "input_offsets": ("I32", np.array([0], np.int32))}, [], expected=reference.quantize_offsets(x, np.zeros(0, np.float32), np.array([0])))
run("plain M = 0", {"input": ("BF16", np.zeros((0, K), np.uint16)), "global_scale": ("F32", gs2), "input_offsets": ("I32", np.zeros(3, np.int32))}, [], expected=reference.quantize_offsets(np.zeros((0, K), np.uint16), gs2, np.zeros(3, np.int64)))
run("gather T = 0", {"input": ("BF16", np.zeros((0, K), np.uint16)), "global_scale": ("F32", gs2)}, [], topk={"topk_ids": ("I32", np.zeros((0, 2), np.int32))}, expected=reference.quantize_gather(np.zeros((0, K), np.uint16), gs2, np.zeros((0, 2), np.int64)))
ids = np.array([[1, 1], [0, 1], [-1, -1], [1, 0], [0, 0], [1, -1]])
run("gather duplicate ids in a token", {"input": ("BF16", x), "global_scale": ("F32", gs2)}, [], topk={"topk_ids": ("I32", ids)}, expected=reference.quantize_gather(x, gs2, ids))
run("gather topk_ids as I64", {"input": ("BF16", x), "global_scale": ("F32", gs2)}, [], topk={"topk_ids": ("I64", ids)}, expected=reference.quantize_gather(x, gs2, ids))
print("files in", d)
# given scale offsets that are not the prefix rule: accepted or rejected? (help: "If INPUT has
# them, they must follow this rule.")
for so in ([0, 256, 384], [0, 130, 300], [0, 128, 257], [0, 64, 192], [0, 128, 384], [128, 256, 384], [0, 128, 200]):
    so = np.array(so, np.int32)
    for lay in ("swizzled", "linear"):
        try:
            exp = reference.quantize_offsets(x, gs2, off, so, layout=lay)
        except Exception:
            exp = None
        run(f"scale_offsets {list(so)} {lay}", dict(base, scale_offsets=("I32", so)), ["--layout", lay], expected=exp)
