import Foundation
import SluiceAuth
import SluiceTestSupport
import Testing

@Suite("Refusing to start unsafely, and failing secure", .serialized)
struct StartupAndOutageTests {
    static let goodAdmin = APIKey.generate().revealed
    static let goodSigning = "9f3c2a7e1b5d4c8a6e0f7b3d2c1a9e8f5b4d7c6a"

    @Test(arguments: [
        ("no admin key", ["SLUICE_MODEL_SIGNING_KEY": goodSigning], "SLUICE_ADMIN_KEY"),
        ("no signing key", ["SLUICE_ADMIN_KEY": goodAdmin], "SLUICE_MODEL_SIGNING_KEY"),
        ("malformed admin key", ["SLUICE_ADMIN_KEY": "admin123", "SLUICE_MODEL_SIGNING_KEY": goodSigning], "SLUICE_ADMIN_KEY"),
        ("weak admin key", ["SLUICE_ADMIN_KEY": "sk_adminkey_" + String(repeating: "a", count: 40), "SLUICE_MODEL_SIGNING_KEY": goodSigning], "SLUICE_ADMIN_KEY"),
        ("short signing key", ["SLUICE_ADMIN_KEY": goodAdmin, "SLUICE_MODEL_SIGNING_KEY": "0123456789abcdef"], "SLUICE_MODEL_SIGNING_KEY"),
        ("weak signing key", ["SLUICE_ADMIN_KEY": goodAdmin, "SLUICE_MODEL_SIGNING_KEY": String(repeating: "changeme", count: 5)], "SLUICE_MODEL_SIGNING_KEY"),
        ("both forms", ["SLUICE_ADMIN_KEY": goodAdmin, "SLUICE_ADMIN_KEY_FILE": "/etc/hostname", "SLUICE_MODEL_SIGNING_KEY": goodSigning], "SLUICE_ADMIN_KEY"),
        ("unreadable file", ["SLUICE_ADMIN_KEY_FILE": "/nonexistent/admin", "SLUICE_MODEL_SIGNING_KEY": goodSigning], "SLUICE_ADMIN_KEY_FILE"),
    ])
    func refusesToStartWithoutGoodSecrets(name: String, environment: [String: String], variable: String) throws {
        // Unset (empty) whatever the case does not set, so nothing good leaks in from outside.
        let unset = ["SLUICE_ADMIN_KEY", "SLUICE_ADMIN_KEY_FILE", "SLUICE_MODEL_SIGNING_KEY", "SLUICE_MODEL_SIGNING_KEY_FILE"]
            .reduce(into: [String: String]()) { $0[$1] = "" }
        let (status, output) = try ServiceProcess.run(
            arguments: ["serve", "--port", String(try RedisServer.freePort())], environment: unset.merging(environment) { $1 })
        #expect(status == 78, "\(name): exit \(status)")
        #expect(output.contains("refusing to start") && output.contains(variable), "\(name): \(output)")
        for value in environment.values where value.count > 8 && !value.hasPrefix("/") {
            #expect(!output.contains(value), "\(name): the secret's value must never be printed")
        }
    }

    /// A setting's flag and variable are read by one rule: a bad value of either stops the
    /// process (exit 78), naming both (CommandSettings).
    @Test(arguments: [
        ("serve", [String: String](), ["--in-flight-lease", "0"], "--in-flight-lease/SLUICE_IN_FLIGHT_LEASE must be more than 0"),
        ("serve", ["SLUICE_LOCAL_DENY_ENTRIES": "lots"], [], "--local-deny-entries/SLUICE_LOCAL_DENY_ENTRIES must be a whole number from 0"),
        ("serve", ["SLUICE_REDIS_MODE": "sentinel"], [], "--redis-mode/SLUICE_REDIS_MODE must be single or cluster"),
        ("worker", [:], ["--batch-size", "0"], "--batch-size must be a whole number from 1 to 1000"),
        ("worker", ["SLUICE_WORKER_PORT": "70000"], [], "--port/SLUICE_WORKER_PORT must be a whole number from 0 to 65535"),
    ])
    func aBadSettingIsRefusedNamingItsFlagAndVariable(command: String, environment: [String: String], arguments: [String], message: String) throws {
        let secrets = ["SLUICE_ADMIN_KEY": Self.goodAdmin, "SLUICE_MODEL_SIGNING_KEY": Self.goodSigning]
        let port = command == "serve" ? ["--port", String(try RedisServer.freePort())] : []
        let (status, output) = try ServiceProcess.run(arguments: [command] + port + arguments, environment: secrets.merging(environment) { $1 })
        #expect(status == 78 && output.contains("refusing to start") && output.contains(message), "\(command) \(arguments): exit \(status): \(output)")
    }

