import ArgumentParser
import Foundation
import SluiceLoad

/// `sluice loadtest`: proves (or disproves) the global limits of a running deployment.
struct LoadTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Load-test a running Sluice (through its load balancer) with several keys and check every limit held.",
        discussion: """
            Creates one API key per --key through the admin API, drives them all at once, deletes them,
            and reports per key: answers by status, admitted rate against the policy, the most admitted
            in any window against burst + rate × window (slots on the limiter's clock, from Sluice-Slot),
            and latency percentiles (HdrHistogram). Exit status 3 when any key was over-admitted.

            Key spec: name[:field=value,...] with rate, period (s), burst, overflow (reject|delay|queue),
            max_delay, max_queue_delay, max_depth, offered (requests/s). Default: three keys, one per
            overflow mode, 20/s with bursts of 10, each offered 5× its rate.

            Stops by itself after --duration (and --requests, if given). Targets loopback unless
            --allow-remote names another host explicitly.
            """
    )

    @Option(help: "Base URL of the deployment: https://host:port (certificate verified) or http://host:port.")
    var url = "https://127.0.0.1:8443"

    @Option(help: "PEM file of the CA to trust for https:// (default: the system's trust store), e.g. run/cluster/secrets/sluice-lb-ca.crt.")
    var cacert: String?

    @Option(help: "File holding an admin API key (e.g. run/cluster/secrets/admin.key). Else SLUICE_ADMIN_KEY.")
    var adminKeyFile: String?

    @Option(name: .customLong("key"), help: "A key to create and drive (repeatable); see above.")
    var keys: [String] = []

    @Option(help: "open (a fixed arrival rate per key) or closed (--connections senders per key).")
    var mode = "open"

    @Option(help: "Open loop: offer this multiple of each key's rate (unless the key says offered=).")
    var multiple = 5.0

    @Option(help: "Closed loop: concurrent senders per key.")
    var connections = 8

    @Option(help: "Seconds of sending.")
    var duration = 15.0

    @Option(help: "Stop after this many requests in all, if that comes first.")
    var requests: Int?

    @Flag(help: "Honour Retry-After: retry a 429 when its time comes (twice at most) and poll every 202 job to completion.")
    var polite = false

    @Flag(help: "Print the report as JSON (for scripts) instead of text.")
    var json = false

    @Option(help: "Also write the report as one self-contained HTML page (charts inline; nothing fetched when viewed).")
    var report: String?

    @Flag(help: "Allow a target that is not a loopback address.")
    var allowRemote = false

    func run() async throws {
        guard let target = URLComponents(string: url), let scheme = target.scheme, ["http", "https"].contains(scheme),
            let host = target.host, !host.isEmpty
        else {
            throw ValidationError("--url must be https://host:port or http://host:port")
        }
        guard cacert == nil || scheme == "https" else { throw ValidationError("--cacert goes with an https:// --url") }
        let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
        guard loopback || allowRemote else {
            throw ValidationError("\(host) is not a loopback address; pass --allow-remote to load-test it on purpose")
        }
        if let report {
            let directory = (report as NSString).deletingLastPathComponent
            guard report.hasSuffix(".html"), FileManager.default.isWritableFile(atPath: directory.isEmpty ? "." : directory) else {
                throw ValidationError("--report must name an .html file in a writable directory, not \(report)")
            }
        }
        guard let mode = LoadPlan.Mode(rawValue: mode) else { throw ValidationError("--mode is open or closed") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be 0–3600 seconds") }
        let adminKey = try adminKeyFile.map { try String(contentsOfFile: $0, encoding: .utf8) }
            ?? ProcessInfo.processInfo.environment["SLUICE_ADMIN_KEY"]
        guard let adminKey = adminKey?.trimmingCharacters(in: .whitespacesAndNewlines), !adminKey.isEmpty else {
            throw ValidationError("an admin key is needed to create the test keys: --admin-key-file or SLUICE_ADMIN_KEY")
        }
        var plan = LoadPlan(
            host: host, port: target.port ?? (scheme == "https" ? 443 : 80), adminKey: adminKey,
            keys: keys.isEmpty ? LoadPlan.defaultKeys : try keys.map { try LoadPlan.Key(parsing: $0) })
        plan.mode = mode
        plan.multiple = multiple
        plan.connections = connections
        plan.duration = .milliseconds(Int64(duration * 1000))
        plan.maximumRequests = requests
        plan.polite = polite
        if scheme == "https" {
            do {
                plan.tls = try HTTPClientPool.tlsContext(caFile: cacert)
            } catch {
                throw ValidationError("cannot use --cacert \(cacert ?? "(system trust store)"): \(error)")
            }
        }

        let result = try await LoadGenerator(plan: plan) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }.run()
        if let report {
            do {
                try result.html.write(toFile: report, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("cannot write --report \(report): \(error)")
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(result.text)
        }
        if !result.limitsHeld { throw ExitCode(3) }
    }
}
