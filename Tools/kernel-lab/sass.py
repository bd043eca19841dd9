#!/usr/bin/env python3
"""SASS of the tuned kernel without a GPU: NVRTC and cuobjdump from PyPI.

Compiles the expert-quantization kernel as join.sh joins it (SILU_STANDIN=1 for bfloat16
SiLU·mul, as run.sh) for sm_90a and prints ptxas's registers and spills for nvfp4_quantize_tuned.
  --count   also the instructions of one row of a line unit at this specialization (the stretch
            between its scale-word shuffles): the route each block takes in practice and the one
            behind its rarely taken branch, with the opcodes of the first
  --sweep   only the spill check over the configurations compiled for 64 registers (hidden sizes x
            both layouts x offsets/gathered/masked rows x both input types x block formats x
            identity/SiLU·mul)
  -D NAME=V overrides a compile-time constant (defaults: the plain bfloat16 swizzled kernel)
Needs `pip install nvidia-cuda-nvrtc nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm` (their nvidia/cu13 folders);
NVFP4_NVRTC_LIBRARY picks another libnvrtc (e.g. 13.0's, the GPU host's: `pip download nvidia-cuda-nvrtc==13.0.88`).
"""
import argparse
import collections
import ctypes
import itertools
import glob
import os
import re
import site
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULTS = {"NVFP4_INPUT_BF16": "1", "NVFP4_SWIZZLED": "1", "NVFP4_HARDWARE_E2M1": "0", "NVFP4_BLOCK_SIZE": "16",
            "NVFP4_SCALE_UE8M0": "0", "NVFP4_SILU_MUL": "0", "NVFP4_ROW_MAP": "0"}


def wheel_file(pattern):
    roots = site.getsitepackages() + [site.getusersitepackages()]
    for root in roots:
        found = glob.glob(os.path.join(root, "nvidia", "cu13", pattern))
        if found:
            return found[0]
    sys.exit(f"sass.py: no nvidia/cu13/{pattern} in {roots}: pip install nvidia-cuda-nvrtc nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm")


def compile_cubin(source, hidden_size, defines):
    nvrtc = ctypes.CDLL(os.environ.get("NVFP4_NVRTC_LIBRARY") or wheel_file("lib/libnvrtc.so.13"))
    options = ["--gpu-architecture=sm_90a", "--ptxas-options=-v", f"-DNVFP4_HIDDEN_SIZE={hidden_size}"]
    options += [f"-D{name}={value}" for name, value in {**DEFAULTS, **defines}.items()]
    program = ctypes.c_void_p()
    nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"experts_quant.cu", 0, None, None)
    status = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*[o.encode() for o in options]))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    log = log.value.decode()
    if status != 0:
        return None, log
    nvrtc.nvrtcGetCUBINSize(program, ctypes.byref(size))
    cubin = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetCUBIN(program, cubin)
    return cubin.raw, log


def tuned_report(log, entry="nvfp4_quantize_tuned"):
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if f"entry function '{entry}'" in line), None)
    if start is None:
        return None
    text = " ".join(lines[start + 1:start + 4])
    registers = re.search(r"Used (\d+) registers", text).group(1)
    spills = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", text).groups()
    return int(registers), tuple(int(s) for s in spills)


def sass_rows(cubin):
    with tempfile.TemporaryDirectory() as directory:
        # The wheels install cuobjdump and the nvdisasm it runs without their execute bits: run
        # copies that have them.
        for tool in ("cuobjdump", "nvdisasm"):
            with open(wheel_file(f"bin/{tool}"), "rb") as source, open(os.path.join(directory, tool), "wb") as copy:
                copy.write(source.read())
            os.chmod(os.path.join(directory, tool), 0o755)
        path = os.path.join(directory, "kernel.cubin")
        with open(path, "wb") as file:
            file.write(cubin)
        environment = dict(os.environ, PATH=directory + os.pathsep + os.environ.get("PATH", ""))
        result = subprocess.run([os.path.join(directory, "cuobjdump"), "-sass", path], capture_output=True, text=True,
                                env=environment)
    if "Function : nvfp4_quantize_tuned" not in result.stdout:
        sys.exit(f"sass.py: cuobjdump gave no SASS for nvfp4_quantize_tuned: {result.stderr.strip()}")
    function = result.stdout[result.stdout.index("Function : nvfp4_quantize_tuned"):]
    return [(int(m.group(1), 16), m.group(2).strip())
            for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;/]+);", function)]


