#!/usr/bin/env python3
"""Cross-check `nvfp4 quantize` against the independent reference
(reference_quantize.py, reference_formats.py).

  python3 check_cli.py --cases 200 --seed 1 --nvfp4 .build/release/nvfp4
  python3 check_cli.py --cases 200 --seed 1 --nvfp4 .gpu-bundle/bin/nvfp4 --device cuda

`--device` is passed to the CLI (default cpu); with `cuda` the GPU kernels are checked against
the reference directly, and the CLI fails (no fallback) where there is no GPU.

Case i uses seed S+i; the option combination (row layout x activation x block format x scale
layout x input type: 3*2*3*2*2 = 72) cycles with the case seed, so any 72 consecutive seeds
cover every combination. Every output tensor is compared byte for byte; a mismatch prints the
case seed, tensor, first differing index, expected vs got, and the exit status is 1.
`--replay SEED --keep DIR` reruns one case and keeps its files.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

np.seterr(all="ignore")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402
import reference_quantize as reference  # noqa: E402
import safetensors_io  # noqa: E402


def expected_meta(case):
    return {"format": "nvfp4", "layout": case["layout"],
            "scale_format": "e4m3" if case["fmt"] == "nvfp4" else "ue8m0",
            "block_size": str(reference.FORMATS[case["fmt"]][0]),
            "activation": "silu_mul" if case["silu"] else "identity",
            "row_layout": {"plain": "offsets", "gather": "gathered", "masked": "masked"}[case["mode"]]}


def describe(case):
    keys = ["mode", "silu", "fmt", "layout", "dtype", "K", "E", "M", "T", "topk", "L", "Mmax", "rows",
            "given_soff", "rule", "mask_over"]
    return " ".join(f"{k}={case[k]}" for k in keys if k in case)


def locate(case, name, flat_index, shape):
    idx = np.unravel_index(flat_index, shape) if len(shape) else ()
    return tuple(int(i) for i in idx)


def compare(case, expected, got_tensors, meta, notes):
    errs = []
    seed = case["seed"]
    scale_dt = "F8_E4M3" if case["fmt"] == "nvfp4" else "F8_E8M0"
    for name, exp in expected.items():
        if name not in got_tensors:
            errs.append(f"seed {seed}: tensor {name} missing from output")
            continue
        dt, shape, raw = got_tensors[name]
        exp = np.asarray(exp)
        if name == "output":
            want_dt = "U8"
        elif name == "output_scale":
            want_dt = scale_dt
        elif name == "global_scale":
            want_dt = "F32"
        else:
            want_dt = None    # integer tensors: compare values, note the dtype
        if want_dt and dt != want_dt:
            errs.append(f"seed {seed}: tensor {name} dtype {dt}, expected {want_dt}")
            continue
        if tuple(shape) != tuple(exp.shape):
            errs.append(f"seed {seed}: tensor {name} shape {tuple(shape)}, expected {tuple(exp.shape)}")
            continue
        g = safetensors_io.as_array((dt, shape, raw))
        if want_dt is None:
            if dt not in ("I32", "I64"):
                errs.append(f"seed {seed}: tensor {name} dtype {dt}, expected an integer type")
                continue
            notes.setdefault(f"{name} dtype", set()).add(dt)
            a, b = exp.astype(np.int64).ravel(), g.astype(np.int64).ravel()
        elif want_dt == "F32":
            a, b = exp.astype(np.float32).view(np.uint32).ravel(), g.astype(np.float32).view(np.uint32).ravel()
        else:
            a, b = exp.astype(np.uint8).ravel(), g.astype(np.uint8).ravel()
        diff = np.flatnonzero(a != b)
        if len(diff):
            i = int(diff[0])
            errs.append(f"seed {seed}: tensor {name} differs at flat index {i} {locate(case, name, i, exp.shape)} "
                        f"({len(diff)} of {a.size} differ): expected {int(a[i]):#x} got {int(b[i]):#x}")
    extra = set(got_tensors) - set(expected)
    if extra:
        notes.setdefault("extra tensors", set()).update(extra)
    em = expected_meta(case)
    meta = meta or {}
    for k, v in em.items():
        if meta.get(k) != v:
            errs.append(f"seed {seed}: metadata {k} = {meta.get(k)!r}, expected {v!r}")
    notes.setdefault("input_dtype metadata", set()).add(f"{case['dtype']}->{meta.get('input_dtype')}")
    return errs


def expected_for(case, tensors, topk_t):
    """The reference outputs for a generated case (recomputed from its input tensors)."""
    a = (case["dtype"], case["silu"], case["fmt"], case["layout"])
    x = tensors["input"][1]
    gs = tensors["global_scale"][1]
    if case["mode"] == "plain":
        soff = tensors["scale_offsets"][1] if "scale_offsets" in tensors else None
        return reference.quantize_offsets(x, gs, tensors["input_offsets"][1], soff, *a)
    if case["mode"] == "gather":
        return reference.quantize_gather(x, gs, topk_t["topk_ids"][1], *a)
    return reference.quantize_masked(x, tensors["mask"][1], gs, *a)


def run_case(seed, nvfp4, workdir, notes, keep=None, mutate=None, device="cpu"):
    """mutate: optional callable(f) -> f(); computes the expected outputs inside it (used by
    mutants.py: cases are generated with the real reference, compared with a mutant)."""
    t0 = time.time()
    case, tensors, topk_t, expected = cases.make_case(seed)
    if mutate is not None:
        expected = mutate(lambda: expected_for(case, tensors, topk_t))
    t_ref = time.time() - t0
    d = keep or workdir
    inp = os.path.join(d, f"in-{seed}.safetensors")
    out = os.path.join(d, f"out-{seed}.safetensors")
    safetensors_io.write_safetensors(inp, tensors)
    cmd = [nvfp4, "quantize", "--input", inp, "--output", out, "--device", device,
           "--layout", case["layout"],
           "--scale-format", "e4m3" if case["fmt"] == "nvfp4" else "ue8m0",
           "--block-size", str(reference.FORMATS[case["fmt"]][0])]
    if case["silu"]:
        cmd.append("--silu-mul")
    if case["mode"] == "masked":
        cmd.append("--masked")
    if case.get("rule"):
        cmd += ["--scale-offsets", case["rule"]]
    if topk_t is not None:
        tk = os.path.join(d, f"topk-{seed}.safetensors")
        safetensors_io.write_safetensors(tk, topk_t)
        cmd += ["--routing", tk]
    t1 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    t_cli = time.time() - t1
    if p.returncode != 0:
        errs = [f"seed {seed}: nvfp4 exited {p.returncode}: {(p.stderr or p.stdout).strip()[:400]}"]
    else:
        got, meta = safetensors_io.read_safetensors(out)
        errs = []
        if case.get("rule") == "closed-form":
            # the closed-form rule is not defined in the documents: take the tool's
            # scale_offsets, check they are a valid layout (start 0, multiples of 128, each
            # expert >= roundUp(count, 128) rows) and compare everything else with them
            so = safetensors_io.as_array(got["scale_offsets"]).astype(np.int64) if "scale_offsets" in got else None
            off = tensors["input_offsets"][1].astype(np.int64)
            if so is None or so.shape != off.shape or so[0] != 0 or (so % 128).any() or \
                    (np.diff(so) < reference.round_up(np.diff(off), 128)).any():
                errs.append(f"seed {seed}: closed-form scale_offsets invalid: {None if so is None else so[:8].tolist()}")
            else:
                expected = reference.quantize_offsets(tensors["input"][1], tensors["global_scale"][1], off, so,
                                                      case["dtype"], case["silu"], case["fmt"], case["layout"])
                guess = reference.round_up(off[:-1] + np.arange(len(off) - 1) * 127, 128)
                guess = np.concatenate([guess, [reference.round_up(off[-1] + (len(off) - 1) * 127, 128)]])
                notes.setdefault("closed-form offsets == roundUp(off[e] + 127*e, 128)", set()).add(
                    bool(np.array_equal(guess, so)))
        errs += compare(case, expected, got, meta, notes)
    if keep is None:
        for f in os.listdir(d):
            if f.endswith(f"-{seed}.safetensors"):
                os.remove(os.path.join(d, f))
    return case, errs, t_ref, t_cli, " ".join(cmd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nvfp4", default=".build/release/nvfp4")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="the CLI's --device")
    ap.add_argument("--replay", type=int, help="run only this case seed")
    ap.add_argument("--keep", help="directory to keep the case files in")
    ap.add_argument("--max-rows", type=int, default=cases.MAX_ROWS, help="rows per case at most")
    ap.add_argument("--max-elems", type=int, default=cases.MAX_ELEMS, help="input values per case at most")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    cases.MAX_ROWS, cases.MAX_ELEMS = a.max_rows, a.max_elems
    seeds = [a.replay] if a.replay is not None else list(range(a.seed, a.seed + a.cases))
    notes = {}
    counts = {}
    bad = 0
    t0 = time.time()
    tref = tcli = 0.0
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
        for s in seeds:
            case, errs, t_ref, t_cli, cmd = run_case(s, a.nvfp4, tmp, notes, a.keep, device=a.device)
            tref += t_ref; tcli += t_cli; rows += case["rows"]
            key = (case["mode"], "silu" if case["silu"] else "id", case["fmt"], case["layout"], case["dtype"])
            counts[key] = counts.get(key, 0) + 1
            if a.verbose or errs:
                print(f"case {s}: {describe(case)} -> {'OK' if not errs else 'MISMATCH'}", flush=True)
            if errs:
                bad += 1
                for e in errs[:8]:
                    print("  " + e, flush=True)
                if a.keep:
                    print("  cmd: " + cmd)
    n = len(seeds)
    print(f"\n{n} cases, {rows} quantized rows, {bad} with mismatches; "
          f"{time.time() - t0:.1f} s (reference {tref:.1f} s, CLI {tcli:.1f} s)")
    by = {}
    for (mode, act, fmt, layout, dtype), c in counts.items():
        for k in (mode, act, fmt, layout, dtype):
            by[k] = by.get(k, 0) + c
    print("per option: " + ", ".join(f"{k} {v}" for k, v in by.items()))
    for k, v in notes.items():
        print(f"note: {k}: {sorted(v)}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
