import Foundation
import Logging
@testable import SluiceRedis
import SluiceTestSupport
import Testing

@Suite("Hash slots")
struct HashSlotTests {
    /// Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    @Test func matchesRedis() {
        #expect(HashSlot.crc16(Array("123456789".utf8)[...]) == 0x31C3)
        #expect(HashSlot.of("foo") == 12182)
        #expect(HashSlot.of("{user1000}.following") == HashSlot.of("{user1000}.followers"))
        #expect(HashSlot.of("foo{}{bar}") == HashSlot.of("foo{}{bar}"))  // empty tag: the whole key
        #expect(HashSlot.of("foo{{bar}}zap") == HashSlot.of("{bar"))
        #expect(HashSlot.of("sluice:rl:{abc}:default") == HashSlot.of("abc"))
    }

    @Test func keysOfCommands() throws {
        #expect(RedisCommand("GET", "k").keys.map { String(decoding: $0, as: UTF8.self) } == ["k"])
        #expect(RedisCommand("EVALSHA", "sha", "2", "a", "b", "x").keys.count == 2)
        #expect(RedisCommand("PING").keys.isEmpty && RedisCommand("PUBLISH", "chan", "m").keys.isEmpty)
        #expect(throws: RedisError.crossSlot(command: "DEL", keys: ["a", "b"])) { try ClusterRouter.slot(of: RedisCommand("DEL", "a", "b")) }
        #expect(try ClusterRouter.slot(of: RedisCommand("DEL", "{t}a", "{t}b")) == HashSlot.of("t"))
        #expect(ClusterRedirect("MOVED 3999 127.0.0.1:6381") == ClusterRedirect("MOVED 3999 127.0.0.1:6381"))
        #expect(ClusterRedirect("ASK 12 [::1]:7000")?.endpoint == .tcp(host: "::1", port: 7000))
        #expect(ClusterRedirect("ERR nope") == nil)
    }

    @Test func clusterURLs() throws {
        var configuration = try RedisConfiguration(url: "redis://u:p@10.0.0.1:7000,10.0.0.2:7001")
        #expect(configuration.seeds == [.tcp(host: "10.0.0.1", port: 7000), .tcp(host: "10.0.0.2", port: 7001)])
        #expect(throws: RedisError.self) { try configuration.validate() }  // several hosts, single mode
        configuration.mode = .cluster
        try configuration.validate()
        #expect(configuration.description == "cluster via 10.0.0.1:7000,10.0.0.2:7001 (authenticated as u)")
        configuration.database = 1
        #expect(throws: RedisError.self) { try configuration.validate() }
    }
}

/// Against a real 6-node Redis Cluster made with `redis-cli --cluster create`.
@Suite("Redis Cluster client", .serialized)
struct RedisClusterTests {
    let cluster: RedisClusterServer

    init() throws { cluster = try RedisClusterServer() }

