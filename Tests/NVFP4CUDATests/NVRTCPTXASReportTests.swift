@testable import NVFP4CUDA
import Testing

@Suite("ptxas report parsing")
struct NVRTCPTXASReportTests {
    /// A real CUDA 13.5 NVRTC log for sm_90a with `--ptxas-options=-v --maxrregcount=16`.
    static let cuda13Log = """
        t.cu(4): warning #177-D: variable "unused" was declared but never referenced
          __global__ void warn(){ int unused; }
                                      ^

        Remark: The warnings can be suppressed with "-diag-suppress <warning-number>"

        ptxas warning : For profile sm_90a adjusting per thread register count of 16 to lower bound of 24
        ptxas info    : Overriding maximum register limit 256 for 'many' with  24 of maxrregcount option
        ptxas info    : 0 bytes gmem
        ptxas info    : Compiling entry function 'cm' for 'sm_90a'
        ptxas info    : Function properties for cm
        ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 10 registers, used 0 barriers
        ptxas info    : Compile time = 3.610 ms
        ptxas info    : Compiling entry function 'many' for 'sm_90a'
        ptxas info    : Function properties for many
        ptxas         .     3496 bytes stack frame, 4404 bytes spill stores, 5044 bytes spill loads
        ptxas info    : Used 24 registers, used 0 barriers, 3496 bytes cumulative stack size
        ptxas info    : Compile time = 356.887 ms
        ptxas info    : Compiling entry function 'shmem' for 'sm_90a'
        ptxas info    : Function properties for shmem
        ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
        ptxas info    : Used 10 registers, used 1 barriers, 1024 bytes smem
        ptxas info    : Compile time = 2.669 ms

        """

    @Test("parses every entry function of a CUDA 13 log, in order")
    func parsesCUDA13Log() throws {
        let report = PTXASReport.parse(log: Self.cuda13Log)
        #expect(report.functions.map(\.name) == ["cm", "many", "shmem"])
        #expect(report.functions.allSatisfy { $0.architecture == "sm_90a" })

        let cm = try #require(report[function: "cm"])
        #expect(cm.registers == 10)
        #expect(cm.stackFrameBytes == 0 && cm.spillStoreBytes == 0 && cm.spillLoadBytes == 0)

        let many = try #require(report[function: "many"])
        #expect(many.registers == 24)
        #expect(many.stackFrameBytes == 3496)
        #expect(many.spillStoreBytes == 4404)
        #expect(many.spillLoadBytes == 5044)

        let shmem = try #require(report[function: "shmem"])
        #expect(shmem.registers == 10)
        #expect(shmem.barriers == 1)
        #expect(shmem.sharedMemoryBytes == 1024)
        #expect(report[function: "missing"] == nil)
    }

    @Test("collects front-end and ptxas warnings")
    func collectsWarnings() {
        let report = PTXASReport.parse(log: Self.cuda13Log)
        #expect(report.warnings == [
            #"t.cu(4): warning #177-D: variable "unused" was declared but never referenced"#,
            "ptxas warning : For profile sm_90a adjusting per thread register count of 16 to lower bound of 24",
        ])
    }

    @Test("parses the older format with cmem and lmem on the Used line")
    func parsesOlderFormat() throws {
        let log = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function '_Z6kernelPf' for 'sm_80'
            ptxas info    : Function properties for _Z6kernelPf
                8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
            ptxas info    : Used 30 registers, 360 bytes cmem[0], 12 bytes cmem[2], 8 bytes lmem
            """
        let report = PTXASReport.parse(log: log)
        let kernel = try #require(report[function: "_Z6kernelPf"])
        #expect(kernel.architecture == "sm_80")
        #expect(kernel.registers == 30)
        #expect(kernel.constantMemoryBytes == 372)
        #expect(kernel.localMemoryBytes == 8)
        #expect(kernel.stackFrameBytes == 8)
        #expect(kernel.spillStoreBytes == 4)
        #expect(kernel.spillLoadBytes == 4)
        #expect(report.warnings.isEmpty)
    }

    @Test("properties of non-entry device functions are not attributed to a kernel")
    func skipsDeviceFunctionProperties() throws {
        let log = """
            ptxas info    : Compiling entry function 'outer' for 'sm_100a'
            ptxas info    : Function properties for _Z6helperi
            ptxas         .     64 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
            ptxas info    : Function properties for outer
            ptxas         .     16 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 12 registers, used 0 barriers, 16 bytes cumulative stack size
            """
        let outer = try #require(PTXASReport.parse(log: log)[function: "outer"])
        #expect(outer.architecture == "sm_100a")
        #expect(outer.stackFrameBytes == 16)
        #expect(outer.spillStoreBytes == 0)
        #expect(outer.registers == 12)
    }

    @Test("a log without ptxas output yields no functions")
    func emptyLog() {
        #expect(PTXASReport.parse(log: "") == PTXASReport())
        #expect(PTXASReport.parse(log: "some unrelated text\n\n").functions.isEmpty)
    }
}
