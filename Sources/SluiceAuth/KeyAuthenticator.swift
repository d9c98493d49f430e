import Foundation
import Synchronization

/// Turns a presented key into its record, or refuses it.
///
/// Records are cached for ``cacheLifetime`` (default 0.5 s). Changes (creation included) are
/// announced on Redis pub/sub and ``invalidate(_:)`` drops an entry at once; the short lifetime
/// bounds staleness even if an announcement is lost, so a revoked, rotated or changed key stops
/// working everywhere within it.
///
/// Misses are cached too, apart from found records and as many, and an unknown id costs the same
/// hash as a known one: a known and an unknown id then take the same path at every step (first
/// lookup: Redis; repeated: the cache), so timing does not tell whether an id exists. Each cache
/// holds at most ``cacheCapacity`` entries, so random ids from an attacker cannot grow memory nor
/// evict the records of real keys (failed authentication is also rate-limited per client address).
public final class KeyAuthenticator: Sendable {
    public let store: KeyStore
    public let cacheLifetime: Duration
    public let cacheCapacity: Int
    /// The bootstrap admin key's record, and after a rotation the previous one until it expires.
    private let bootstrapAdmins: Mutex<[KeyRecord]>
    private let cache = Mutex(Caches())
    /// The ids that exist, for throttled addresses (see ``authenticate(_:at:knownIDsOnly:)``).
    public let knownIDs: KnownKeyIDs

    /// Found records and misses, apart, so that floods of made-up ids never evict real keys.
    private struct Caches {
        var found: [String: CachedRecord] = [:]
        var missing: [String: CachedRecord] = [:]
    }

    private struct CachedRecord {
        let record: KeyRecord?
        let fetched: ContinuousClock.Instant
    }

    /// - Parameter bootstrapAdminKey: `SLUICE_ADMIN_KEY`: an admin key that exists before any
    ///   key does (it is never stored, only its hash is kept in memory).
    public init(store: KeyStore, bootstrapAdminKey: APIKey?, cacheLifetime: Duration = .milliseconds(500), cacheCapacity: Int = 10_000) {
        self.store = store
        self.cacheLifetime = cacheLifetime
        self.cacheCapacity = cacheCapacity
        self.knownIDs = KnownKeyIDs(store: store)
        self.bootstrapAdmins = Mutex(bootstrapAdminKey.map { [Self.bootstrapRecord($0)] } ?? [])
    }

    /// How long the previous bootstrap admin key keeps working after ``rotateBootstrapAdminKey(to:at:)``:
    /// the window in which clients reading the same secret file pick up the new one.
    public static let bootstrapRotationWindow: Duration = .seconds(60)

    /// Makes `key` the bootstrap admin key (a reloaded `SLUICE_ADMIN_KEY_FILE`); the one it
    /// replaces stays valid for ``bootstrapRotationWindow``.
    public func rotateBootstrapAdminKey(to key: APIKey, at now: Date = Date()) {
        let fresh = Self.bootstrapRecord(key)
        bootstrapAdmins.withLock { records in
            guard records.first != fresh else { return }
            let until = now.addingTimeInterval(Double(Self.bootstrapRotationWindow.components.seconds))
            records = [fresh] + records.prefix(1).map { previous in
                var previous = previous
                previous.expiresAt = until
                return previous
            }
        }
    }

    private static func bootstrapRecord(_ key: APIKey) -> KeyRecord {
        KeyRecord(
            id: key.id, name: "bootstrap admin (SLUICE_ADMIN_KEY)", scopes: [.admin],
            createdAt: Date(timeIntervalSince1970: 0), secrets: [.init(hash: key.hash)]
        )
    }

    /// The record of the presented key.
    ///
    /// When a lookup in Redis is due, `knownIDsOnly` is asked; true (for addresses already
    /// throttled for failed authentication, whose made-up keys must cost no Redis call) refuses
    /// an id that is not in the set of existing ids (``knownIDs``) as
    /// ``AuthenticationError/invalid`` without a lookup. Such an address can then tell an
    /// existing id from a made-up one by timing; an id alone opens nothing, and the address is
    /// already throttled.
    public func authenticate(
        _ presented: String?, at now: Date = Date(), knownIDsOnly: () -> Bool = { false }
    ) async throws(AuthenticationError) -> KeyRecord {
        switch answer(presented, at: now) {
        case .decided(let outcome):
            return try outcome.get()
        case .lookUp(let key):
            let record = try await record(for: key.id, knownIDsOnly: knownIDsOnly)
            return try Self.check(key, against: record, at: now).get()
        }
    }

    /// What ``authenticate(_:at:knownIDsOnly:)`` answers when it needs no lookup in Redis (the
    /// key's record or miss is cached and fresh, or the key is malformed or the bootstrap admin
    /// key); `nil` when it does. Synchronous: the usual request, whose key was seen within
    /// ``cacheLifetime``, is authenticated without a suspension. The work is the same as
    /// `authenticate`'s, hash included, whatever the outcome.
    public func cachedAnswer(_ presented: String?, at now: Date = Date()) -> Result<KeyRecord, AuthenticationError>? {
        guard case .decided(let outcome) = answer(presented, at: now) else { return nil }
        return outcome
    }

    private enum Answer {
        case decided(Result<KeyRecord, AuthenticationError>)
        /// The record of `key`'s id is to be looked up.
        case lookUp(APIKey)
    }

