import Foundation
import SluiceAuth
import SluiceLimiter
import SluiceRedis
import SluiceTestSupport
import Testing

@Suite("Key records in a real redis-server")
struct KeyStoreTests {
    let store: KeyStore

    init() throws {
        store = KeyStore(client: try RedisServer.sharedClient())
    }

    func newRecord(_ key: APIKey, scopes: [Scope] = [.predict], expiresAt: Date? = nil) -> KeyRecord {
        KeyRecord(id: key.id, name: "test", scopes: scopes, plan: KeyPlan(quotaPerDay: 100), expiresAt: expiresAt, secrets: [.init(hash: key.hash)])
    }

    @Test func onlyTheHashIsStored() async throws {
        let key = APIKey.generate()
        #expect(try await store.create(newRecord(key)))
        #expect(try await !store.create(newRecord(key)), "ids are unique")
        let raw = try #require(try await store.client.send("GET", "sluice:key:{\(key.id)}").string)
        #expect(!raw.contains(key.revealed))
        #expect(!raw.contains(String(key.revealed.suffix(64))))
        #expect(raw.contains(key.hash.hex))
        let record = try #require(try await store.get(key.id))
        #expect(record.scopes == [.predict])
        #expect(record.plan.limiterPolicies.map(\.name) == ["default", "daily"])
        #expect(try await store.list().contains { $0.id == key.id })
    }

    /// Unknown ids are cached like known ones (apart, so made-up ids never evict real keys): asking
    /// about the same id again costs no Redis call whether it exists or not, so timing cannot tell.
    @Test func unknownIdsAreCachedLikeKnownOnes() async throws {
        let authenticator = KeyAuthenticator(store: store, bootstrapAdminKey: nil, cacheLifetime: .seconds(30), cacheCapacity: 4)
        let known = APIKey.generate()
        _ = try await store.create(newRecord(known))
        let wrongSecret = "sk_\(known.id)_\(String(repeating: "a", count: 64))"
        let unknown = APIKey.generate().revealed
        func gets() async throws -> Int {
            let info = try await store.client.send("INFO", "commandstats").string ?? ""
            return Int(info.firstMatch(of: /cmdstat_get:calls=(\d+)/)?.1 ?? "0") ?? 0
        }
        for presented in [wrongSecret, unknown] {
            await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(presented) }
            let before = try await gets()
            for _ in 0..<5 {
                await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(presented) }
            }
            #expect(try await gets() == before, "repeated lookups of \(presented.prefix(16)) are served from the cache")
        }
        // A flood of made-up ids fills only the cache of misses: the known record stays cached.
        for _ in 0..<10 {
            await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(APIKey.generate().revealed) }
        }
        let before = try await gets()
        #expect(try await authenticator.authenticate(known.revealed).id == known.id)
        #expect(try await gets() == before)
    }

    @Test func authenticationAcceptsOnlyLiveKeys() async throws {
        let authenticator = KeyAuthenticator(store: store, bootstrapAdminKey: nil, cacheLifetime: .zero)
        let key = APIKey.generate()
        _ = try await store.create(newRecord(key))
        #expect(try await authenticator.authenticate(key.revealed).id == key.id)

        let wrongSecret = APIKey("sk_\(key.id)_\(String(repeating: "a", count: 64))")!
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(wrongSecret.revealed) }
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(APIKey.generate().revealed) }
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate("not a key") }
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(nil) }

        let expired = APIKey.generate()
        _ = try await store.create(newRecord(expired, expiresAt: Date(timeIntervalSinceNow: -1)))
        do {
            _ = try await authenticator.authenticate(expired.revealed)
            Issue.record("an expired key must be refused")
        } catch {
            guard case .expired = error else { throw error }
        }

        #expect(try await store.delete(key.id))
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(key.revealed) }
    }

    @Test func rotationKeepsTheOldSecretForItsGracePeriod() async throws {
        let authenticator = KeyAuthenticator(store: store, bootstrapAdminKey: nil, cacheLifetime: .zero)
        let old = APIKey.generate()
        var record = newRecord(old)
        _ = try await store.create(record)
        let new = APIKey.generate(id: old.id)
        record.secrets = [.init(hash: old.hash, validUntil: Date(timeIntervalSinceNow: 0.3)), .init(hash: new.hash)]
        #expect(try await store.update(record))
        #expect(try await authenticator.authenticate(old.revealed).id == old.id)
        #expect(try await authenticator.authenticate(new.revealed).id == old.id)
        try await Task.sleep(for: .milliseconds(400))
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(old.revealed) }
        #expect(try await authenticator.authenticate(new.revealed).id == old.id)
    }

    /// A reloaded SLUICE_ADMIN_KEY_FILE: the new key at once, the previous one for the window only.
    @Test func theBootstrapAdminKeyRotatesWithAWindowForThePreviousOne() async throws {
        let first = APIKey.generate()
        let authenticator = KeyAuthenticator(store: store, bootstrapAdminKey: first, cacheLifetime: .zero)
        let second = APIKey.generate()
        let rotatedAt = Date()
        authenticator.rotateBootstrapAdminKey(to: second, at: rotatedAt)
        #expect(try await authenticator.authenticate(second.revealed).scopes == [.admin])
        #expect(try await authenticator.authenticate(first.revealed, at: rotatedAt.addingTimeInterval(59)).scopes == [.admin])
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(first.revealed, at: rotatedAt.addingTimeInterval(61)) }
        // The same key again changes nothing; a third one ends the first at once.
        authenticator.rotateBootstrapAdminKey(to: second, at: rotatedAt.addingTimeInterval(10))
        #expect(try await authenticator.authenticate(first.revealed, at: rotatedAt.addingTimeInterval(59)).scopes == [.admin])
        authenticator.rotateBootstrapAdminKey(to: APIKey.generate(), at: rotatedAt.addingTimeInterval(20))
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(first.revealed, at: rotatedAt.addingTimeInterval(21)) }
        #expect(try await authenticator.authenticate(second.revealed, at: rotatedAt.addingTimeInterval(21)).scopes == [.admin])
    }

    @Test func cachedRecordsExpireWithinTheCacheLifetime() async throws {
        let authenticator = KeyAuthenticator(store: store, bootstrapAdminKey: nil, cacheLifetime: .milliseconds(300))
        let key = APIKey.generate()
        _ = try await store.create(newRecord(key))
        _ = try await authenticator.authenticate(key.revealed)
        _ = try await store.delete(key.id)
        // Still cached right after the delete (this replica has not been told) …
        #expect(try await authenticator.authenticate(key.revealed).id == key.id)
        // … and refused once the cache lifetime has passed.
        try await Task.sleep(for: .milliseconds(350))
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(key.revealed) }
    }

    @Test func bootstrapAdminKeyIsAdminOnly() async throws {
        let admin = APIKey.generate()
        let authenticator = KeyAuthenticator(store: store, bootstrapAdminKey: admin)
        let record = try await authenticator.authenticate(admin.revealed)
        #expect(record.scopes == [.admin])
        let forged = APIKey("sk_\(admin.id)_\(String(repeating: "b", count: 64))")!
        await #expect(throws: AuthenticationError.self) { try await authenticator.authenticate(forged.revealed) }
        #expect(try await store.client.send("EXISTS", "sluice:key:{\(admin.id)}").int == 0, "never stored")
    }
}
