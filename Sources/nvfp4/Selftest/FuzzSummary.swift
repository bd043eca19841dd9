import NVFP4

/// Counts of each option value over a run, for the one-line summary.
struct FuzzSummary {
    /// Option name → (value → cases), options in the order they are first counted.
    private var counts: [(option: String, values: [(value: String, count: Int)])] = []
    private(set) var caseCount = 0

    mutating func count(_ fuzzCase: FuzzCase) {
        caseCount += 1
        add("rows", fuzzCase.rowLayout.rawValue, all: FuzzRowLayout.allCases.map(\.rawValue))
        add("format", "\(fuzzCase.blockFormat)", all: BlockFormat.allFormats.map(\.description))
        add("activation", fuzzCase.activation.rawValue, all: Activation.allCases.map(\.rawValue))
        add("dtype", fuzzCase.elementType.cliName, all: ElementType.allCases.map(\.cliName))
        add("layout", fuzzCase.scaleLayout.rawValue, all: ScaleLayout.allCases.map(\.rawValue))
        add("rule", fuzzCase.rule?.rawValue ?? "masked",
            all: ExpertSegments.ScaleOffsetRule.allCases.map(\.rawValue) + ["masked"])
        add("variant(plain)", fuzzCase.isPlain ? fuzzCase.variant.rawValue : "n/a", all: ["tuned", "seed", "baseline", "n/a"])
        add("gs", fuzzCase.globalScaleMode.rawValue, all: FuzzGlobalScales.allCases.map(\.rawValue))
        add("values", fuzzCase.valueMix.rawValue, all: FuzzValueMix.allCases.map(\.rawValue))
    }

    private mutating func add(_ option: String, _ value: String, all: [String]) {
        if !counts.contains(where: { $0.option == option }) {
            counts.append((option, all.map { ($0, 0) }))
        }
        let o = counts.firstIndex { $0.option == option }!
        if let v = counts[o].values.firstIndex(where: { $0.value == value }) {
            counts[o].values[v].count += 1
        } else {
            counts[o].values.append((value, 1))
        }
    }

    /// `rows offsets=80 gather=60 masked=60; format nvfp4=…; …`
    var optionCounts: String {
        counts.map { entry in
            entry.option + " " + entry.values.map { "\($0.value)=\($0.count)" }.joined(separator: " ")
        }.joined(separator: "; ")
    }
}