    /// Redis TLS settings that would do nothing, are misspelled or name an unreadable file stop
    /// the process at once, saying which.
    @Test(arguments: [
        ("redis://127.0.0.1:1", ["SLUICE_REDIS_TLS_CA_FILE": "/etc/hostname"], "SLUICE_REDIS_TLS_CA_FILE set, but the Redis URL is not rediss://"),
        ("rediss://127.0.0.1:1", ["SLUICE_REDIS_TLS_CAFILE": "/etc/hostname"], "unknown setting SLUICE_REDIS_TLS_CAFILE"),
        ("rediss://127.0.0.1:1", ["SLUICE_REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
        ("rediss://127.0.0.1:1", ["SLUICE_REDIS_TLS_KEY_FILE": "/etc/hostname"], "needs its key"),
    ])
    func refusesRedisTLSSettingsThatCannotWork(url: String, environment: [String: String], message: String) throws {
        let secrets = ["SLUICE_ADMIN_KEY": Self.goodAdmin, "SLUICE_MODEL_SIGNING_KEY": Self.goodSigning, "SLUICE_ADMIN_KEY_FILE": "",
                       "SLUICE_MODEL_SIGNING_KEY_FILE": ""]
        let (status, output) = try ServiceProcess.run(
            arguments: ["serve", "--port", String(try RedisServer.freePort()), "--redis", url], environment: secrets.merging(environment) { $1 })
        #expect(status != 0, "exit \(status): \(output)")
        #expect(output.contains(message), "\(output)")
    }

    /// In cluster mode the seeds are asked before anything starts: none answering stops the
    /// process at once, naming them; so does a seed that is no cluster node.
    @Test func aClusterThatCannotBeReachedStopsStartUp() throws {
        let silent = [try RedisServer.freePort(), try RedisServer.freePort()].map { "127.0.0.1:\($0)" }
        let plain = try RedisServer()
        for (url, message) in [("redis://" + silent.joined(separator: ","), silent[1]), (plain.url, "not a cluster")] {
            for command in ["serve", "worker"] {
                let started = ContinuousClock.now
                let (status, output) = try ServiceProcess.run(
                    arguments: [command, "--port", String(try RedisServer.freePort()), "--redis-mode", "cluster", "--redis", url],
                    environment: ["SLUICE_ADMIN_KEY": Self.goodAdmin, "SLUICE_MODEL_SIGNING_KEY": Self.goodSigning, "SLUICE_ADMIN_KEY_FILE": "",
                                  "SLUICE_MODEL_SIGNING_KEY_FILE": ""])
                #expect(status == 78 && output.contains("cannot be used") && output.contains(message), "\(command) \(url): exit \(status): \(output)")
                #expect(ContinuousClock.now - started < .seconds(10), "\(command): no hang")
            }
        }
    }

    @Test func secretsFromFilesAreTrimmed() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-secrets-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let admin = APIKey.generate().revealed
        try "\(admin)\n".write(toFile: "\(directory)/admin", atomically: true, encoding: .utf8)
        try "  \(Self.goodSigning)\n".write(toFile: "\(directory)/signing", atomically: true, encoding: .utf8)
        let redis = try RedisServer()
        let replica = try ServiceProcess(
            redisURL: redis.url,
            environment: ["SLUICE_ADMIN_KEY": "", "SLUICE_MODEL_SIGNING_KEY": "",
                          "SLUICE_ADMIN_KEY_FILE": "\(directory)/admin", "SLUICE_MODEL_SIGNING_KEY_FILE": "\(directory)/signing"])
        try await replica.waitUntilReady()
        let keys = try await HTTP.send("GET", replica.baseURL + "/v1/keys", headers: ["Authorization": "Bearer \(admin)"])
        #expect(keys.status == 200)
        _ = redis
    }

    @Test func redisDownMeans503WithinTheTimeoutThenRecovery() async throws {
        let cluster = try await Cluster()
        let (key, _) = try await cluster.createKey(scopes: ["predict"])
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 200)
        cluster.redis.stop()
        let started = ContinuousClock.now
        let down = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa)
        let took = ContinuousClock.now - started
        #expect(down.status == 503, "\(down.status) \(down.text)")
        #expect(took < .milliseconds(1500), "answered after \(took); the command timeout is 500 ms")
        #expect(Int(down.header("Retry-After") ?? "") ?? 0 >= 1)
        #expect(down.json?["type"] as? String == "/problems/unavailable")
        #expect(try await HTTP.send("GET", cluster.url + "/readyz").status == 503)
        #expect(try await HTTP.send("GET", cluster.url + "/healthz").status == 200, "alive, just not ready")

