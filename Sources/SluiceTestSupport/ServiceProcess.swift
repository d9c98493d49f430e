import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A real `sluice serve` (or `sluice worker`) process on a free loopback port, for tests over HTTP.
///
/// Started like ``RedisServer`` (no blocked signals, no inherited descriptors, a watchdog that
/// kills it when the test process is gone).
public final class ServiceProcess: Sendable {
    public let port: Int
    public let logFile: String
    /// What it was started with beyond this process' environment (to start another like it).
    public let environment: [String: String]
    private let pidFile: String
    private let exitFile: String

    /// The `sluice` binary next to the test bundle (`.build/<config>/sluice`), or `SLUICE_BINARY`.
    public static var binary: String {
        if let path = ProcessInfo.processInfo.environment["SLUICE_BINARY"] { return path }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("sluice").path
    }

    /// Starts `sluice <command>` (`serve` or `worker`) with `environment` added to this process'
    /// environment.
    public init(_ command: String = "serve", redisURL: String, environment: [String: String], arguments: [String] = []) throws {
        port = try RedisServer.freePort()
        self.environment = environment
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-\(command)-\(port)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        logFile = "\(directory)/\(command).log"
        pidFile = "\(directory)/\(command).pid"
        exitFile = "\(directory)/\(command).exit"
        try Self.launch(
            arguments: [Self.binary, command, "--port", String(port), "--redis", redisURL, "--redis-timeout-ms", "500"] + arguments,
            environment: environment, logFile: logFile, pidFile: pidFile, exitFile: exitFile)
        try waitUntil(timeout: 5) { self.pid != nil }
    }

    deinit { kill() }

    /// Runs `sluice <arguments>` to completion and returns its exit status and output.
    public static func run(arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
        try runCommand([binary] + arguments, environment: environment)
    }

