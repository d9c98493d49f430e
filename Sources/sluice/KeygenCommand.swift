import ArgumentParser
import SluiceAuth

/// `sluice keygen`: prints a new API key, or a signing key, from the system CSPRNG.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen", abstract: "Print a new random API key (for SLUICE_ADMIN_KEY) or, with --signing, a signing key.")

    @Flag(help: "Print 64 hex characters (256 bits) for SLUICE_MODEL_SIGNING_KEY instead.")
    var signing = false

    func run() {
        if signing {
            var generator = SystemRandomNumberGenerator()
            print((0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined())
        } else {
            print(APIKey.generate().revealed)
        }
    }
}
