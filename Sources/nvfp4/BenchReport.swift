import FoundationEssentials
import NVFP4
#if canImport(Glibc)
import Glibc
#endif

/// One measurement of one variant at one shape.
struct BenchRow: Codable, Sendable {
    var device: String
    var variant: String
    var rows: Int
    var hiddenSize: Int
    var experts: Int
    /// Median time per call: wall time on the CPU; on the GPU, events around each call, the calls
    /// queued back to back behind a hold (``EventTimer/queuedMedian(runs:stream:support:_:)``).
    var microseconds: Double
    /// Median time per call through CUDA-graph replay (small shapes).
    var graphMicroseconds: Double?
    /// GPU: median time per call with events around each call waited for, the host's launch
    /// included (``EventTimer/callMedian(runs:stream:_:)``).
    var callMicroseconds: Double?
    var gigabytesPerSecond: Double
    var percentOfCopy: Double
    var runs: Int
    var referenceMicroseconds: Double?
    var speedupOverSeed: Double?
    var speedupOverBaseline: Double?
}

/// A sweep's results: the table on stdout and JSON/CSV/SVG files.
struct BenchReport: Codable, Sendable {
    var device: String
    /// The sweep's input type (`bfloat16` or `float16`).
    var inputType: String
    var copyBytesPerSecond: Double
    /// The empty kernel per launch: queued, a call waited for, in a graph (GPU sweeps).
    var emptyKernelMicroseconds: Double?
    var emptyKernelCallMicroseconds: Double?
    var emptyKernelGraphMicroseconds: Double?
    var rows: [BenchRow]
    var notes: [String]