    @Test func routesEveryKeyToItsMasterAndRunsScripts() async throws {
        let client = try cluster.client()
        defer { client.shutdown() }
        try await client.ping()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<300 { group.addTask { _ = try await client.send("SET", "key:\(index)", "v\(index)") } }
            try await group.waitForAll()
        }
        for index in stride(from: 0, to: 300, by: 7) { #expect(try await client.send("GET", "key:\(index)").string == "v\(index)") }
        let masters = try cluster.masters()
        #expect(masters.count == 3)
        let counts = try masters.map { Int(try cluster.cli($0, "DBSIZE").trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0 }
        #expect(counts.reduce(0, +) == 300 && counts.allSatisfy { $0 > 60 }, "keys per master: \(counts)")
        // A script: loaded on one node, run on all three (NOSCRIPT elsewhere is followed by EVAL).
        let script = RedisScript(name: "incr", source: "return redis.call('INCR', KEYS[1])")
        try await client.load(script)
        for tag in ["a", "b", "c", "d", "e", "f"] {
            #expect(try await client.evaluate(script, keys: ["{\(tag)}n"], arguments: []).int == 1)
        }
        await #expect(throws: RedisError.crossSlot(command: "DEL", keys: ["a", "b"])) { try await client.send("DEL", "a", "b") }
    }

    /// A slot moved under a client that knows the old layout: `ASK` while the slot migrates,
    /// `MOVED` once it has moved; no command fails.
    @Test func followsAskAndMovedWhileASlotMigrates() async throws {
        let client = try cluster.client()
        defer { client.shutdown() }
        let key = "{migrating}k"
        let slot = HashSlot.of(key)
        _ = try await client.send("SET", key, "before")
        let source = try cluster.master(of: slot)
        let destination = try #require(try cluster.masters().first { $0.port != source.port })
        let (sourceID, destinationID) = (try cluster.id(of: source), try cluster.id(of: destination))
        try cluster.cli(destination, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID)
        try cluster.cli(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", destinationID)
        _ = try cluster.cli(source, "MIGRATE", "127.0.0.1", String(destination.port), key, "0", "5000")
        // The key now lives on the destination while the source still owns the slot: ASK.
        #expect(try await client.send("GET", key).string == "before")
        #expect(client.redirects.ask >= 1)
        for node in [destination, source] + (try cluster.masters()) {
            try cluster.cli(node, "CLUSTER", "SETSLOT", String(slot), "NODE", destinationID)
        }
        #expect(try await client.send("GET", key).string == "before")
        #expect(client.redirects.moved >= 1, "the old layout sent GET to the source, which answered MOVED")
        _ = try await client.send("SET", key, "after")
        #expect(try cluster.cli(destination, "GET", key).contains("after"))
    }

    /// `kill -9` of a master under load: its replica is promoted within the node timeout, and the
    /// client finds it without being told.
    @Test func survivesTheLossOfAMaster() async throws {
        let client = try cluster.client(seeds: 3)
        defer { client.shutdown() }
        let key = "{failover}n"
        let victim = try cluster.master(of: HashSlot.of(key))
        _ = try await client.send("SET", key, "0")
        let killedAt = ContinuousClock.now
        victim.crash()
        var firstSuccess: Duration?
        var failures = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            do {
                _ = try await client.send("INCR", key)
                if firstSuccess == nil { firstSuccess = ContinuousClock.now - killedAt }
                if ContinuousClock.now - killedAt > firstSuccess! + .seconds(1) { break }
            } catch {
                failures += 1
                #expect(error.isUnavailable, "\(error)")
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        let recovered = try #require(firstSuccess, "no command succeeded within 20 s of the kill")
        print("failover: \(failures) failed commands, first success \(recovered) after the kill")
        #expect(recovered < .seconds(2 + 2 + 3), "node timeout 2 s, promotion, then the client's refresh: \(recovered)")
    }

    /// One node that refuses the credentials is named in the error, and the others keep serving.
    @Test func aNodeRefusingTheCredentialsIsNamed() async throws {
        let client = try cluster.client(seeds: 3)
        defer { client.shutdown() }
        let refusing = try cluster.master(of: HashSlot.of("{p}"))
        let other = try #require((0..<200).map { "{q\($0)}" }.first { (try? cluster.master(of: HashSlot.of($0)))?.port != refusing.port })
        _ = try await client.send("GET", other + "x")  // connected to the masters it needs
        try cluster.cli(refusing, "CONFIG", "SET", "requirepass", "only-the-node-knows")
        let authenticated = ["redis-cli", "-p", String(refusing.port), "-a", "only-the-node-knows", "--no-auth-warning"]
        defer { _ = try? runCommand(authenticated + ["CONFIG", "SET", "requirepass", ""]) }
        _ = try runCommand(authenticated + ["CLIENT", "KILL", "TYPE", "normal"])  // its connections must authenticate again
        do {
            _ = try await client.send("GET", "{p}x")
            Issue.record("the node asks for a password the client does not have")
        } catch {
            guard case .authenticationFailed(let endpoint, _, _) = error else { Issue.record("got \(error)"); return }
            #expect(endpoint == "127.0.0.1:\(refusing.port)")
        }
        _ = try await client.send("SET", other + "x", "fine")
    }

    @Test func badSeedsAreNamed() async throws {
        var nobody = try RedisConfiguration(url: "redis://127.0.0.1:\(try RedisServer.freePort()),127.0.0.1:\(try RedisServer.freePort())")
        nobody.mode = .cluster
        nobody.connectTimeout = .milliseconds(300)
        let silent = RedisClient(configuration: nobody, logger: Logger(label: "test"))
        defer { silent.shutdown() }
        let started = ContinuousClock.now
        do {
            try await silent.ping()
            Issue.record("no seed answers")
        } catch {
            #expect("\(error)".contains(nobody.seeds[0].description) && "\(error)".contains(nobody.seeds[1].description), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(3))

        let plain = try RedisServer()
        var single = try RedisConfiguration(url: plain.url)
        single.mode = .cluster
        let notACluster = RedisClient(configuration: single, logger: Logger(label: "test"))
        defer { notACluster.shutdown() }
        do {
            try await notACluster.ping()
            Issue.record("a plain Redis is not a cluster")
        } catch {
            #expect("\(error)".contains("not a cluster"), "\(error)")
        }
    }
}

extension RedisClusterTests {
    /// The keys of the other masters never notice a master's loss.
    @Test func otherMastersKeysDoNotNoticeALostMaster() async throws {
        let client = try cluster.client(seeds: 3)
        defer { client.shutdown() }
        let victim = try cluster.master(of: HashSlot.of("{a}"))
        let other = try #require((0..<200).map { "{k\($0)}" }.first { (try? cluster.master(of: HashSlot.of($0)))?.port != victim.port })
        _ = try await client.send("SET", "{a}x", "0")
        _ = try await client.send("SET", other + "x", "0")
        victim.crash()
        var failures: [String] = []
        let deadline = ContinuousClock.now + .seconds(6)
        while ContinuousClock.now < deadline {
            do { _ = try await client.send("INCR", other + "x") } catch { failures.append("\(error)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(failures.isEmpty, "\(failures.count): \(failures.prefix(3))")
    }
}