    private func answer(_ presented: String?, at now: Date) -> Answer {
        guard let presented, !presented.isEmpty else { return .decided(.failure(.missing)) }
        guard let key = APIKey(presented) else { return .decided(.failure(.invalid)) }
        let bootstrap = bootstrapAdmins.withLock { records -> (isBootstrap: Bool, record: KeyRecord?) in
            var isBootstrap = false
            for record in records where record.id == key.id {
                isBootstrap = true
                if record.accepts(key, at: now) && !record.isExpired(at: now) { return (true, record) }
            }
            return (isBootstrap, nil)
        }
        if bootstrap.isBootstrap {
            guard let admin = bootstrap.record else { return .decided(.failure(.invalid)) }
            return .decided(.success(admin))
        }
        guard let cached = cachedRecord(for: key.id) else { return .lookUp(key) }
        return .decided(Self.check(key, against: cached, at: now))
    }

    /// `record` (the one of `key`'s id, `nil` for an unknown id) checked against the presented key.
    private static func check(_ key: APIKey, against record: KeyRecord?, at now: Date) -> Result<KeyRecord, AuthenticationError> {
        guard let record else {
            // The same hash a known id costs (see the type's comment).
            _ = unknown.accepts(key, at: now)
            return .failure(.invalid)
        }
        // Unknown id and wrong secret look alike, so a caller learns nothing about which ids exist.
        guard record.accepts(key, at: now) else { return .failure(.invalid) }
        guard !record.isExpired(at: now) else { return .failure(.expired) }
        return .success(record)
    }

    /// The record of the presented key from the cache alone, however old, when the key is served
    /// while Redis is unreachable (``KeyRecord/servedWhenRedisFails``); nil otherwise. Degraded
    /// mode cannot learn of a change made meanwhile, so it serves what this replica last knew.
    public func lastKnownRecord(_ presented: String?, at now: Date = Date()) -> KeyRecord? {
        guard let presented, let key = APIKey(presented) else { return nil }
        guard let record = cache.withLock({ $0.found[key.id]?.record }), record.servedWhenRedisFails,
            record.accepts(key, at: now), !record.isExpired(at: now)
        else { return nil }
        return record
    }

    /// The record of `id` this replica has cached, however old; `nil` when it has none (an id it
    /// never saw is not looked up).
    public func knownRecord(id: String) -> KeyRecord? {
        cache.withLock { $0.found[id]?.record }
    }

    /// True when this replica knows a key it would serve while Redis is unreachable.
    public var knowsKeysServedWhenRedisFails: Bool {
        cache.withLock { $0.found.values.contains { $0.record?.servedWhenRedisFails == true } }
    }

    /// Forgets every cached record (after messages may have been missed).
    public func invalidateAll() {
        cache.withLock { $0 = Caches() }
    }

    /// Forgets what is cached of `id` (after a change announced by another replica).
    public func invalidate(_ id: String) {
        knownIDs.insert(id)  // perhaps just created
        cache.withLock { caches in
            caches.found[id] = nil
            caches.missing[id] = nil
        }
    }

    /// The cached record (`.some(nil)`: a cached miss) of `id`, when fresh.
    private func cachedRecord(for id: String) -> KeyRecord?? {
        let now = ContinuousClock.now
        // Both caches are read whatever the first holds, so a hit costs the same either way.
        let (hit, miss) = cache.withLock { ($0.found[id], $0.missing[id]) }
        guard let cached = hit ?? miss, now - cached.fetched < cacheLifetime else { return nil }
        return .some(cached.record)
    }

    /// The record of `id` from Redis (`nil`: none), cached.
    private func record(for id: String, knownIDsOnly: () -> Bool) async throws(AuthenticationError) -> KeyRecord? {
        let now = ContinuousClock.now
        if knownIDsOnly(), await !knownIDs.contains(id) { return nil }
        let record: KeyRecord?
        do {
            record = try await store.get(id)
        } catch {
            throw .unavailable(error)
        }
        let entry = CachedRecord(record: record, fetched: now)
        cache.withLock { caches in
            if record == nil {
                Self.insert(entry, id, into: &caches.missing, capacity: cacheCapacity)
                caches.found[id] = nil
            } else {
                Self.insert(entry, id, into: &caches.found, capacity: cacheCapacity)
                caches.missing[id] = nil
            }
        }
        return record
    }

    private static func insert(_ entry: CachedRecord, _ id: String, into entries: inout [String: CachedRecord], capacity: Int) {
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[id] = entry
    }

    /// Stands in for the record of an unknown id: accepts nothing.
    private static let unknown = KeyRecord(
        id: "", name: "", scopes: [], createdAt: Date(timeIntervalSince1970: 0), secrets: [.init(hash: KeyHash(digest: Array(repeating: 0, count: 32)))])
}

/// Why a request is not authenticated. The service answers `401` with `WWW-Authenticate: Bearer`,
/// except for ``unavailable(_:)`` (fail-secure: `503`).
public enum AuthenticationError: Error, Sendable, CustomStringConvertible {
    case missing
    case invalid
    case expired
    case unavailable(KeyStoreError)

    public var description: String {
        switch self {
        case .missing: "no API key: send Authorization: Bearer <key> or X-API-Key: <key>"
        case .invalid: "the API key is not valid"
        case .expired: "the API key has expired"
        case .unavailable(let error): "keys cannot be checked right now: \(error)"
        }
    }
}
