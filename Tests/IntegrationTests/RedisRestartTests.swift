import Foundation
import SluiceAuth
import SluiceQueue
import SluiceRedis
import SluiceTestSupport
import Testing

/// Redis as `scripts/cluster`, compose and Kubernetes run it (the shipped ACL file, AOF with
/// `appendfsync everysec`), killed with SIGKILL and started again with the same command line:
/// everything the scripts wrote before the kill is still there.
@Suite("A Redis restart under the shipped ACL file loses nothing")
struct RedisRestartTests {
    @Test func queuedJobsAndLimiterStateSurviveKill9() async throws {
        let (aclFile, passwords, secrets) = try Repository.renderedACL()
        let redis = try RedisServer(arguments: [
            "--aclfile", aclFile, "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
        ])
        let processes = ACLProcesses(redisURL: redis.url, passwords: secrets)
        let adminKey = processes.adminKey
        let replica = try await processes.replica()
        func createKey(_ body: String) async throws -> String {
            let created = try await HTTP.json("POST", "\(replica.baseURL)/v1/keys", key: adminKey, body)
            return try #require(created.json?["key"] as? String, "\(created.status) \(created.text)")
        }
        let queued = try await createKey(
            #"{"name":"queued","scopes":["predict"],"policies":[{"name":"default","rate":20,"period":1,"burst":1}],"overflow":"queue"}"#)
        let drained = try await createKey(#"{"name":"drained","scopes":["predict"],"policies":[{"name":"default","rate":1,"period":3600,"burst":3}]}"#)
        let body = #"{"features":{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#

        // 60 requests of a 20/s key with no worker running: all but the first are queued.
        var locations: [String] = []
        for _ in 0..<60 {
            let response = try await HTTP.json("POST", "\(replica.baseURL)/v1/predict", key: queued, body)
            if response.status == 202, let location = response.header("Location") { locations.append(location) }
        }
        #expect(locations.count >= 59)
        var drainedStatuses: [Int] = []
        for _ in 0..<4 { drainedStatuses.append(try await HTTP.json("POST", "\(replica.baseURL)/v1/predict", key: drained, body).status) }
        #expect(drainedStatuses == [200, 200, 200, 429])

        redis.crash()
        try redis.start()
        let log = try String(contentsOfFile: "\(redis.directory)/redis.log", encoding: .utf8)
        #expect(!log.contains("NOPERM"), "the AOF replay was refused: \(log.split(separator: "\n").filter { $0.contains("NOPERM") }.prefix(3))")
        try await replica.waitUntilReady()

        // The drained key stays drained: its limiter state came back with the AOF.
        #expect(try await HTTP.json("POST", "\(replica.baseURL)/v1/predict", key: drained, body).status == 429)

        // Every job accepted before the kill completes after the restart, each exactly once.
        let worker = try await processes.worker()
        var lost: [String] = []
        for location in locations {
            var status = 0
            for _ in 0..<100 {
                let job = try await HTTP.send("GET", replica.baseURL + location, headers: ["Authorization": "Bearer \(queued)"])
                status = job.status
                if status == 200 || status == 404 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            if status != 200 { lost.append("\(location): \(status)") }
        }
        #expect(lost.isEmpty, "\(lost.count) of \(locations.count) jobs lost: \(lost.prefix(5))")
        let client = RedisClient(configuration: try RedisConfiguration(
            url: "redis://sluice-replica:\(passwords["sluice-replica"]!)@127.0.0.1:\(redis.port)"))
        defer { client.shutdown() }
        let stats = try await PartitionedJobQueue(client: client).stats()
        #expect(stats["completed"] == locations.count, "exactly one result per job: \(stats)")
        _ = worker

        // `default` keeps the permissions the AOF replay needs, yet nobody can log in as it.
        let anonymous = redis.client()
        let asDefault = redis.client(password: "anything", username: "default")
        defer { anonymous.shutdown(); asDefault.shutdown() }
        await #expect(throws: RedisError.self) { _ = try await anonymous.send("GET", "sluice:keys") }
        await #expect(throws: RedisError.self) { _ = try await asDefault.send("GET", "sluice:keys") }
    }
}
