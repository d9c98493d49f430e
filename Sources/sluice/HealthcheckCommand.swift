import ArgumentParser
import Foundation
import SluiceLoad

/// `sluice healthcheck`: exit 0 when a URL answers 200, for container health checks in images
/// that carry no curl or wget.
struct HealthcheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "healthcheck", abstract: "Exit 0 if GET http://<host>:<port><path> answers 200 within the timeout, else 1.")

    @Option(help: "Host to check.")
    var host = "127.0.0.1"

    @Option(help: "Port to check. Env: SLUICE_PORT (serve's port) when not given.")
    var port: Int?

    @Option(help: "Path: /readyz (replica ready), /healthz (process alive).")
    var path = "/readyz"

    @Option(help: "Seconds to wait for the answer.")
    var timeout = 2.0

    func run() async throws {
        let port: Int = try port ?? ServeSettings.port.value(nil, ProcessInfo.processInfo.environment)
        let client = HTTPClientPool(host: host, port: port, maximumConnections: 1)
        defer { client.close() }
        // A server that accepts but never answers must not hang the probe: the timer ends it.
        let timer = Task {
            try await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
            Foundation.exit(1)
        }
        defer { timer.cancel() }
        let status = try? await client.send(.init(method: .GET, path: path)).status
        guard status == 200 else { throw ExitCode(1) }
    }
}
