#!/usr/bin/env bash
# Prints the expert-quantization kernel as NVRTC compiles it: the parts of
# Sources/NVFP4CUDA/Kernels/ExpertsQuant joined in KernelSpecialization.sourceParts' order, each
# after a `#line` directive.
dir="$(dirname "$0")/../../Sources/NVFP4CUDA/Kernels/ExpertsQuant"
for part in experts_quant.cu quantization_steps.cu expert_tables.cu tuned_units.cu tuned_kernel.cu \
            seed_baseline.cu row_steps_and_checks.cu; do
    printf '#line 1 "%s"\n' "$part"
    cat "$dir/$part"
done
