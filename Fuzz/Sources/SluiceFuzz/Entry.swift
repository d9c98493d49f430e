import Foundation

/// libFuzzer's entry point: the target named by `SLUICE_FUZZ_TARGET` (see ``FuzzTarget/all``).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    target.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

let target: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["SLUICE_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget.all.first(where: { $0.name == name }) else {
        fatalError("SLUICE_FUZZ_TARGET must be one of \(FuzzTarget.all.map(\.name).joined(separator: ", ")), not '\(name)'")
    }
    return target
}()

/// SwiftPM links an executable's entry as `<module>_main`; here that hands control to libFuzzer.
@_cdecl("SluiceFuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt
