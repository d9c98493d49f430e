import Foundation
import Logging
import SluiceRedis
import SluiceTestSupport
import Testing

@testable import SluiceModel

@Suite("Signed artifacts in a real redis-server")
struct ModelRegistryTests {
    let signingKey = Array("0123456789abcdef0123456789abcdef-test-only".utf8)

    @Test func signaturesCoverEveryByte() throws {
        let signer = try #require(ArtifactSigner(key: signingKey))
        let bytes = Array(#"{"version":1}"#.utf8)
        let signature = signer.signature(of: bytes)
        #expect(signer.verify(bytes, signature: signature))
        var altered = bytes
        altered[10] ^= 1
        #expect(!signer.verify(altered, signature: signature))
        let other = try #require(ArtifactSigner(key: Array(repeating: 7, count: 32)))
        #expect(!other.verify(bytes, signature: signature))
        #expect(!signer.verify(bytes, signature: "zz"))
        #expect(ArtifactSigner(key: Array(repeating: 1, count: 31)) == nil)
    }

    @Test func tamperedArtifactsAreRefusedAndNeverActivated() async throws {
        let server = try RedisServer()
        let client = server.client()
        defer { client.shutdown() }
        let registry = ModelRegistry(client: client, signer: try #require(ArtifactSigner(key: signingKey)))
        let iris = try IrisDataset.load()
        let first = try await registry.store(LogisticRegression().train(iris, trainedBy: "test"))
        try await registry.activate(first.version)
        #expect(try await registry.load(first.version) == first)

        let second = try await registry.store(LogisticRegression().train(iris, trainedBy: "test"))
        // An attacker with Redis access changes one weight of version 2.
        let stored = try #require(try await client.send("HGET", "sluice:{models}:artifact:\(second.version)", "artifact").string)
        let forged = stored.replacingOccurrences(of: "\"weights\":[[", with: "\"weights\":[[9")
        #expect(forged != stored)
        _ = try await client.send("HSET", "sluice:{models}:artifact:\(second.version)", "artifact", forged)
        await #expect(throws: ModelError.tampered(version: second.version)) { try await registry.load(second.version) }
        await #expect(throws: ModelError.tampered(version: second.version)) { try await registry.activate(second.version) }
        #expect(try await registry.activeVersion() == first.version)

        // A registry with another signing key trusts nothing of this one.
        let stranger = ModelRegistry(client: client, signer: try #require(ArtifactSigner(key: Array(repeating: 9, count: 32))))
        await #expect(throws: ModelError.tampered(version: first.version)) { try await stranger.load(first.version) }
    }

    @Test func exactlyOneReplicaTrainsTheFirstModel() async throws {
        let server = try RedisServer()
        let client = server.client()
        defer { client.shutdown() }
        let registry = ModelRegistry(client: client, signer: try #require(ArtifactSigner(key: signingKey)))
        let iris = try IrisDataset.load()
        let trainings = Counter()
        let versions = try await withThrowingTaskGroup(of: Int.self) { group in
            for replica in 0..<5 {
                group.addTask {
                    try await registry.bootstrap(owner: "replica-\(replica)") {
                        trainings.increment()
                        return LogisticRegression().train(iris, trainedBy: "bootstrap")
                    }
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(trainings.value == 1)
        #expect(Set(versions) == [1])
        #expect(try await registry.versions() == [1])
        #expect(try await client.send("EXISTS", "sluice:{models}:bootstrap-lock").int == 0, "the winner released its lock")
    }

    @Test func aLockIsReleasedOnlyByItsHolder() async throws {
        let client = try RedisServer.sharedClient()
        defer { client.shutdown() }
        let registry = ModelRegistry(client: client, signer: try #require(ArtifactSigner(key: signingKey)))
        // The first holder's lock expired and another replica took it: the first must not delete it.
        _ = try await client.send("SET", "sluice:{models}:bootstrap-lock", "replica-b", "PX", "30000")
        #expect(try await registry.releaseBootstrapLock(owner: "replica-a") == false)
        #expect(try await client.send("GET", "sluice:{models}:bootstrap-lock").string == "replica-b")
        #expect(try await registry.releaseBootstrapLock(owner: "replica-b") == true)
        #expect(try await client.send("EXISTS", "sluice:{models}:bootstrap-lock").int == 0)
    }

    @Test func retentionKeepsTheActiveThePreviousAndTheNewest() async throws {
        let server = try RedisServer()
        let client = server.client()
        defer { client.shutdown() }
        let registry = ModelRegistry(client: client, signer: try #require(ArtifactSigner(key: signingKey)))
        let iris = try IrisDataset.load()
        for _ in 1...8 { _ = try await registry.store(LogisticRegression().train(iris, trainedBy: "test")) }
        try await registry.activate(2)
        try await registry.activate(3)  // 2 becomes the previous one
        #expect(try await registry.prune(retention: 3) == [1, 4, 5])
        #expect(try await registry.versions() == [2, 3, 6, 7, 8])
        #expect(try await client.send("EXISTS", "sluice:{models}:artifact:1").int == 0)
        await #expect(throws: ModelError.notFound(version: 4)) { try await registry.load(4) }
    }
}
