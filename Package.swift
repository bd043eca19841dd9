// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "swift-nvfp4",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "NVFP4", targets: ["NVFP4"]),
        .library(name: "NVFP4CUDA", targets: ["NVFP4CUDA"]),
        .executable(name: "nvfp4", targets: ["nvfp4"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        // Pure Swift: the format, layouts, the reference and fast CPU quantizers, safetensors I/O.
        .target(name: "NVFP4"),
        // Builds without CUDA; loads libcuda and libnvrtc at run time.
        .target(
            name: "NVFP4CUDA",
            dependencies: ["NVFP4", .product(name: "Crypto", package: "swift-crypto")],
            resources: [
                .embedInCode("Kernels/ExpertsQuant/experts_quant.cu"),
                .embedInCode("Kernels/ExpertsQuant/quantization_steps.cu"),
                .embedInCode("Kernels/ExpertsQuant/expert_tables.cu"),
                .embedInCode("Kernels/ExpertsQuant/tuned_units.cu"),
                .embedInCode("Kernels/ExpertsQuant/tuned_row_units.cu"),
                .embedInCode("Kernels/ExpertsQuant/tuned_kernel.cu"),
                .embedInCode("Kernels/ExpertsQuant/seed_baseline.cu"),
                .embedInCode("Kernels/ExpertsQuant/row_steps_and_checks.cu"),
                .embedInCode("Kernels/bench_support.cu"), .embedInCode("Kernels/routing_layout.cu"), .embedInCode("Kernels/routing_layout_blocks.cu"),
            ]
        ),
        .executableTarget(
            name: "nvfp4",
            dependencies: [
                "NVFP4", "NVFP4CUDA",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(name: "NVFP4TestSupport", dependencies: ["NVFP4"], path: "Tests/NVFP4TestSupport"),
        .testTarget(name: "NVFP4Tests", dependencies: ["NVFP4", "NVFP4TestSupport"]),
        .testTarget(name: "NVFP4CUDATests", dependencies: ["NVFP4", "NVFP4CUDA", "NVFP4TestSupport"]),
        .testTarget(name: "NVFP4CLITests", dependencies: ["NVFP4", "NVFP4TestSupport"]),
    ]
)