def count_line_unit_row(rows):
    """One row of a line unit: between the second and third `SHFL.BFLY …, 0x1` (its scale word)."""
    shuffles = [i for i, (_, text) in enumerate(rows) if text.startswith("SHFL.BFLY") and ", 0x1," in text]
    if len(shuffles) < 3:
        return "no line-unit rows in this specialization"
    region = rows[shuffles[1]:shuffles[2]]
    index = {address: i for i, (address, _) in enumerate(region)}
    branches = [(i, text) for i, (_, text) in enumerate(region) if re.search(r"BRA !?P\d, 0x", text)]
    report = [f"one row of a line unit: {len(region)} instructions in all"]
    if branches:  # the codes' route: a two-predicate branch to the common route, the rare one falls through
        at, text = branches[-1]
        target = index.get(int(text.split("0x")[-1], 16))
        if target is not None:
            store = next(k for k in range(target, len(region)) if region[k][1].startswith("STG.E.64"))
            common = [text for _, text in region[target:store + 1]]
            opcodes = collections.Counter(t.split()[1] if t.startswith("@") else t.split()[0] for t in common)
            report.append(f"  before the codes' branch: {at}; codes, taken route: {len(common)}; "
                          f"rare route: {target - at - 1}")
            report.append("  taken route: " + ", ".join(f"{n} {op}" for op, n in opcodes.most_common()))
    return "\n".join(report)


def sweep(source):
    failures = 0
    for hidden_size in (16, 48, 80, 208, 2048, 2880, 4096, 7168, 16384):
        for swizzled, row_map, bf16 in itertools.product(("1", "0"), ("0", "1", "2"), ("1", "0")):
            for block, ue8m0, silu in (("16", "0", "0"), ("16", "1", "0"), ("32", "1", "0"), ("16", "0", "1"), ("16", "1", "1")):
                if hidden_size % int(block):
                    continue
                defines = {"NVFP4_SWIZZLED": swizzled, "NVFP4_ROW_MAP": row_map, "NVFP4_BLOCK_SIZE": block,
                           "NVFP4_SCALE_UE8M0": ue8m0, "NVFP4_SILU_MUL": silu, "NVFP4_INPUT_BF16": bf16}
                cubin, log = compile_cubin(source(silu == "1" and bf16 == "1"), hidden_size, defines)
                for entry in ("nvfp4_quantize_tuned", "nvfp4_quantize_tuned_small"):
                    report = tuned_report(log, entry) if cubin else (0, None)
                    if report is None:  # the small kernel exists only where units take two steps
                        continue
                    registers, spills = report
                    if spills != (0, 0, 0):
                        failures += 1
                        print(f"K={hidden_size} {defines} {entry}: {registers} registers, stack/spill stores/loads {spills}")
    print("sweep: no spill or stack frame" if failures == 0 else f"sweep: {failures} configurations spill or fail")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-K", "--hidden-size", type=int, default=7168)
    parser.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--count", action="store_true")
    parser.add_argument("--sweep", action="store_true")
    arguments = parser.parse_args()

    def source(silu_standin):
        environment = dict(os.environ, SILU_STANDIN="1" if silu_standin else "")
        return subprocess.run(["bash", os.path.join(HERE, "join.sh")], capture_output=True, text=True,
                              env=environment, check=True).stdout

    if arguments.sweep:
        sys.exit(1 if sweep(source) else 0)
    defines = dict(d.split("=", 1) for d in arguments.define)
    cubin, log = compile_cubin(source(defines.get("NVFP4_SILU_MUL") == "1"), arguments.hidden_size, defines)
    if cubin is None:
        sys.exit(log)
    registers, (stack, stores, loads) = tuned_report(log)
    print(f"nvfp4_quantize_tuned, K = {arguments.hidden_size}: {registers} registers, {stack} bytes stack frame, "
          f"{stores}/{loads} bytes spill stores/loads")
    if arguments.count:
        print(count_line_unit_row(sass_rows(cubin)))


if __name__ == "__main__":
    main()
