import Logging
import Synchronization

/// Redis Cluster routing over ``RedisConnection``s: one auto-pipelined connection per master,
/// each command sent to the master of its keys' slot, following the cluster when it moves.
///
/// Modelled on go-redis' ClusterClient and hiredis-cluster:
/// - the layout comes from `CLUSTER SHARDS` (`CLUSTER SLOTS` on servers without it), asked of a
///   known master or a seed; it is asked again at most every 100 ms (one request at a time, the
///   others wait for it) after a `MOVED`, after a connection error, and when older than 10 s;
/// - `MOVED slot node`: the slot is patched at once and the command re-sent there;
/// - `ASK slot node` (a slot being migrated): `ASKING` + the command on that node, layout unchanged;
/// - `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`, `MASTERDOWN`: retried with backoff (10 ms doubling to
///   100 ms) until the command timeout: a multi-key script whose keys are split by a slot's
///   migration gets `TRYAGAIN` until the last of them has moved (from the importing node, after
///   an `ASK`, it is asked again there);
/// - at most 5 redirects and reconnections in all;
/// - a connection error: the layout is refreshed, and the command re-sent only when it cannot
///   have run (it was never written) or changes nothing (``RedisCommand/isIdempotent``): a
///   limiter script whose reply was lost may have charged, and charging twice is over-refusal.
/// Keys of one command in different slots are refused before anything is sent.
final class ClusterRouter: Sendable {
    private struct State {
        var layout = ClusterLayout()
        var nodes: [RedisConfiguration.Endpoint: RedisConnection] = [:]
        var refreshedAt: ContinuousClock.Instant?
        var refreshing: Task<Result<Void, RedisError>, Never>?
        var isClosed = false
    }

