/// Every Redis key and pub/sub channel Sluice uses, spelled once. Nothing else writes `sluice:…`;
/// the ACLs in `deploy/redis/` grant these patterns (`~sluice:*`, `&sluice:*`).
///
/// A `{…}` part is a Redis Cluster hash tag: keys with the same tag share a slot, which a script
/// touching several of them (a key's policies, one queue partition, the model registry) needs.
public enum Keyspace {
    // MARK: API keys

    /// One API key's record (JSON); tagged with the key id, like its limiter state.
    public static func apiKey(_ id: String) -> String { "sluice:key:{\(id)}" }
    /// The set of every key id.
    public static let apiKeyIDs = "sluice:keys"
    /// Channel: a key id whose record changed (created, updated, rotated, deleted).
    public static let apiKeyChanges = "sluice:keys:changed"

    // MARK: Tenants

    /// One tenant's record (JSON); tagged like the limiter state of its keys (`{t:<id>}`).
    public static func tenant(_ id: String) -> String { "sluice:tenant:{t:\(id)}" }
    /// The set of every tenant id.
    public static let tenantIDs = "sluice:tenants"
    /// Channel: a tenant id whose record changed (created, updated, deleted).
    public static let tenantChanges = "sluice:tenants:changed"

    // MARK: Limits

    /// Where rate-limiter state lives: `<namespace>:{<limiter key>}:<policy>`.
    public static let rateLimits = "sluice:rl"
    /// The state of one policy of one limiter key (an API key id, `t:<tenant id>` for the keys of
    /// a tenant, or `client-<address>`).
    public static func rateLimit(_ key: String, policy: String, namespace: String = rateLimits) -> String {
        "\(namespace):{\(key)}:\(policy)"
    }
    /// A limiter call's record under its request id (`gcra.lua`'s `r:` option), beside the state
    /// it charged: a retry after a lost reply is answered from it.
    public static func limiterRequest(_ key: String, id: String, namespace: String = rateLimits) -> String {
        "\(namespace):{\(key)}:req:\(id)"
    }
    /// Usage metering: one hash per limiter key, owner tag (`""`: the limiter key itself; `k:<key
    /// id>` and `t` under a tenant's) and UTC day (days since the epoch), with counts per hour.
    public static func usage(_ key: String, tag: String, day: Int) -> String {
        tag.isEmpty ? "sluice:usage:{\(key)}:\(day)" : "sluice:usage:{\(key)}:\(tag):\(day)"
    }
    /// `max_in_flight`: the leases of one key's requests in flight (a sorted set by deadline).
    public static func inFlight(_ key: String) -> String { "sluice:inflight:{\(key)}" }
    /// Live replicas (a sorted set by heartbeat deadline).
    public static let replicas = "sluice:replicas"

    // MARK: Jobs

    /// The namespace of job-queue partition `index`.
    public static func jobPartition(_ index: Int) -> String { "sluice:{jobs:\(index)}" }
    /// The single queue of versions before partitioning: still drained, never written.
    public static let legacyJobs = "sluice:{jobs}"

    // MARK: Idempotency

    /// A stored answer to one `Idempotency-Key` (`digest`: its SHA-256, hex) of one API key.
    public static func idempotency(keyID: String, digest: String) -> String { "sluice:idem:{\(keyID)}:\(digest)" }

    // MARK: Models

    /// The model registry: one hash tag, so the registry is one Redis Cluster slot.
    public enum Models {
        public static func artifact(_ version: Int) -> String { "sluice:{models}:artifact:\(version)" }
        public static let versions = "sluice:{models}:versions"
        public static let nextVersion = "sluice:{models}:next"
        public static let active = "sluice:{models}:active"
        public static let previous = "sluice:{models}:previous"
        public static let bootstrapLock = "sluice:{models}:bootstrap-lock"
        /// Channel: the version just activated.
        public static let activations = "sluice:models:activated"
    }
}
