import ArgumentParser

@main
struct NVFP4Command: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nvfp4",
        abstract: "NVFP4 quantization of expert-grouped activations, on the GPU or the CPU.",
        subcommands: [
            QuantizeCommand.self, DequantizeCommand.self, InspectCommand.self, DemoCommand.self, BenchCommand.self,
            SelftestCommand.self,
        ]
    )
}
