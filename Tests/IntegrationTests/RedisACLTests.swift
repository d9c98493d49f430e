import Foundation
import SluiceAuth
import SluiceRedis
import SluiceTestSupport
import Testing

/// deploy/redis/users.acl.in rendered by deploy/redis/render-acl, loaded by a real redis-server:
/// a replica and a worker do all their work as their own users, and neither can do more.
@Suite("Redis ACL users per role")
struct RedisACLTests {
    @Test func eachRoleDoesItsWorkAndNothingMore() async throws {
        let (aclFile, passwords, secrets) = try Repository.renderedACL()
        #expect(!(try String(contentsOfFile: aclFile, encoding: .utf8)).contains(passwords["sluice-replica"]!), "only hashes are written")
        let redis = try RedisServer(arguments: ["--aclfile", aclFile])

        // A replica and a worker run the whole queue path as their own users.
        let processes = ACLProcesses(redisURL: redis.url, passwords: secrets)
        let adminKey = processes.adminKey
        let replica = try await processes.replica()
        let worker = try await processes.worker()
        let created = try await HTTP.json(
            "POST", "\(replica.baseURL)/v1/keys", key: adminKey,
            #"{"name":"acl","scopes":["predict"],"policies":[{"name":"default","rate":2,"period":1,"burst":1}],"overflow":"queue"}"#)
        let key = try #require(created.json?["key"] as? String)
        let body = #"{"features":{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#
        #expect(try await HTTP.json("POST", "\(replica.baseURL)/v1/predict", key: key, body).status == 200)
        let queued = try await HTTP.json("POST", "\(replica.baseURL)/v1/predict", key: key, body)
        #expect(queued.status == 202)
        let location = try #require(queued.header("Location"))
        var job: HTTP.Response?
        for _ in 0..<50 {
            job = try await HTTP.send("GET", replica.baseURL + location, headers: ["Authorization": "Bearer \(key)"])
            if job?.status == 200 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(job?.json?["status"] as? String == "succeeded", "\(worker.log.suffix(1500))")
        // The replica's heartbeat (the live count degraded mode divides by) runs under its user.
        let heartbeats = RedisClient(configuration: try RedisConfiguration(url: "redis://sluice-replica:\(passwords["sluice-replica"]!)@127.0.0.1:\(redis.port)"))
        defer { heartbeats.shutdown() }
        #expect(try await heartbeats.send("ZCARD", "sluice:replicas").int == 1, "one replica counted")
        #expect(!replica.log.contains("heartbeat refused"), "\(replica.log.suffix(1000))")

        // Neither role may administer Redis or reach beyond its keys.
        let replicaClient = RedisClient(configuration: try RedisConfiguration(url: "redis://sluice-replica:\(passwords["sluice-replica"]!)@127.0.0.1:\(redis.port)"))
        let workerClient = RedisClient(configuration: try RedisConfiguration(url: "redis://sluice-worker:\(passwords["sluice-worker"]!)@127.0.0.1:\(redis.port)"))
        defer { replicaClient.shutdown(); workerClient.shutdown() }
        #expect(try await replicaClient.send("PING").string == "PONG")
        let forbidden: [(RedisClient, [String])] = [
            (replicaClient, ["FLUSHALL"]), (replicaClient, ["CONFIG", "GET", "maxmemory"]), (replicaClient, ["KEYS", "*"]),
            (replicaClient, ["FLUSHDB"]), (replicaClient, ["DEBUG", "SLEEP", "0"]), (replicaClient, ["GET", "other:app:key"]),
            (workerClient, ["FLUSHALL"]), (workerClient, ["CONFIG", "SET", "appendonly", "no"]), (workerClient, ["KEYS", "*"]),
            (workerClient, ["GET", "sluice:key:abcdefgh"]), (workerClient, ["HSET", "sluice:{models}:artifact:9", "artifact", "x"]),
            (workerClient, ["PUBLISH", "sluice:models:activated", "9"]),
        ]
        for (client, command) in forbidden {
            do {
                _ = try await client.send(RedisCommand(command[0], Array(command.dropFirst())))
                Issue.record("\(client === replicaClient ? "replica" : "worker") may run \(command.joined(separator: " "))")
            } catch {
                #expect("\(error)".contains("NOPERM"), "\(command): \(error)")
            }
        }
        // Nobody gets in without a user.
        let anonymous = redis.client()
        defer { anonymous.shutdown() }
        await #expect(throws: RedisError.self) { _ = try await anonymous.send("GET", "sluice:keys") }
    }
}