    private let configuration: RedisConfiguration
    /// Whose TLS context every node's connection shares.
    private let connector: RedisConnector
    private let logger: Logger
    private let state = Mutex(State())
    private let movedCount = Atomic<Int>(0)
    private let askCount = Atomic<Int>(0)

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.connector = RedisConnector(configuration: configuration)
        self.logger = logger
    }

    /// Redirects followed so far: `MOVED` and `ASK`.
    var redirects: (moved: Int, ask: Int) { (movedCount.load(ordering: .relaxed), askCount.load(ordering: .relaxed)) }

    /// The connections made so far, one per node.
    var connections: [RedisConnection] { state.withLock { Array($0.nodes.values) } }

    var roundTrips: Int { state.withLock { $0.nodes.values.reduce(0) { $0 + $1.roundTrips } } }

    func send(_ command: RedisCommand) async throws(RedisError) -> RedisReply {
        let deadline = ContinuousClock.now + configuration.commandTimeout
        let slot = try Self.slot(of: command)
        // A layout that is merely old still routes: only a missing one makes a failed refresh fatal.
        switch layoutAge {
        case .none: try await refresh(force: false)
        case .old: try? await refresh(force: false)
        case .fresh: break
        }
        var target = try await owner(of: slot)
        var asking = false
        var backoff = Duration.milliseconds(10)
        var redirects = 0
        while true {
            do throws(RedisError) {
                return try await connection(to: target).send(command, asking: asking)
            } catch .server(let message) {
                if let redirect = ClusterRedirect(message) {
                    redirects += 1
                    guard redirects <= Self.maximumRedirects else { throw .server(message) }
                    let to = Self.resolve(redirect.endpoint, from: target)
                    asking = redirect.kind == .ask
                    if asking {
                        askCount.add(1, ordering: .relaxed)
                    } else {
                        movedCount.add(1, ordering: .relaxed)
                        state.withLock { $0.layout.assign(redirect.slot, to: to) }
                        Task { try? await self.refresh(force: false) }
                    }
                    target = to
                    continue
                }
                guard Self.transient.contains(where: { message.hasPrefix($0) }), ContinuousClock.now + backoff < deadline else {
                    throw .server(message)
                }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .milliseconds(100))
                // A TRYAGAIN from the node an ASK sent us to: the slot is still migrating, and the
                // rest of the command's keys are on their way there; ask it again.
                if !asking { target = try await owner(of: slot) }
            } catch {
                guard error.isUnavailable else { throw error }
                // Whatever happened, the layout may have changed (a failover): ask again.
                _ = try? await refresh(force: true)
                redirects += 1
                guard redirects <= Self.maximumRedirects, Self.wasNotSent(error) || command.isIdempotent, ContinuousClock.now < deadline else {
                    throw error
                }
                asking = false
                target = try await owner(of: slot)
            }
        }
    }

    /// Every master, for `PING` and script loading.
    func masters() async throws(RedisError) -> [RedisConnection] {
        if layoutAge != .fresh { try await refresh(force: false) }
        let endpoints = state.withLock { $0.layout.masters }
        return endpoints.sorted { $0.description < $1.description }.map(connection(to:))
    }

    func shutdown() {
        let nodes = state.withLock { state in
            state.isClosed = true
            return Array(state.nodes.values)
        }
        for node in nodes { node.close() }
    }

    // MARK: - Layout

    private enum LayoutAge { case none, old, fresh }

    /// `refreshedAt` is set only with a layout that serves slots: checked on every command, so
    /// it never scans the 16 384 slots.
    private var layoutAge: LayoutAge {
        state.withLock { state in
            guard let at = state.refreshedAt else { return .none }
            return ContinuousClock.now - at > .seconds(10) ? .old : .fresh
        }
    }

    /// Asks the cluster for its layout; concurrent callers share one request, and (unless
    /// `force`d by a connection error) it is not asked again within 100 ms.
    func refresh(force: Bool) async throws(RedisError) {
        let task: Task<Result<Void, RedisError>, Never>? = state.withLock { state in
            if let running = state.refreshing { return running }
            if !force, let at = state.refreshedAt, ContinuousClock.now - at < .milliseconds(100) { return nil }
            let task = Task { await self.fetchLayout() }
            state.refreshing = task
            return task
        }
        guard let task else { return }
        try await task.value.get()
    }

    /// Asks every known master and seed at once and takes the first layout that comes back: a
    /// dead master (the usual reason to ask) must not hold the refresh for its timeout.
    private func fetchLayout() async -> Result<Void, RedisError> {
        defer { state.withLock { $0.refreshing = nil } }
        let known = state.withLock { $0.layout.masters }
        let candidates = known.sorted { $0.description < $1.description } + configuration.seeds.filter { !known.contains($0) }
        let answers = AsyncStream<(RedisConfiguration.Endpoint, Result<ClusterLayout, RedisError>)>.makeStream()
        for endpoint in candidates {
            Task {
                do throws(RedisError) {
                    answers.continuation.yield((endpoint, .success(try await self.layout(from: self.connection(to: endpoint)))))
                } catch {
                    answers.continuation.yield((endpoint, .failure(error)))
                }
            }
        }
        var failures: [String] = []
        var refusal: RedisError?
        var answered = 0
        for await (endpoint, answer) in answers.stream {
            answered += 1
            switch answer {
            case .success(let layout):
                answers.continuation.finish()
                state.withLock { state in
                    state.layout = layout
                    state.refreshedAt = .now
                }
                return .success(())
            case .failure(.server(let message)) where message.contains("cluster support disabled"):
                refusal = .invalidConfiguration("\(endpoint) is not a cluster (\(message)); use --redis-mode single")
            case .failure(let error):
                if case .authenticationFailed = error { refusal = error }
                failures.append("\(endpoint): \(error)")
            }
            if answered == candidates.count { break }
        }
        answers.continuation.finish()
        if let refusal { return .failure(refusal) }
        return .failure(.cannotConnect(
            endpoint: candidates.map(\.description).joined(separator: ","), reason: "no node answered: \(failures.joined(separator: "; "))"))
    }

    private func layout(from node: RedisConnection) async throws(RedisError) -> ClusterLayout {
        let layout: ClusterLayout
        do {
            layout = try ClusterLayout.fromShards(try await node.send(RedisCommand("CLUSTER", "SHARDS")), tls: configuration.tls != nil)
        } catch .server(let message) where message.lowercased().contains("unknown subcommand") {
            layout = try ClusterLayout.fromSlots(try await node.send(RedisCommand("CLUSTER", "SLOTS")))
        }
        guard !layout.isEmpty else { throw .unexpectedReply("the cluster reports no slot served") }
        return layout
    }

    /// The master of `slot` (any master for keyless commands); when the layout has none (a
    /// failover under way), the layout is asked for again (at most every 100 ms) before giving up.
    private func owner(of slot: Int?) async throws(RedisError) -> RedisConfiguration.Endpoint {
        if let owner = knownOwner(of: slot) { return owner }
        try await refresh(force: false)
        guard let owner = knownOwner(of: slot) else { throw .unavailableSlot(slot ?? -1) }
        return owner
    }

    private func knownOwner(of slot: Int?) -> RedisConfiguration.Endpoint? {
        state.withLock { state in
            if let slot { return state.layout.owners[slot] }
            return state.layout.masters.min { $0.description < $1.description }
        }
    }

    private func connection(to endpoint: RedisConfiguration.Endpoint) -> RedisConnection {
        let (connection, created) = state.withLock { state -> (RedisConnection, Bool) in
            if let existing = state.nodes[endpoint] { return (existing, false) }
            let connection = RedisConnection(connector: connector.node(endpoint), logger: logger)
            state.nodes[endpoint] = connection
            return (connection, state.isClosed)
        }
        if created { connection.close() }
        return connection
    }

    // MARK: - Rules

    private static let maximumRedirects = 5
    private static let transient = ["TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN"]

    /// The slot all of the command's keys share (`nil` without keys); refused across slots.
    static func slot(of command: RedisCommand) throws(RedisError) -> Int? {
        let keys = command.keys
        guard let first = keys.first else { return nil }
        let slot = HashSlot.of(first)
        if keys.contains(where: { HashSlot.of($0) != slot }) {
            let names = keys.map { String(decoding: $0, as: UTF8.self) }
            throw .crossSlot(command: command.name, keys: names)
        }
        return slot
    }

    /// A redirect may name no host (`MOVED 3999 :6381`): the same host, another port.
    private static func resolve(_ endpoint: RedisConfiguration.Endpoint, from current: RedisConfiguration.Endpoint) -> RedisConfiguration.Endpoint {
        if case .tcp(let host, let port) = endpoint, host.isEmpty, case .tcp(let currentHost, _) = current { return .tcp(host: currentHost, port: port) }
        return endpoint
    }

    /// Errors raised before the command was written: it cannot have run.
    private static func wasNotSent(_ error: RedisError) -> Bool {
        switch error {
        case .cannotConnect, .backPressure: true
        default: false
        }
    }
}
