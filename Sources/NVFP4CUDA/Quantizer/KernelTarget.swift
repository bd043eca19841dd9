import NVFP4

/// The code a device runs: its NVRTC architecture and how E2M1 conversion is done there.
public struct KernelTarget: Hashable, Sendable, CustomStringConvertible {
    /// NVRTC's `--gpu-architecture` value, e.g. `sm_90a`.
    public let architecture: String
    /// `cvt.rn.satfinite.e2m1x2.f32` exists (Blackwell); else the software conversion is used.
    public let hardwareE2M1: Bool

    public init(architecture: String, hardwareE2M1: Bool) {
        self.architecture = architecture
        self.hardwareE2M1 = hardwareE2M1
    }

    /// The target for a compute capability: 9.0 → sm_90a (software E2M1); 10.0, 10.3, 12.0,
    /// 12.1 → sm_100a, sm_103a, sm_120a, sm_121a (hardware E2M1). Anything else is an
    /// ``NVFP4Error/unsupportedArchitecture(major:minor:)``, never a silent fallback.
    public static func forComputeCapability(major: Int, minor: Int) throws -> KernelTarget {
        switch (major, minor) {
        case (9, 0): return KernelTarget(architecture: "sm_90a", hardwareE2M1: false)
        case (10, 0), (10, 3), (12, 0), (12, 1):
            return KernelTarget(architecture: "sm_\(major)\(minor)a", hardwareE2M1: true)
        default: throw NVFP4Error.unsupportedArchitecture(major: major, minor: minor)
        }
    }

    /// The targets CI compiles for without a GPU.
    public static let compileChecked: [KernelTarget] = [
        KernelTarget(architecture: "sm_90a", hardwareE2M1: false),
        KernelTarget(architecture: "sm_100a", hardwareE2M1: true),
    ]

    public var description: String { "\(architecture) (\(hardwareE2M1 ? "hardware" : "software") E2M1)" }
}

/// How the kernel maps output rows to input rows (its `NVFP4_ROW_MAP`).
public enum RowMap: Int, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    /// Offsets layout: output row r reads input row r.
    case rows = 0
    /// Offsets layout with a gather: output row r reads input row `permutation[r]`.
    case gathered = 1
    /// Masked layout: `[L, Mmax, ·]` with valid rows per group.
    case masked = 2

    public var description: String { ["rows", "gathered", "masked"][rawValue] }
}

/// One compiled specialization of the expert-quantization kernel (Kernels/ExpertsQuant).
public struct KernelSpecialization: Hashable, Sendable, CustomStringConvertible {
    public let target: KernelTarget
    public let elementType: ElementType
    public let hiddenSize: Int
    public let scaleLayout: ScaleLayout
    public let blockFormat: BlockFormat
    public let activation: Activation
    public let rowMap: RowMap

    public init(target: KernelTarget, elementType: ElementType, hiddenSize: Int, scaleLayout: ScaleLayout,
                blockFormat: BlockFormat = .nvfp4, activation: Activation = .identity, rowMap: RowMap = .rows) {
        self.target = target
        self.elementType = elementType
        self.hiddenSize = hiddenSize
        self.scaleLayout = scaleLayout
        self.blockFormat = blockFormat
        self.activation = activation
        self.rowMap = rowMap
    }

    /// The configuration `seed` and `baseline` exist for: NVFP4 blocks, identity, offsets, no gather.
    public var isPlain: Bool { blockFormat == .nvfp4 && activation == .identity && rowMap == .rows }

    /// The tuned kernel looks silu up in ``SiLUTable`` (staged in shared memory): bfloat16 SiLU·mul.
    public var looksUpSiLU: Bool { activation == .siluMul && elementType == .bfloat16 }

    /// The small kernel (``smallKernelEntryPoint``: the tuned kernel with row units of one step and
    /// no line units) exists where the tuned kernel's row units take two steps — 16-value blocks
    /// without SiLU·mul (two 16-byte loads a block) on rows of more than 32 scale bytes — for the
    /// offsets layout with or without a gather (tuned_units.cu's `NVFP4_SMALL_KERNEL`; the
    /// compile test checks that the two agree).
    public var hasSmallKernel: Bool {
        blockFormat.blockSize == 16 && activation == .identity && rowMap != .masked
            && ScaleGeometry(layout: scaleLayout, hiddenSize: hiddenSize, blockSize: blockFormat.blockSize).bytesPerRow > 32
    }

    /// The small kernel's entry point, in the specializations that have it (``hasSmallKernel``).
    public static let smallKernelEntryPoint = "nvfp4_quantize_tuned_small"

    /// The kernel's files (Kernels/ExpertsQuant), embedded at build time, in the order they are
    /// joined: each sees what the ones before it declare.
    static let sourceParts: [(name: String, text: [UInt8])] = [
        ("experts_quant.cu", PackageResources.experts_quant_cu),
        ("silu_table.cu", siluTablePart),
        ("quantization_steps.cu", PackageResources.quantization_steps_cu),
        ("expert_tables.cu", PackageResources.expert_tables_cu),
        ("tuned_units.cu", PackageResources.tuned_units_cu),
        ("tuned_row_units.cu", PackageResources.tuned_row_units_cu),
        ("tuned_kernel.cu", PackageResources.tuned_kernel_cu),
        ("seed_baseline.cu", PackageResources.seed_baseline_cu),
        ("row_steps_and_checks.cu", PackageResources.row_steps_and_checks_cu),
    ]

