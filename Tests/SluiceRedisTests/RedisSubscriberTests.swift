import Foundation
import Logging
import SluiceRedis
import SluiceTestSupport
import Synchronization
import Testing

@Suite("Pub/sub against a real redis-server")
struct RedisSubscriberTests {
    final class Inbox: Sendable {
        let messages = Mutex<[String]>([])
        let reconnects = Counter()
        var all: [String] { messages.withLock { $0 } }
    }

    @Test func deliversAndResubscribesAfterARestart() async throws {
        let server = try RedisServer()
        let client = server.client()
        defer { client.shutdown() }
        let inbox = Inbox()
        let subscriber = RedisSubscriber(
            configuration: server.configuration(), channels: ["a", "b"], logger: Logger(label: "test"),
            onReconnect: { inbox.reconnects.increment() },
            onMessage: { channel, payload in inbox.messages.withLock { $0.append("\(channel):\(String(decoding: payload, as: UTF8.self))") } }
        )
        defer { subscriber.close() }
        // Publish until the subscription is in place (PUBLISH answers the number of receivers).
        try await eventually { try await client.send("PUBLISH", "a", "hello").int == 1 }
        _ = try await client.send("PUBLISH", "b", "world")
        _ = try await client.send("PUBLISH", "other", "ignored")
        try await eventually { inbox.all.suffix(2) == ["a:hello", "b:world"] }

        try server.restart()
        try await eventually { (try? await client.send("PUBLISH", "a", "again").int) == 1 }
        try await eventually { inbox.all.last == "a:again" }
        #expect(inbox.reconnects.value == 1)
    }

    private func eventually(_ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("condition not met within 5 s")
    }
}
