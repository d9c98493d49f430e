import ArgumentParser
import Foundation

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A secure, horizontally scaled prediction API with exact global rate limits in Redis.",
        subcommands: [
            ServeCommand.self, WorkerCommand.self, KeysCommand.self, TenantsCommand.self, UsageCommand.self, ModelsCommand.self, LoadTestCommand.self, HealthcheckCommand.self,
            KeygenCommand.self, BenchLimiterCommand.self,
        ]
    )

    /// As ArgumentParser's, except that the admin commands (`keys`, `models`) exit 2 on bad usage,
    /// as their contract says (0 done, 1 refused, 2 usage, 3 unreachable).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            let admin = ["keys", "tenants", "usage", "models"].contains(CommandLine.arguments.dropFirst().first ?? "")
            if admin, exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