    func table() -> String {
        var lines = ["device: \(device)", "input: \(inputType)",
                     "copy bandwidth: \(formatted(copyBytesPerSecond / 1e9)) GB/s (bytes read + written)"]
        if let empty = emptyKernelMicroseconds {
            lines.append("empty kernel: \(formatted(empty)) us per launch queued, \(formatted(emptyKernelCallMicroseconds ?? .nan)) us a call, "
                         + "\(formatted(emptyKernelGraphMicroseconds ?? .nan)) us in a graph")
            lines.append("us: events around each call, calls queued back to back; call us: each call waited for (host launch included); "
                         + "graph us: per call in a replayed graph, used for GB/s where measured")
        }
        lines += notes
        let header = ["variant", "M", "K", "E", "us", "graph us", "call us", "GB/s", "% copy", "x seed", "x base", "ref us", "x ref"]
        let widths = [9, 7, 5, 4, 10, 9, 9, 8, 7, 7, 7, 11, 7]
        lines.append(zip(header, widths).map { leftPadded($0, $1) }.joined(separator: " "))
        for row in rows {
            lines.append(zip(cells(row), widths).map { leftPadded($0, $1) }.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }

    private func cells(_ row: BenchRow) -> [String] {
        func optional(_ value: Double?, _ digits: Int) -> String {
            guard let value else { return "-" }
            return formatted(value, digits)
        }
        let referenceSpeedup: Double? = row.referenceMicroseconds.map { $0 / row.microseconds }
        var cells: [String] = [row.variant, "\(row.rows)", "\(row.hiddenSize)", "\(row.experts)"]
        cells.append(formatted(row.microseconds, 1))
        cells.append(optional(row.graphMicroseconds, 1))
        cells.append(optional(row.callMicroseconds, 1))
        cells.append(formatted(row.gigabytesPerSecond, 1))
        cells.append(formatted(row.percentOfCopy, 1))
        cells.append(optional(row.speedupOverSeed, 2))
        cells.append(optional(row.speedupOverBaseline, 2))
        cells.append(optional(row.referenceMicroseconds, 0))
        cells.append(optional(referenceSpeedup, 1))
        return cells
    }

    func csv() -> String {
        var lines = ["device,variant,M,K,E,us,graph_us,gb_per_s,percent_of_copy,runs,speedup_over_seed,speedup_over_baseline,reference_us,call_us"]
        func optional(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }
        for r in rows {
            var fields: [String] = [r.device, r.variant, "\(r.rows)", "\(r.hiddenSize)", "\(r.experts)", "\(r.microseconds)"]
            fields.append(optional(r.graphMicroseconds))
            fields += ["\(r.gigabytesPerSecond)", "\(r.percentOfCopy)", "\(r.runs)"]
            fields += [optional(r.speedupOverSeed), optional(r.speedupOverBaseline), optional(r.referenceMicroseconds)]
            fields.append(optional(r.callMicroseconds))
            lines.append(fields.map { $0.contains(",") ? "\"\($0)\"" : $0 }.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Writes PREFIX.json, PREFIX.csv and, for a GPU sweep, PREFIX.svg.
    func write(prefix: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try saveFile(try encoder.encode(self), to: prefix + ".json")
        try saveFile(Data(csv().utf8), to: prefix + ".csv")
        if emptyKernelMicroseconds != nil { try saveFile(Data(BenchPlot(report: self).svg().utf8), to: prefix + ".svg") }
        printError("wrote \(prefix).json, \(prefix).csv\(emptyKernelMicroseconds != nil ? ", \(prefix).svg" : "")")
    }

}

/// Writes `data` to `path` atomically; failures are ``NVFP4Error/io(path:reason:)``.
func saveFile(_ data: Data, to path: String) throws {
    do {
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw NVFP4Error.io(path: path, reason: "\(error)")
    }
}

/// GB/s against M, one panel per (K, E), a line per variant and the copy bandwidth dashed.
struct BenchPlot {
    let report: BenchReport

    func svg() -> String {
        let panels = Array(Set(report.rows.map { PanelKey(hiddenSize: $0.hiddenSize, experts: $0.experts) })).sorted()
        let columns = 3, panelWidth = 360.0, panelHeight = 260.0
        let rowsOfPanels = (panels.count + columns - 1) / columns
        let width = Double(columns) * panelWidth, height = Double(rowsOfPanels) * panelHeight + 40
        let copy = report.copyBytesPerSecond / 1e9
        let top = max(copy, report.rows.map(\.gigabytesPerSecond).max() ?? 1) * 1.1
        let colors = ["baseline": "#888888", "seed": "#d95f02", "tuned": "#1b9e77"]
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"10\" y=\"20\" font-size=\"14\">\(escape(report.device)): GB/s (2.5625 B/element) against M; dashed: copy \(formatted(copy, 0)) GB/s</text>\n"
        for (index, panel) in panels.enumerated() {
            let x0 = Double(index % columns) * panelWidth + 50, y0 = Double(index / columns) * panelHeight + 50
            let w = panelWidth - 70, h = panelHeight - 60
            let rows = report.rows.filter { $0.hiddenSize == panel.hiddenSize && $0.experts == panel.experts }
            let ms = Set(rows.map(\.rows)).sorted()
            func px(_ m: Int) -> Double {
                guard let lo = ms.first, let hi = ms.last, hi > lo else { return x0 + w / 2 }
                return x0 + w * (log2(Double(m)) - log2(Double(lo))) / (log2(Double(hi)) - log2(Double(lo)))
            }
            func py(_ v: Double) -> Double { y0 + h - h * v / top }
            out += "<rect x=\"\(x0)\" y=\"\(y0)\" width=\"\(w)\" height=\"\(h)\" fill=\"none\" stroke=\"#ccc\"/>\n"
            out += "<text x=\"\(x0)\" y=\"\(y0 - 6)\">K = \(panel.hiddenSize), E = \(panel.experts)</text>\n"
            out += "<line x1=\"\(x0)\" x2=\"\(x0 + w)\" y1=\"\(py(copy))\" y2=\"\(py(copy))\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n"
            for m in ms {
                out += "<text x=\"\(px(m) - 10)\" y=\"\(y0 + h + 14)\">\(m)</text>\n"
            }
            for tick in stride(from: 0.0, through: top, by: top > 2000 ? 1000 : 100) {
                out += "<text x=\"\(x0 - 40)\" y=\"\(py(tick) + 4)\">\(Int(tick))</text>\n"
            }
            for variant in ["baseline", "seed", "tuned"] {
                let points = rows.filter { $0.variant == variant }.sorted { $0.rows < $1.rows }
                guard !points.isEmpty else { continue }
                let path = points.map { "\(px($0.rows)),\(py($0.gigabytesPerSecond))" }.joined(separator: " ")
                out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colors[variant] ?? "black")\" stroke-width=\"2\"/>\n"
            }
        }
        var legendX = width - 260
        for variant in ["baseline", "seed", "tuned"] {
            out += "<text x=\"\(legendX)\" y=\"20\" fill=\"\(colors[variant]!)\">\(variant)</text>\n"
            legendX += 70
        }
        return out + "</svg>\n"
    }

    struct PanelKey: Hashable, Comparable {
        let hiddenSize: Int, experts: Int
        static func < (a: PanelKey, b: PanelKey) -> Bool { (a.hiddenSize, a.experts) < (b.hiddenSize, b.experts) }
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
    }
}