    /// The one generated part: ``SiLUTable``'s band and entries as `kSiLUTableFirst`,
    /// `kSiLUTableEntriesPerSign` and `kSiLUTableBits`, compiled where `NVFP4_SILU_TABLE` is set
    /// (bfloat16 SiLU·mul). Generated from the CPU's `silu` and its table's layout, so the GPU's
    /// table cannot drift from them; the text is part of the source, hence of the cache key.
    static let siluTablePart: [UInt8] = {
        var text = "// silu_table.cu — generated by KernelSpecialization.siluTablePart from NVFP4's SiLUTable:\n"
            + "// silu(g) as float bits for the bfloat16 gates of [2^-25, 128), positive gates first.\n"
            + "#if NVFP4_SILU_TABLE\n"
            + "constexpr uint32_t kSiLUTableFirst = 0x\(String(SiLUTable.firstMagnitude, radix: 16));  // bfloat16 bits of 2^-25\n"
            + "constexpr uint32_t kSiLUTableEntriesPerSign = \(SiLUTable.entriesPerSign);\n"
            + "__device__ const __align__(16) uint32_t kSiLUTableBits[2 * kSiLUTableEntriesPerSign] = {\n"
        for (i, bits) in SiLUTable.entries.enumerated() {
            text += "0x\(String(bits, radix: 16))" + (i % 8 == 7 ? ",\n" : ", ")
        }
        return Array((text + "};\n#endif\n").utf8)
    }()

    /// The kernel source: the parts joined (``joinedKernelSource(_:)``).
    public static let source: [UInt8] = joinedKernelSource(sourceParts)
    /// NVRTC's program name (the first part's file name).
    public static let programName = "experts_quant.cu"

    /// NVRTC options besides the architecture, in a fixed order (they are part of the cache key).
    public var options: [String] {
        [
            "-std=c++17",
            "--ptxas-options=-v",
            "-DNVFP4_HIDDEN_SIZE=\(hiddenSize)",
            "-DNVFP4_INPUT_BF16=\(elementType == .bfloat16 ? 1 : 0)",
            "-DNVFP4_SWIZZLED=\(scaleLayout == .swizzled ? 1 : 0)",
            "-DNVFP4_HARDWARE_E2M1=\(target.hardwareE2M1 ? 1 : 0)",
            "-DNVFP4_BLOCK_SIZE=\(blockFormat.blockSize)",
            "-DNVFP4_SCALE_UE8M0=\(blockFormat.scaleEncoding == .ue8m0 ? 1 : 0)",
            "-DNVFP4_SILU_MUL=\(activation == .siluMul ? 1 : 0)",
            "-DNVFP4_ROW_MAP=\(rowMap.rawValue)",
        ]
    }

    /// Every NVRTC option, the architecture first: what ``KernelCache`` passes to NVRTC.
    public var compilerOptions: [String] { ["--gpu-architecture=\(target.architecture)"] + options }

    public var request: KernelRequest {
        KernelRequest(source: Self.source, programName: Self.programName, options: options,
                      architecture: target.architecture)
    }

    public var description: String {
        "\(Self.programName)[\(target.architecture), \(elementType), K=\(hiddenSize), \(scaleLayout), "
            + "\(blockFormat), \(activation), \(rowMap)]"
    }

    /// The quantizer variants this specialization has: all three when plain, else `tuned`.
    public var variants: [QuantizerVariant] { isPlain ? QuantizerVariant.allCases : [.tuned] }

    /// The unfused steps and conversion checks every specialization has.
    public static let conversionEntryPoints = [
        "nvfp4_gather_rows", "nvfp4_silu_mul_rows",
        "nvfp4_round_to_e2m1_all", "nvfp4_encode_e4m3_all", "nvfp4_encode_ue8m0_all", "nvfp4_silu_all",
    ]

    /// The check of the tuned kernel's silu table route, in the specializations that have it.
    public static let siluTableEntryPoint = "nvfp4_silu_table_all"

    /// Every entry point of this specialization.
    public var entryPoints: [String] {
        variants.map(\.entryPoint) + (hasSmallKernel ? [Self.smallKernelEntryPoint] : []) + Self.conversionEntryPoints
            + (looksUpSiLU ? [Self.siluTableEntryPoint] : [])
    }
}

/// Kernel files joined into one NVRTC program, each after a `#line 1 "name"` directive so that
/// NVRTC's diagnostics name the real file and line; each part sees what the ones before it
/// declare.
func joinedKernelSource(_ parts: [(name: String, text: [UInt8])]) -> [UInt8] {
    parts.flatMap { part in
        Array("#line 1 \"\(part.name)\"\n".utf8) + part.text + (part.text.last == UInt8(ascii: "\n") ? [] : [UInt8(ascii: "\n")])
    }
}
