import Dispatch
import NVFP4
import NVFP4TestSupport
import Testing

/// One problem of either layout with its input, runnable on the fast CPU path.
private struct ConcurrentCase: Sendable {
    let name: String
    let run: @Sendable () throws -> (codes: [UInt8], scales: [UInt8])
}

/// Eight different problems: plain, fp16 with specials, linear layout, closed-form offsets,
/// gather, SiLU·mul with MXFP4, UE8M0, masked. Small enough for a run under TSan.
private func concurrentCases() throws -> [ConcurrentCase] {
    var cases: [ConcurrentCase] = []
    func add(_ testCase: ProblemCase) {
        cases.append(ConcurrentCase(name: testCase.description) { try testCase.runCPU(.fast) })
    }
    add(try ProblemFactory.make(name: "plain", seed: 1, experts: 8, routedRows: 300, hiddenSize: 256))
    add(try ProblemFactory.make(name: "fp16 specials", seed: 2, experts: 5, routedRows: 200, extraRows: 3, hiddenSize: 80,
                                type: .float16, specials: true))
    add(try ProblemFactory.make(name: "linear", seed: 3, experts: 7, routedRows: 260, hiddenSize: 208, layout: .linear))
    add(try ProblemFactory.make(name: "closed form", seed: 4, experts: 20, routedRows: 150, hiddenSize: 112, rule: .closedForm))
    add(try ProblemFactory.make(name: "mxfp4 SiLU·mul", seed: 5, experts: 6, routedRows: 180, hiddenSize: 128,
                                blockFormat: .mxfp4, activation: .siluMul))
    add(try ProblemFactory.make(name: "ue8m0", seed: 6, experts: 3, routedRows: 140, hiddenSize: 64, blockFormat: .nvfp4UE8M0))
    let (gather, gatherInput) = try ProblemFactory.gatherProblem(tokens: 90, topk: 4, experts: 12, hiddenSize: 96, seed: 7)
    add(ProblemCase(name: "gather", seed: 7, problem: gather, input: gatherInput))
    let masked = try ProblemFactory.maskedProblem(groups: 6, maxRows: 40, hiddenSize: 64, activation: .siluMul, seed: 8)
    let maskedCase = MaskedProblemCase(name: "masked", seed: 8, problem: masked.0, input: masked.1)
    cases.append(ConcurrentCase(name: maskedCase.description) { try maskedCase.runCPU(.fast) })
    return cases
}

@Suite("CPU quantizer concurrency")
struct CPUQuantizerConcurrencyTests {
    @Test("CPUQuantizer called from 8 threads at once on different problems writes the bytes of sequential calls")
    func differentProblemsConcurrently() throws {
        let cases = try concurrentCases()
        #expect(cases.count == 8)
        let sequential = try cases.map { try $0.run() }
        for round in 0..<3 {
            let results = Locked<[Int: Result<[[UInt8]], any Error>]>([:])
            DispatchQueue.concurrentPerform(iterations: cases.count) { i in
                let result = Result { () throws -> [[UInt8]] in
                    let output = try cases[i].run()
                    return [output.codes, output.scales]
                }
                results.withLock { $0[i] = result }
            }
            let collected = results.withLock { $0 }
            for (i, testCase) in cases.enumerated() {
                switch collected[i] {
                case .success(let output)?:
                    #expect(output[0] == sequential[i].codes, "round \(round) \(testCase.name): codes differ from the sequential call")
                    #expect(output[1] == sequential[i].scales, "round \(round) \(testCase.name): scales differ from the sequential call")
                case .failure(let error)?:
                    Issue.record("round \(round) \(testCase.name): threw \(error)")
                case nil:
                    Issue.record("round \(round) \(testCase.name): never ran")
                }
            }
        }
    }

    @Test("one problem value shared by 8 threads, each with its own outputs, gives 8 identical results")
    func sharedProblemConcurrently() throws {
        let testCase = try ProblemFactory.make(name: "shared", seed: 9, experts: 16, routedRows: 400, extraRows: 2,
                                               hiddenSize: 160, specials: true)
        let expected = try testCase.runCPU(.reference)
        let results = Locked<[Int: (codes: [UInt8], scales: [UInt8])]>([:])
        let failures = Locked<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                let output = try testCase.runCPU(.fast)
                results.withLock { $0[i] = output }
            } catch {
                failures.withLock { $0.append("thread \(i): \(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        let collected = results.withLock { $0 }
        #expect(collected.count == 8)
        for (i, output) in collected.sorted(by: { $0.key < $1.key }) {
            let difference = OutputDiff.firstDifference(
                testCase.problem, expectedCodes: expected.codes, actualCodes: output.codes,
                expectedScales: expected.scales, actualScales: output.scales)
            #expect(difference == nil, "thread \(i): \(difference ?? "")")
        }
    }
}
