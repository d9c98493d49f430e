/// Which master serves which hash slot, as a cluster node reports it.
struct ClusterLayout: Sendable {
    /// The master of each of the 16 384 slots (`nil`: uncovered).
    private(set) var owners: [RedisConfiguration.Endpoint?] = Array(repeating: nil, count: HashSlot.count)
    /// Every master given a slot since the layout was read (read per keyless command: no scan;
    /// one a MOVED left without slots stays until the next refresh, and still answers).
    private(set) var masters: Set<RedisConfiguration.Endpoint> = []

    var isEmpty: Bool { masters.isEmpty }

    /// Gives `slot` to `master` (a MOVED patches one slot so).
    mutating func assign(_ slot: Int, to master: RedisConfiguration.Endpoint) {
        owners[slot] = master
        masters.insert(master)
    }

    /// From `CLUSTER SHARDS` (Redis ≥ 7): per shard `slots` (start, end pairs) and `nodes`
    /// (flat field/value lists); the master is the node whose `role` is `master` and whose
    /// `health` is `online`. With `tls`, a node's `tls-port` is used when it has one.
    static func fromShards(_ reply: RedisReply, tls: Bool) throws(RedisError) -> ClusterLayout {
        guard let shards = reply.array else { throw .unexpectedReply("CLUSTER SHARDS answered \(reply)") }
        var layout = ClusterLayout()
        for shard in shards {
            let fields = fields(shard)
            guard let ranges = fields["slots"]?.array?.compactMap(\.int), let nodes = fields["nodes"]?.array else { continue }
            let master = nodes.map(Self.fields).first { $0["role"]?.string == "master" && $0["health"]?.string != "fail" }
            guard let master, let host = (master["endpoint"]?.string).flatMap({ $0.isEmpty || $0 == "?" ? nil : $0 }) ?? master["ip"]?.string,
                let port = (tls ? master["tls-port"]?.int : nil) ?? master["port"]?.int
            else { continue }
            for pair in stride(from: 0, to: ranges.count - 1, by: 2) where ranges[pair] <= ranges[pair + 1] && ranges[pair + 1] < HashSlot.count {
                for slot in ranges[pair]...ranges[pair + 1] { layout.assign(slot, to: .tcp(host: host, port: port)) }
            }
        }
        return layout
    }

    /// From `CLUSTER SLOTS` (older servers): `[start, end, [ip, port, id, …], replicas…]` per range.
    static func fromSlots(_ reply: RedisReply) throws(RedisError) -> ClusterLayout {
        guard let ranges = reply.array else { throw .unexpectedReply("CLUSTER SLOTS answered \(reply)") }
        var layout = ClusterLayout()
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int, start <= end, end < HashSlot.count,
                let master = parts[2].array, master.count >= 2, let host = master[0].string, let port = master[1].int
            else { continue }
            for slot in start...end { layout.assign(slot, to: .tcp(host: host, port: port)) }
        }
        return layout
    }

    private static func fields(_ reply: RedisReply) -> [String: RedisReply] {
        guard let items = reply.array else { return [:] }
        var result: [String: RedisReply] = [:]
        for index in stride(from: 0, to: items.count - 1, by: 2) {
            if let name = items[index].string { result[name] = items[index + 1] }
        }
        return result
    }
}

/// A `MOVED` or `ASK` error reply: `MOVED 3999 10.0.0.2:6381`.
struct ClusterRedirect: Equatable {
    enum Kind: String { case moved = "MOVED", ask = "ASK" }
    let kind: Kind
    let slot: Int
    let endpoint: RedisConfiguration.Endpoint

    init?(_ message: String) {
        let parts = message.split(separator: " ")
        guard parts.count == 3, let kind = Kind(rawValue: String(parts[0])), let slot = Int(parts[1]), (0..<HashSlot.count).contains(slot),
            let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...])
        else { return nil }
        var host = parts[2][..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        self.kind = kind
        self.slot = slot
        self.endpoint = .tcp(host: String(host), port: port)
    }
}
