import ArgumentParser

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A secure, horizontally scaled prediction API with exact global rate limits in Redis.",
        subcommands: [ServeCommand.self, WorkerCommand.self, LoadTestCommand.self, HealthcheckCommand.self, KeygenCommand.self, BenchLimiterCommand.self]
    )
}
