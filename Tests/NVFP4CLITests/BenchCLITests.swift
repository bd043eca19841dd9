import NVFP4
import Testing

/// `nvfp4 bench`, run end to end on the CPU: the input type option and its report.
@Suite("nvfp4 bench")
struct BenchCLITests {
    @Test("--dtype f16: the CPU sweep quantizes float16 inputs and says so in the table, the JSON and every CSV row's throughput")
    func float16Sweep() throws {
        let scratch = try ScratchDirectory()
        let prefix = scratch.path + "/bench"
        let result = try CLI.run(["bench", "--device", "cpu", "--quick", "--runs", "1", "--dtype", "f16", "--out", prefix],
                                 in: scratch)
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains("input: float16"), "\(result)")
        let json = String(decoding: try readFile(prefix + ".json"), as: UTF8.self)
        #expect(json.contains("\"inputType\" : \"float16\""), "\(json.prefix(400))")
        let rows = String(decoding: try readFile(prefix + ".csv"), as: UTF8.self).split(separator: "\n").dropFirst()
        #expect(rows.count == 2, "the quick CPU sweep's two shapes")
        for row in rows {
            let fields = row.split(separator: ",", omittingEmptySubsequences: false)
            #expect(fields.count == 14 && fields[0] == "cpu" && fields[1] == "fast", "\(row)")
            #expect((Double(fields[7]) ?? 0) > 0, "GB/s of \(row)")
        }
    }

    @Test("--fused runs bfloat16 only: --dtype f16 beside it is a usage error naming both")
    func fusedRefusesFloat16() throws {
        let scratch = try ScratchDirectory()
        let result = try CLI.run(["bench", "--fused", "--dtype", "f16"], in: scratch)
        #expect(result.status != 0, "\(result)")
        #expect(result.standardError.contains("--fused") && result.standardError.contains("--dtype"), "\(result)")
    }
}
