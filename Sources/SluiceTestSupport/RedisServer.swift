import Foundation
import Logging
import SluiceRedis
import Synchronization

/// A real `redis-server` on a free loopback port, for tests.
///
/// Each server gets its own directory (its AOF/RDB files survive ``restart()``), and a watchdog
/// shell kills it once the test process is gone, so a crashed test run leaves nothing behind.
public final class RedisServer: Sendable {
    public let port: Int
    public let directory: String
    private let arguments: [String]
    public let tls: TLSFiles.Server?

    /// A server shared by tests that only need *a* Redis and use keys of their own: the one at
    /// `SLUICE_TEST_REDIS_URL` (started by `scripts/test`) when set, otherwise one started here.
    public static let sharedURL: String = {
        if let url = ProcessInfo.processInfo.environment["SLUICE_TEST_REDIS_URL"], !url.isEmpty { return url }
        return sharedServer.url
    }()

    private static let sharedServer = try! RedisServer()

    /// A new client of the shared Redis (``sharedURL``).
    public static func sharedClient() throws -> RedisClient {
        RedisClient(configuration: try RedisConfiguration(url: sharedURL), logger: Logger(label: "test.redis"))
    }

    /// Starts a server; `arguments` are extra `redis-server` options, e.g. `["--requirepass", "x"]`.
    /// With `tls` the port speaks TLS only (`--port 0 --tls-port …`), with that certificate.
    /// `port`: a chosen one (a cluster node needs port + 10000 free for its bus too).
    public init(arguments: [String] = [], tls: TLSFiles.Server? = nil, port: Int? = nil) throws {
        self.port = try port ?? Self.freePort()
        self.tls = tls
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sluice-redis-\(port)-\(UUID().uuidString.prefix(8))").path
        self.arguments = arguments
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    public var url: String { "\(tls == nil ? "redis" : "rediss")://127.0.0.1:\(port)" }

    public func configuration(password: String? = nil, username: String? = nil) -> RedisConfiguration {
        RedisConfiguration(
            endpoint: .tcp(host: "127.0.0.1", port: port),
            username: username,
            password: password,
            connectTimeout: .seconds(1),
            commandTimeout: .seconds(2)
        )
    }

    public func client(password: String? = nil, username: String? = nil) -> RedisClient {
        RedisClient(configuration: configuration(password: password, username: username), logger: Logger(label: "test.redis"))
    }

    private var pidFile: String { "\(directory)/redis.pid" }

    /// Starts `redis-server` (again) on the same port and directory and waits until it accepts connections.
    public func start() throws {
        let listen =
            if let tls {
                ["--port", "0", "--tls-port", String(port), "--tls-cert-file", tls.certificate, "--tls-key-file", tls.key,
                 "--tls-ca-cert-file", tls.ca, "--tls-auth-clients", tls.requireClientCertificates ? "yes" : "no"]
            } else {
                ["--port", String(port)]
            }
        let options = listen + [
            "--bind", "127.0.0.1", "--dir", directory,
            "--pidfile", pidFile, "--logfile", "\(directory)/redis.log",
            "--save", "", "--appendonly", "no", "--daemonize", "yes", "--enable-debug-command", "local",
        ] + arguments
        // Start the daemon, then leave a watchdog that kills it when this test process exits.
        // Inherited descriptors (the test's own Redis connections) are closed first, so the daemons
        // never hold a test connection open. The daemon writes its pidfile after `redis-server`
        // returns, hence the wait for it.
        let script = """
            for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
            redis-server "$@" || exit 1
            ( for _ in $(seq 100); do [ -s '\(pidFile)' ] && break; sleep 0.05; done
              pid=$(cat '\(pidFile)')
              while kill -0 \(getpid()) 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
              kill -9 "$pid" ) >/dev/null 2>&1 </dev/null &
            """
        let status = try Self.run("/bin/bash", ["-c", script, "bash"] + options)
        guard status == 0 else { throw TestSupportError("redis-server failed to start (exit \(status)); see \(directory)/redis.log") }
        try waitUntil(timeout: 5) { Self.accepts(port: self.port) }
    }

    /// Stops the server (SIGTERM, as `docker stop` or systemd would) and waits until it has exited.
    public func stop() { end(with: SIGTERM) }

    /// SIGSTOP: the server hangs (connections stay open, nothing is answered) until ``resume()``.
    public func pause() { signal(SIGSTOP) }

    /// SIGCONT after ``pause()``.
    public func resume() { signal(SIGCONT) }

    private func signal(_ signal: Int32) {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return }
        kill(pid, signal)
    }

    /// SIGKILL, as a crash or an OOM kill would: nothing is flushed that was not already written.
    public func crash() { end(with: SIGKILL) }

    private func end(with signal: Int32) {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return }
        kill(pid, signal)
        // The listening socket closes when the process ends (zombie or not): then the port is free.
        try? waitUntil(timeout: 10) { !Self.accepts(port: self.port) }
        try? FileManager.default.removeItem(atPath: pidFile)
    }

    public func restart() throws {
        stop()
        try start()
    }

    // MARK: - Helpers

    /// Runs a program and waits for it. `posix_spawn` rather than `Process`: Foundation learns of a
    /// child's exit through a descriptor that the backgrounded watchdog would inherit and keep open.
    /// Runs a program and waits for it; `environment` adds to this process' (an empty value unsets).
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // A Dispatch worker thread blocks SIGTERM and friends; a child inherits that mask, and a
        // redis-server started with it would ignore SIGTERM. Start children with no signal blocked.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        // An empty value removes the variable from the child's environment.
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.filter { !$0.value.isEmpty }
        let envp = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard spawned == 0 else { throw TestSupportError("cannot run \(executable): error \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status >> 8) & 0xff
    }

    /// A port the kernel just handed out for 127.0.0.1 (free at that moment).
    public static func freePort() throws -> Int {
        let (fd, port) = try boundSocket()
        close(fd)
        return port
    }

    /// A socket bound to a fresh 127.0.0.1 port and not listening: the port is taken, yet nothing
    /// answers there. Close the descriptor to free it.
    public static func boundSocket(port: Int = 0) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed") }
        var address = loopback(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(fd)
            throw TestSupportError("bind() failed")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// True when something accepts TCP connections on 127.0.0.1:`port`.
    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// Connects to `port`, writes `bytes`, waits `seconds` without reading, and hangs up: a
    /// client that gives up on a request mid-flight.
    public static func sendAndHangUp(port: Int, _ bytes: String, after seconds: Double) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket failed") }
        defer { close(fd) }
        var address = loopback(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestSupportError("cannot connect to port \(port)") }
        let data = Array(bytes.utf8)
        guard write(fd, data, data.count) == data.count else { throw TestSupportError("short write") }
        usleep(useconds_t(seconds * 1_000_000))
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` seconds pass.
public func waitUntil(timeout: Double, _ condition: () -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while !condition() {
        guard Date() < deadline else { throw TestSupportError("condition not met within \(timeout) s") }
        usleep(20_000)
    }
}

public struct TestSupportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