    static func launch(arguments: [String], environment: [String: String], logFile: String, pidFile: String, exitFile: String) throws {
        // The process runs in a background subshell that waits for it and records its exit status.
        let script = """
            for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
            (
              "$@" > '\(logFile)' 2>&1 </dev/null &
              pid=$!
              echo $pid > '\(pidFile)'
              ( while kill -0 \(getpid()) 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.5; done
                kill -9 $pid ) >/dev/null 2>&1 </dev/null &
              wait $pid
              echo $? > '\(exitFile)'
            ) >/dev/null 2>&1 </dev/null &
            """
        let status = try RedisServer.run("/bin/bash", ["-c", script, "bash"] + arguments, environment: environment)
        guard status == 0 else { throw TestSupportError("cannot start \(arguments.prefix(2).joined(separator: " ")) (exit \(status))") }
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    private var pid: Int32? {
        (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The process' resident memory (kB) and open descriptors, from /proc.
    public var footprint: (rssKB: Int, descriptors: Int)? {
        guard let pid, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let rss = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]),
            let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        else { return nil }
        return (rss, descriptors)
    }

    /// Waits until `GET /readyz` answers 200 (a replica: Redis reachable, a verified model loaded).
    public func waitUntilReady(timeout: Duration = .seconds(60)) async throws {
        try await waitFor200("/readyz", timeout: timeout)
    }

    /// Waits until `GET https://…/readyz` answers 200, trusting the CA in `caFile` (a replica
    /// serving TLS itself).
    public func waitUntilReady(caFile: String, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let probe = try runCommand(["curl", "-s", "-m", "2", "--cacert", caFile, "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:\(port)/readyz"])
            if probe.output == "200" { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("GET https://…/readyz on port \(port) not 200 in time; log:\n\(log.suffix(2000))")
    }

    /// Waits until `GET /healthz` answers 200 (a worker: its listener is up).
    public func waitUntilHealthy(timeout: Duration = .seconds(30)) async throws {
        try await waitFor200("/healthz", timeout: timeout)
    }

    private func waitFor200(_ path: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let response = try? await HTTP.send("GET", baseURL + path), response.status == 200 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("GET \(path) on port \(port) not 200 in time; log:\n\(log.suffix(2000))")
    }

    /// SIGTERM, then waits for the process to exit and returns its exit status.
    public func terminate(timeout: TimeInterval = 30) throws -> Int32 {
        guard let pid else { throw TestSupportError("no pid") }
        Foundation.kill(pid, SIGTERM)
        try waitUntil(timeout: timeout) { FileManager.default.fileExists(atPath: self.exitFile) }
        try waitUntil(timeout: 2) { self.exitStatus != nil }
        return exitStatus!
    }

    /// The exit status once the process has exited.
    public var exitStatus: Int32? {
        (try? String(contentsOfFile: exitFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Sends `signal` (e.g. SIGHUP) to the process.
    public func send(signal: Int32) {
        guard let pid else { return }
        Foundation.kill(pid, signal)
    }

    /// SIGKILL: the process is gone at once.
    public func kill() {
        guard let pid else { return }
        Foundation.kill(pid, SIGKILL)
        try? waitUntil(timeout: 5) { !RedisServer.accepts(port: self.port) }
    }
}

/// Runs a program to completion (stdin from /dev/null) and returns its exit status and its
/// standard output and error, interleaved. `environment` adds to this process' environment.
public func runCommand(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-run-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let status = try RedisServer.run(
        "/bin/bash", ["-c", #""$@" > "$SLUICE_TEST_LOG" 2>&1"#, "bash"] + arguments,
        environment: environment.merging(["SLUICE_TEST_LOG": "\(directory)/out.log"]) { $1 })
    return (status, (try? String(contentsOfFile: "\(directory)/out.log", encoding: .utf8)) ?? "")
}

/// A program running in the background (no blocked signals, no inherited descriptors, killed
/// when the test process is gone), with its output in ``log`` and its exit status once it ends.
public final class BackgroundCommand: Sendable {
    public let logFile: String
    private let pidFile: String
    private let exitFile: String

    public init(_ arguments: [String], environment: [String: String] = [:]) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-bg-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        logFile = "\(directory)/out.log"
        pidFile = "\(directory)/pid"
        exitFile = "\(directory)/exit"
        try ServiceProcess.launch(arguments: arguments, environment: environment, logFile: logFile, pidFile: pidFile, exitFile: exitFile)
    }

    public var log: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    public var exitStatus: Int32? {
        (try? String(contentsOfFile: exitFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Waits for the program to end and returns its exit status.
    public func wait(timeout: TimeInterval) throws -> Int32 {
        try waitUntil(timeout: timeout) { self.exitStatus != nil }
        return exitStatus!
    }

    /// SIGTERM, if it still runs.
    public func terminate() {
        guard exitStatus == nil, let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return }
        kill(pid, SIGTERM)
    }
}

/// A minimal HTTP client over URLSession for tests.
public enum HTTP {
    public struct Response: Sendable {
        public let status: Int
        public let headers: [String: String]
        public let body: Data

        public init(status: Int, headers: [String: String], body: Data) {
            self.status = status
            self.headers = headers
            self.body = body
        }

        /// A header by case-insensitive name.
        public func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }

        public var text: String { String(decoding: body, as: UTF8.self) }

        public var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
    }

    private static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 10
        configuration.httpMaximumConnectionsPerHost = 16
        return URLSession(configuration: configuration)
    }()

    public static func send(
        _ method: String, _ url: String, headers: [String: String] = [:], body: Data? = nil, timeout: TimeInterval = 10
    ) async throws -> Response {
        var request = URLRequest(url: URL(string: url)!, timeoutInterval: timeout)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields { fields["\(name)"] = "\(value)" }
        return Response(status: http.statusCode, headers: fields, body: data)
    }

    /// JSON body with `Content-Type: application/json`.
    public static func json(
        _ method: String, _ url: String, key: String? = nil, headers extra: [String: String] = [:], _ body: String
    ) async throws -> Response {
        var headers = ["Content-Type": "application/json"].merging(extra) { $1 }
        if let key { headers["Authorization"] = "Bearer \(key)" }
        return try await send(method, url, headers: headers, body: Data(body.utf8))
    }

    /// ``json(_:_:key:headers:_:)`` sent again after each `429`'s `Retry-After`, up to `attempts`
    /// times: how a client makes many admin calls in a row without tripping the admin key's own
    /// limit (10/s, burst 20), whatever the speed of the machine.
    public static func politeJSON(_ method: String, _ url: String, key: String? = nil, attempts: Int = 5, _ body: String) async throws -> Response {
        var response = try await json(method, url, key: key, body)
        for _ in 1..<attempts where response.status == 429 {
            try await Task.sleep(for: .seconds(Int(response.header("Retry-After") ?? "") ?? 1))
            response = try await json(method, url, key: key, body)
        }
        return response
    }
}
