import Foundation
import Logging
@testable import SluiceRedis
import SluiceTestSupport
import Testing

@Suite("Redis client against a real redis-server")
struct RedisClientTests {
    let client: RedisClient
    let prefix = "test:\(UUID().uuidString):"

    init() throws {
        client = try RedisServer.sharedClient()
    }

    @Test func binarySafeRoundTrip() async throws {
        let value: [UInt8] = [0, 13, 10, 255, 36, 42, 0]
        let key = Array("\(prefix)bin\u{0}key".utf8)
        _ = try await client.send(RedisCommand(arguments: [Array("SET".utf8), key, value]))
        let reply = try await client.send(RedisCommand(arguments: [Array("GET".utf8), key]))
        #expect(reply == .bulkString(value))
        #expect(try await client.send("GET", "\(prefix)missing") == .null)
    }

    @Test func replyTypes() async throws {
        #expect(try await client.send("PING") == .simpleString("PONG"))
        #expect(try await client.send("INCRBY", "\(prefix)n", "41") == .integer(41))
        _ = try await client.send("RPUSH", "\(prefix)list", "a", "", "c")
        let list = try await client.send("LRANGE", "\(prefix)list", "0", "-1")
        #expect(list == .array([.bulkString(Array("a".utf8)), .bulkString([]), .bulkString(Array("c".utf8))]))
        let nested = try await client.send("EVAL", "return {1, {'x', redis.error_reply('E inner')}}", "0")
        #expect(nested == .array([.integer(1), .array([.bulkString(Array("x".utf8)), .error("E inner")])]))
    }

    @Test func errorRepliesAreThrownAsServerErrors() async throws {
        _ = try await client.send("SET", "\(prefix)s", "text")
        let error = await #expect(throws: RedisError.self) { try await client.send("INCR", "\(prefix)s") }
        #expect(error?.description.contains("ERR value is not an integer") == true)
        #expect(error?.isUnavailable == false)
        // The connection is still usable after an error reply.
        #expect(try await client.send("GET", "\(prefix)s").string == "text")
    }

    @Test func concurrentCommandsShareRoundTrips() async throws {
        // DEBUG SLEEP blocks the whole server: tests that use it run their own.
        let own = try RedisServer()
        let single = RedisClient(configuration: own.configuration().with(connections: 1), logger: Logger(label: "test"))
        defer { single.shutdown() }
        _ = try await single.send("PING")
        let before = single.roundTrips
        // Hold the connection busy for 200 ms, then queue 1000 commands behind it.
        async let sleeper = single.send("DEBUG", "SLEEP", "0.2")
        try await Task.sleep(for: .milliseconds(50))
        let key = "\(prefix)counter"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<1000 { group.addTask { _ = try await single.send("INCR", key) } }
            try await group.waitForAll()
        }
        _ = try await sleeper
        #expect(try await single.send("GET", key).int == 1000)
        // 1 round trip for the sleep, then batches of at most 256: ceil(1000/256) = 4.
        let trips = single.roundTrips - before
        #expect(trips <= 6, "1000 queued commands took \(trips) round trips")
    }

    @Test func fullQueueGivesBackPressure() async throws {
        let own = try RedisServer()
        var configuration = own.configuration().with(connections: 1)
        configuration.maxQueued = 10
        let small = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { small.shutdown() }
        _ = try await small.send("PING")  // connected, so the sleep below is in flight, not queued
        // While a 300 ms command is in flight, 50 callers arrive: 10 fit in the queue.
        async let sleeper = small.send("DEBUG", "SLEEP", "0.3")
        try await Task.sleep(for: .milliseconds(50))
        let outcomes = await withTaskGroup(of: RedisError?.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    do throws(RedisError) {
                        _ = try await small.send("PING")
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            return await group.reduce(into: [RedisError?]()) { $0.append($1) }
        }
        _ = try await sleeper
        #expect(outcomes.filter { $0 == nil }.count == 10)
        #expect(outcomes.filter { $0 == .backPressure(queued: 10) }.count == 40)
    }

    @Test func commandTimeoutDropsTheConnectionAndRecovers() async throws {
        let own = try RedisServer()
        var configuration = own.configuration().with(connections: 1)
        configuration.commandTimeout = .milliseconds(200)
        let impatient = RedisClient(configuration: configuration, logger: Logger(label: "test"))
        defer { impatient.shutdown() }
        let started = ContinuousClock.now
        await #expect(throws: RedisError.timedOut(endpoint: configuration.endpoint.description)) {
            try await impatient.send("DEBUG", "SLEEP", "1")
        }
        #expect(ContinuousClock.now - started < .milliseconds(900))
        // The server is still busy with the sleep for a moment; the next command waits for it.
        try await Task.sleep(for: .milliseconds(900))
        #expect(try await impatient.send("PING") == .simpleString("PONG"))
    }

    @Test func scriptsSurviveScriptFlush() async throws {
        let own = try RedisServer()
        let local = own.client()
        defer { local.shutdown() }
        let script = RedisScript(name: "incr", source: "return redis.call('INCR', KEYS[1])")
        let failures = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for _ in 0..<300 {
                        do {
                            _ = try await local.evaluate(script, keys: ["n"], arguments: [])
                        } catch {
                            failures.increment()
                        }
                        if worker == 0 { await Task.yield() }
                    }
                }
            }
            group.addTask {
                for _ in 0..<5 {
                    try await Task.sleep(for: .milliseconds(10))
                    _ = try await local.send("SCRIPT", "FLUSH")
                }
            }
            try await group.waitForAll()
        }
        #expect(failures.value == 0)
        #expect(try await local.send("GET", "n").int == 2400)
    }

    @Test func shutdownFailsLaterCommands() async throws {
        let shortLived = try RedisServer.sharedClient()
        _ = try await shortLived.send("PING")
        shortLived.shutdown()
        try await Task.sleep(for: .milliseconds(50))
        await #expect(throws: RedisError.shutdown) { try await shortLived.send("PING") }
    }
}