        try cluster.redis.start()
        let back = ContinuousClock.now
        var recovered = false
        while ContinuousClock.now - back < .seconds(5) {
            // The private test Redis keeps no data across a restart: the key is gone, so 401 is "recovered" too.
            let status = try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status
            if status != 503 {
                recovered = true
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(recovered)
        #expect(try await HTTP.send("GET", cluster.url + "/readyz").status == 200)
    }

    /// A full Redis (`maxmemory` reached, `noeviction`): clients are told the store is full (not
    /// "unavailable"); a worker whose claim went through but whose outcome cannot be stored says
    /// so at once and backs off (it used to retry one job silently for the whole visibility
    /// timeout, then the next); once memory is freed every job completes.
    @Test func aFullRedisIsNamedAndTheWorkerBacksOff() async throws {
        let cluster = try await Cluster()
        let (queued, _) = try await cluster.createKey(
            scopes: ["predict"], policies: #"[{"name":"default","rate":4,"period":1,"burst":1}]"#, extra: #","overflow":"queue""#)
        let (other, _) = try await cluster.createKey(scopes: ["predict"])
        var locations: [String] = []
        for _ in 0..<5 {
            let response = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: queued, Cluster.setosa)
            if let location = response.header("Location") { locations.append(location) }
        }
        #expect(locations.count == 4)
        try await Task.sleep(for: .seconds(1.2))  // every queued slot has come
        let admin = cluster.redis.client()
        defer { admin.shutdown() }
        _ = try await admin.send("CONFIG", "SET", "maxmemory", "1")

        let full = try await HTTP.json("POST", "\(cluster.url)/v1/predict", key: other, Cluster.setosa)
        #expect(full.status == 503 && full.json?["type"] as? String == "/problems/store-full", "\(full.status) \(full.text)")
        #expect(Int(full.header("Retry-After") ?? "") ?? 0 >= 1)
        #expect(cluster.replicas[0].log.contains("Redis is out of memory"))

        let worker = try await cluster.startWorker()
        try waitUntil(timeout: 3) { worker.log.contains("Redis is out of memory") }
        try waitUntil(timeout: 8) { worker.log.contains("retry_in_ms=1000") }
        #expect(try await HTTP.send("GET", "\(worker.baseURL)/healthz").status == 200, "responsive while backing off")

        _ = try await admin.send("CONFIG", "SET", "maxmemory", "0")
        for location in locations {
            let job = try await cluster.jobResult(location, key: queued, timeout: .seconds(20))
            #expect(job["status"] as? String == "succeeded")
        }
    }
}
