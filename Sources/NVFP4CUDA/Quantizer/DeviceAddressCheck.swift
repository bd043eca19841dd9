import NVFP4

/// One device address of a call, as the host can check it: present when required, aligned.
struct DeviceAddressCheck {
    let argument: String
    let address: UInt64
    let alignment: UInt64
    /// The call reads or writes through it (a null address is then an error).
    let required: Bool

    init(_ argument: String, _ address: UInt64, alignment: UInt64, required: Bool) {
        self.argument = argument
        self.address = address
        self.alignment = alignment
        self.required = required
    }

    /// Throws ``NVFP4Error/invalidArgument(argument:reason:)`` for the first null required or
    /// misaligned address, naming its argument.
    static func validate(_ checks: [DeviceAddressCheck]) throws {
        for check in checks {
            if check.required && check.address == 0 {
                throw NVFP4Error.invalidArgument(argument: check.argument, reason: "is a null device address")
            }
            if check.address % check.alignment != 0 {
                throw NVFP4Error.invalidArgument(
                    argument: check.argument,
                    reason: "address 0x\(String(check.address, radix: 16)) is not \(check.alignment)-byte aligned")
            }
        }
    }
}