extension RedisConfiguration {
    func with(connections: Int) -> RedisConfiguration {
        var copy = self
        copy.connections = connections
        return copy
    }
}

/// hiredis' reader and the reply conversion on arbitrary bytes (the fuzzer's `resp` target runs
/// the same with coverage guidance): complete replies are read, garbage is a protocol error.
@Suite("RESP reader on arbitrary bytes")
struct RESPReaderTests {
    @Test func readsRepliesAndRefusesGarbage() {
        let stream = Array("*3\r\n$3\r\nfoo\r\n:42\r\n*2\r\n+OK\r\n-ERR bad\r\n$-1\r\n$5\r\nhel".utf8)
        guard case .success(let replies) = RESPReader.replies(from: stream) else { Issue.record("a valid stream"); return }
        #expect(replies == [.array([.bulkString(Array("foo".utf8)), .integer(42), .array([.simpleString("OK"), .error("ERR bad")])]), .null])
        guard case .failure(let error) = RESPReader.replies(from: Array("?garbage\r\n".utf8)) else { Issue.record("garbage"); return }
        #expect("\(error)".contains("protocol error"))
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            _ = RESPReader.replies(from: (0..<Int.random(in: 0..<64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
    }
}

/// A script call encoded once and put behind the script's SHA1 (or source) is the command
/// encoded in one go: the same bytes, and the same keys for a Redis Cluster router.
@Suite("Script calls encoded ahead")
struct ScriptCallTests {
    @Test(arguments: [
        ([], []), (["k"], []), ([], ["a"]), (["{user}:a", "{user}:b"], ["1", "", "x\r\ny"]), (["é"], ["😀", String(repeating: "z", count: 300)]),
    ] as [([String], [String])])
    func sameCommandAsEncodedInOneGo(keys: [String], arguments: [String]) {
        let sha = String(repeating: "ab", count: 20)
        let call = ScriptCall(keys: keys, arguments: arguments)
        #expect(RedisCommand("EVALSHA", script: Array(sha.utf8), call) == RedisCommand("EVALSHA", [sha, String(keys.count)], keys, arguments))
        let source = Array("return 1".utf8)
        let eval = RedisCommand(arguments: [Array("EVAL".utf8), source, Array(String(keys.count).utf8)] + (keys + arguments).map { Array($0.utf8) })
        #expect(RedisCommand("EVAL", script: source, call) == eval)
        #expect(RedisCommand("EVAL", script: source, call).keys.map { String(decoding: $0, as: UTF8.self) } == keys)
    }
}
