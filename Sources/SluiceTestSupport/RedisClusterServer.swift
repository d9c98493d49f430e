import Foundation
import Logging
import SluiceRedis

/// A real Redis Cluster on loopback for tests: 3 masters and 3 replicas, each a ``RedisServer``,
/// joined by `redis-cli --cluster create … --cluster-replicas 1`, node timeout 2 s, and (as Sluice
/// recommends) `cluster-require-full-coverage no`: a shard that is down stops only its own keys.
public final class RedisClusterServer: Sendable {
    public let nodes: [RedisServer]

    public init(masters: Int = 3) throws {
        nodes = try (0..<(masters * 2)).map { _ in
            try RedisServer(
                arguments: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
                            "--repl-diskless-sync-delay", "0", "--cluster-require-full-coverage", "no"],
                port: try Self.portWithFreeBus())
        }
        let addresses = nodes.map { "127.0.0.1:\($0.port)" }
        let (status, output) = try runCommand(["redis-cli", "--cluster", "create"] + addresses + ["--cluster-replicas", "1", "--cluster-yes"])
        guard status == 0 else { throw TestSupportError("redis-cli --cluster create failed: \(output)") }
        try waitUntil(timeout: 20) { self.nodes.allSatisfy { (try? self.cli($0, "CLUSTER", "INFO"))?.contains("cluster_state:ok") == true } }
        // A replica that never finished its first sync cannot be promoted: wait for every link.
        try waitUntil(timeout: 30) {
            self.nodes.allSatisfy { node in
                guard let info = try? self.cli(node, "INFO", "replication") else { return false }
                return info.contains("role:master") || info.contains("master_link_status:up")
            }
        }
    }

    /// A free port below 55536 whose cluster bus port (+10000) is free too.
    static func portWithFreeBus() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20_000..<30_000)
            if !RedisServer.accepts(port: port), !RedisServer.accepts(port: port + 10_000), let (fd, _) = try? RedisServer.boundSocket(port: port) {
                close(fd)
                if let (bus, _) = try? RedisServer.boundSocket(port: port + 10_000) {
                    close(bus)
                    return port
                }
            }
        }
        throw TestSupportError("no free port pair for a cluster node")
    }

    /// `redis://127.0.0.1:p1,127.0.0.1:p2,…` naming `seeds` of the nodes.
    public func url(seeds: Int = 2) -> String {
        "redis://" + nodes.prefix(seeds).map { "127.0.0.1:\($0.port)" }.joined(separator: ",")
    }

    public func configuration(seeds: Int = 2) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url(seeds: seeds))
        configuration.mode = .cluster
        configuration.commandTimeout = .seconds(2)
        return configuration
    }

    public func client(seeds: Int = 2) throws -> RedisClient {
        RedisClient(configuration: try configuration(seeds: seeds), logger: Logger(label: "test.cluster"))
    }

    /// `redis-cli -p <node> ARGS…`, its output.
    @discardableResult
    public func cli(_ node: RedisServer, _ arguments: String...) throws -> String {
        try cli(node, arguments)
    }

    /// `redis-cli -p <node> ARGS…` with the arguments as an array.
    @discardableResult
    public func cli(_ node: RedisServer, _ arguments: [String]) throws -> String {
        try runCommand(["redis-cli", "-p", String(node.port)] + arguments).output
    }

    /// Starts moving `slot` by hand, as `redis-cli --cluster reshard` does: the slot IMPORTING on
    /// another master, MIGRATING on its own; its keys (up to 1,000) and both nodes.
    public func beginMigration(of slot: Int) throws -> (source: RedisServer, destination: RedisServer, keys: [String]) {
        let source = try master(of: slot)
        guard let destination = try masters().first(where: { $0.port != source.port }) else { throw TestSupportError("one master only") }
        try cli(destination, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", try id(of: source))
        try cli(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", try id(of: destination))
        let keys = try cli(source, "CLUSTER", "GETKEYSINSLOT", String(slot), "1000").split(separator: "\n").map(String.init)
        return (source, destination, keys)
    }

    /// Moves `keys` of a migrating slot in one `MIGRATE … KEYS` batch.
    public func migrate(_ keys: [String], from source: RedisServer, to destination: RedisServer) throws {
        guard !keys.isEmpty else { return }
        try cli(source, ["MIGRATE", "127.0.0.1", String(destination.port), "", "0", "5000", "KEYS"] + keys)
    }

    /// Ends a migration: `slot` belongs to `destination` on every master.
    public func assign(_ slot: Int, to destination: RedisServer) throws {
        let destinationID = try id(of: destination)
        for node in try masters() { try cli(node, "CLUSTER", "SETSLOT", String(slot), "NODE", destinationID) }
    }

    /// The node serving `slot` as master now.
    public func master(of slot: Int) throws -> RedisServer {
        for node in nodes {
            guard let output = try? cli(node, "CLUSTER", "NODES") else { continue }
            for line in output.split(separator: "\n") where line.contains("myself") && line.contains("master") {
                for range in line.split(separator: " ").dropFirst(8) {
                    let bounds = range.split(separator: "-").compactMap { Int($0) }
                    if bounds.count == 2 ? (bounds[0]...bounds[1]).contains(slot) : bounds.first == slot { return node }
                }
            }
        }
        throw TestSupportError("no master serves slot \(slot)")
    }

    /// The node id (`CLUSTER MYID`).
    public func id(of node: RedisServer) throws -> String {
        try cli(node, "CLUSTER", "MYID").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The masters, by `CLUSTER NODES` of a live node.
    public func masters() throws -> [RedisServer] {
        nodes.filter { node in (try? cli(node, "ROLE"))?.hasPrefix("master") == true }
    }
}
