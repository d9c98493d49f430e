import Foundation
import SluiceAuth
import SluiceRedis
import SluiceTestSupport
import Testing

/// Redis passwords rotated the way a secrets manager does it, under load, with nothing
/// restarted: Redis accepts old and new, the password files are swapped, every process takes the
/// new one, the old one is removed from Redis.
@Suite("Redis credentials rotated without a restart", .serialized)
struct RedisCredentialRotationTests {
    static let body = #"{"features":{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#

    /// users.acl with the roles' passwords in a swappable directory, and a `test-admin` user that
    /// plays the secrets manager's part (`ACL SETUSER`).
    struct Setup {
        let redis: RedisServer
        let admin: RedisClient
        let secrets: SecretDirectory
        let passwords: [String: String]
        let processes: ACLProcesses

        init(pollInterval: String) throws {
            let (aclFile, passwords, _) = try Repository.renderedACL()
            let adminPassword = Cluster.randomHex()
            try (try String(contentsOfFile: aclFile, encoding: .utf8) + "user test-admin on >\(adminPassword) ~* &* +@all\n")
                .write(toFile: aclFile, atomically: true, encoding: .utf8)
            redis = try RedisServer(arguments: ["--aclfile", aclFile])
            admin = redis.client(password: adminPassword, username: "test-admin")
            secrets = try SecretDirectory(passwords.mapValues { $0 + "\n" })
            self.passwords = passwords
            processes = ACLProcesses(redisURL: redis.url, passwords: secrets.path, environment: ["SLUICE_SECRETS_POLL_INTERVAL": pollInterval])
        }

        func key(_ replica: ServiceProcess, scopes: String, policy: String, extra: String = "") async throws -> String {
            let created = try await HTTP.json(
                "POST", "\(replica.baseURL)/v1/keys", key: processes.adminKey,
                #"{"name":"rotation","scopes":[\#(scopes)],"policies":[\#(policy)]\#(extra)}"#)
            return try #require(created.json?["key"] as? String, "\(created.text)")
        }
    }

    /// The value of `sluice_secret_reloads_total` for REDIS_PASSWORD and `outcome` on `process`.
    static func reloads(_ process: ServiceProcess, metricsKey: String?, outcome: String) async throws -> Double {
        let metrics = try await HTTP.send("GET", process.baseURL + "/metrics", headers: metricsKey.map { ["Authorization": "Bearer \($0)"] } ?? [:])
        return metricSample(metrics.text, "sluice_secret_reloads_total", ["secret": "REDIS_PASSWORD", "outcome": outcome]) ?? 0
    }

    static func waitForReloads(_ process: ServiceProcess, metricsKey: String?, outcome: String, count: Double) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while try await reloads(process, metricsKey: metricsKey, outcome: outcome) < count {
            guard ContinuousClock.now < deadline else { throw TestSupportError("no \(outcome) reload on \(process.baseURL): \(process.log.suffix(1000))") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test func passwordsRotateUnderLoadWithoutAFailedRequest() async throws {
        let setup = try Setup(pollInterval: "0.5")
        defer { setup.admin.shutdown() }
        let replicas = [try await setup.processes.replica(), try await setup.processes.replica()]
        let worker = try await setup.processes.worker()
        let fast = try await setup.key(replicas[0], scopes: #""predict""#, policy: #"{"name":"default","rate":100000,"period":1,"burst":1000}"#)
        let queued = try await setup.key(
            replicas[0], scopes: #""predict""#, policy: #"{"name":"default","rate":1,"period":1,"burst":1}"#,
            extra: #","overflow":"queue","max_queue_delay":60"#)
        let metricsKey = try await setup.key(replicas[0], scopes: #""metrics""#, policy: #"{"name":"default","rate":100,"period":1,"burst":100}"#)

        // Steady load on both replicas from curl loops (one process per request, so the test
        // process's own HTTP stack carries little of it); one key's excess is queued for the worker.
        let stop = "\(setup.secrets.path)/../stop-\(UUID().uuidString.prefix(8))"
        let loops = try replicas.map { replica in
            try BackgroundCommand(["/bin/bash", "-c", """
                while [ ! -e '\(stop)' ]; do
                  curl -s -m 5 -o /dev/null -w '%{http_code}\\n' -H 'Authorization: Bearer \(fast)' -H 'Content-Type: application/json' \\
                    -d '\(Self.body)' \(replica.baseURL)/v1/predict || echo 000
                done
                """])
        }
        let running = Shared(true)
        let outcomes = Shared<[Int: Int]>([:])
        let jobs = Shared<[String]>([])
        let load = Task {
            var index = 0
            while running.value.withLock({ $0 }) {
                let response = try? await HTTP.json("POST", "\(replicas[index % 2].baseURL)/v1/predict", key: queued, Self.body)
                outcomes.value.withLock { $0[response?.status ?? -1, default: 0] += 1 }
                if let location = response?.header("Location") { jobs.value.withLock { $0.append(location) } }
                index += 1
                try? await Task.sleep(for: .milliseconds(600))
            }
        }
        try await Task.sleep(for: .seconds(2))

        // The manager adds new passwords next to the old ones, then rewrites the files.
        let fresh = ["sluice-replica": Cluster.randomHex(), "sluice-worker": Cluster.randomHex()]
        for (user, password) in fresh { _ = try await setup.admin.send("ACL", "SETUSER", user, ">\(password)") }
        try setup.secrets.swap(fresh.mapValues { $0 + "\n" })
        for replica in replicas { try await Self.waitForReloads(replica, metricsKey: metricsKey, outcome: "ok", count: 1) }
        try await Self.waitForReloads(worker, metricsKey: nil, outcome: "ok", count: 1)
        // Every process took it: the old passwords go.
        for (user, password) in setup.passwords { _ = try await setup.admin.send("ACL", "SETUSER", user, "<\(password)") }
        try await Task.sleep(for: .seconds(2))
        running.value.withLock { $0 = false }
        FileManager.default.createFile(atPath: stop, contents: nil)
        await load.value
        for loop in loops { _ = try loop.wait(timeout: 10) }
        for status in loops.flatMap({ $0.log.split(separator: "\n") }) {
            outcomes.value.withLock { $0[Int(status) ?? -1, default: 0] += 1 }
        }

        let counted = outcomes.value.withLock { $0 }
        print("password rotation under load: responses by status \(counted), \(jobs.value.withLock { $0.count }) queued jobs")
        #expect(Set(counted.keys).isSubset(of: [200, 202]), "every request answered 200 or 202: \(counted)")
        #expect(counted[200, default: 0] > 100 && counted[202, default: 0] > 0, "\(counted)")
        // Connections made from now on authenticate with the new passwords.
        for user in fresh.keys { _ = try await setup.admin.send("CLIENT", "KILL", "USER", user) }
        try await Task.sleep(for: .seconds(1))
        for replica in replicas {
            var status = 0
            for _ in 0..<20 {
                status = try await HTTP.json("POST", replica.baseURL + "/v1/predict", key: fast, Self.body).status
                if status == 200 { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(status == 200, "\(replica.log.suffix(1500))")
        }
        let users = try await setup.admin.send("CLIENT", "LIST").string ?? ""
        #expect(users.contains("user=sluice-replica") && users.contains("user=sluice-worker"), "reconnected as both roles: \(users)")
        // Every queued job was served by the worker, across the rotation.
        for location in jobs.value.withLock({ $0 }) {
            var job: HTTP.Response?
            for _ in 0..<100 {
                job = try await HTTP.send("GET", replicas[0].baseURL + location, headers: ["Authorization": "Bearer \(queued)"])
                if job?.json?["status"] as? String == "succeeded" { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(job?.json?["status"] as? String == "succeeded", "\(location): \(job?.text ?? "") \(worker.log.suffix(1000))")
        }
        // Redis saw no failed authentication at all.
        let log = try await setup.admin.send("ACL", "LOG")
        #expect(log.array?.isEmpty ?? true, "ACL LOG: \(log)")
        for process in replicas + [worker] {
            #expect(!process.log.contains(fresh["sluice-replica"]!) && !process.log.contains(fresh["sluice-worker"]!), "no password logged")
        }
    }

    @Test func aBadPasswordFileIsRefusedLoggedOnceAndTheOldOneKept() async throws {
        let setup = try Setup(pollInterval: "0.2")
        defer { setup.admin.shutdown() }
        let replica = try await setup.processes.replica()
        let predictor = try await setup.key(replica, scopes: #""predict""#, policy: #"{"name":"default","rate":1000,"period":1,"burst":1000}"#)
        let metricsKey = try await setup.key(replica, scopes: #""metrics""#, policy: #"{"name":"default","rate":100,"period":1,"burst":100}"#)
        func refusals() -> Int {
            replica.log.split(separator: "\n").filter { $0.contains("secret not reloaded") && $0.contains("REDIS_PASSWORD") }.count
        }
        func stillServing() async throws {
            _ = try await setup.admin.send("CLIENT", "KILL", "USER", "sluice-replica")  // new connections use the password in use
            var status = 0
            for _ in 0..<20 {
                status = try await HTTP.json("POST", replica.baseURL + "/v1/predict", key: predictor, Self.body).status
                if status == 200 { break }
                try await Task.sleep(for: .milliseconds(250))
            }
            #expect(status == 200, "\(replica.log.suffix(1000))")
        }

        // Empty: invalid, one log line however many polls see it.
        try setup.secrets.swap(["sluice-replica": ""])
        try await Self.waitForReloads(replica, metricsKey: metricsKey, outcome: "invalid", count: 1)
        try await Task.sleep(for: .seconds(1))
        #expect(refusals() == 1)
        try await stillServing()
        // Gone: unreadable.
        try setup.secrets.remove("sluice-replica")
        try await Self.waitForReloads(replica, metricsKey: metricsKey, outcome: "unreadable", count: 1)
        try await Task.sleep(for: .seconds(1))
        #expect(refusals() == 2)
        try await stillServing()
        // Well-formed but not (yet) known to Redis: refused, retried silently, taken once Redis knows it.
        let early = Cluster.randomHex()
        try setup.secrets.swap(["sluice-replica": early])
        try await Self.waitForReloads(replica, metricsKey: metricsKey, outcome: "refused", count: 1)
        try await Task.sleep(for: .seconds(1))
        #expect(refusals() == 3)
        #expect(try await Self.reloads(replica, metricsKey: metricsKey, outcome: "refused") == 1, "retries are not counted again")
        try await stillServing()
        _ = try await setup.admin.send("ACL", "SETUSER", "sluice-replica", ">\(early)")
        try await Self.waitForReloads(replica, metricsKey: metricsKey, outcome: "ok", count: 1)
        _ = try await setup.admin.send("ACL", "SETUSER", "sluice-replica", "<\(setup.passwords["sluice-replica"]!)")
        try await stillServing()
        #expect(!replica.log.contains(early), "no password logged")
    }
}

extension RedisCredentialRotationTests {
    /// Vault's database secrets engine issues a new *user* with each lease: the user and password
    /// files change together, and the old user is deleted (which disconnects its clients).
    @Test func aNewUserTakesOverAndTheOldOneIsDeleted() async throws {
        let setup = try Setup(pollInterval: "0.3")
        defer { setup.admin.shutdown() }
        try setup.secrets.swap(["username": "sluice-replica\n"])
        let replica = try ServiceProcess(redisURL: setup.redis.url, environment: [
            "SLUICE_ADMIN_KEY": setup.processes.adminKey, "SLUICE_MODEL_SIGNING_KEY": setup.processes.signingKey,
            "SLUICE_SECRETS_POLL_INTERVAL": "0.3",
            "REDIS_USERNAME_FILE": setup.secrets.file("username"), "REDIS_PASSWORD_FILE": setup.secrets.file("sluice-replica"),
        ])
        try await replica.waitUntilReady()
        let predictor = try await setup.key(replica, scopes: #""predict""#, policy: #"{"name":"default","rate":100000,"period":1,"burst":1000}"#)
        let metricsKey = try await setup.key(replica, scopes: #""metrics""#, policy: #"{"name":"default","rate":100,"period":1,"burst":100}"#)

        // The same rules as sluice-replica, under a new name and password.
        let rules = try #require(try Repository.read("deploy/redis/users.acl.in").split(separator: "\n").first { $0.hasPrefix("user sluice-replica ") })
        let password = Cluster.randomHex()
        _ = try await setup.admin.send(RedisCommand("ACL", ["SETUSER", "v-sluice-2"] + rules.split(separator: " ").dropFirst(2).map(String.init) + [">\(password)"]))
        let running = Shared(true)
        let failures = Shared<[Int]>([])
        let load = Task {
            var answered = 0
            while running.value.withLock({ $0 }) {
                let status = (try? await HTTP.json("POST", replica.baseURL + "/v1/predict", key: predictor, Self.body).status) ?? -1
                if status != 200 { failures.value.withLock { $0.append(status) } }
                answered += 1
            }
            return answered
        }
        try await Task.sleep(for: .seconds(1))
        try setup.secrets.swap(["username": "v-sluice-2\n", "sluice-replica": password + "\n"])
        try await Self.waitForReloads(replica, metricsKey: metricsKey, outcome: "ok", count: 1)
        _ = try await setup.admin.send("ACL", "DELUSER", "sluice-replica")
        try await Task.sleep(for: .seconds(2))
        running.value.withLock { $0 = false }
        let answered = await load.value
        #expect(failures.value.withLock { $0 }.isEmpty, "\(failures.value.withLock { $0 }) of \(answered): \(replica.log.suffix(1500))")
        #expect(answered > 100)
        let clients = try await setup.admin.send("CLIENT", "LIST").string ?? ""
        #expect(clients.contains("user=v-sluice-2") && !clients.contains("user=sluice-replica"), "\(clients)")
    }
}

extension RedisCredentialRotationTests {
    /// Mutual TLS to Redis: the client certificate is replaced by one of a new CA. Redis refuses
    /// it until it trusts that CA; then the old CA is dropped and every connection made afresh.
    @Test func aClientCertificateOfANewCARotatesUnderMutualTLS() async throws {
        let files = try TLSFiles()
        var server = files.server
        server.requireClientCertificates = true
        let redis = try RedisServer(tls: server)
        func redisCLI(_ arguments: String..., newCA: Bool = false) throws -> String {
            let (certificate, key) = newCA ? (files.otherClientCertificate, files.otherClientKey) : (files.clientCertificate, files.clientKey)
            return try runCommand(["redis-cli", "--tls", "--cacert", files.ca, "--cert", certificate, "--key", key,
                                   "-h", "127.0.0.1", "-p", String(redis.port)] + arguments).output
        }
        let bundle = "\(files.directory)/both-cas.crt"
        try (try String(contentsOfFile: files.ca, encoding: .utf8) + String(contentsOfFile: files.otherCA, encoding: .utf8))
            .write(toFile: bundle, atomically: true, encoding: .utf8)
        let secrets = try SecretDirectory([
            "tls.crt": try String(contentsOfFile: files.clientCertificate, encoding: .utf8),
            "tls.key": try String(contentsOfFile: files.clientKey, encoding: .utf8),
        ])
        let replica = try ServiceProcess(redisURL: redis.url, environment: [
            "SLUICE_ADMIN_KEY": APIKey.generate().revealed, "SLUICE_MODEL_SIGNING_KEY": Cluster.randomHex(),
            "SLUICE_SECRETS_POLL_INTERVAL": "0.3", "SLUICE_REDIS_TLS_CA_FILE": files.ca,
            "SLUICE_REDIS_TLS_CERT_FILE": secrets.file("tls.crt"), "SLUICE_REDIS_TLS_KEY_FILE": secrets.file("tls.key"),
        ])
        try await replica.waitUntilReady()
        func reloads(_ outcome: String) -> Int {
            replica.log.split(separator: "\n").filter {
                $0.contains("SLUICE_REDIS_TLS") && ($0.contains("outcome=\(outcome)") || outcome == "ok" && $0.contains("reloaded a secret"))
            }.count
        }
        func ready() async throws -> Bool { try await HTTP.send("GET", replica.baseURL + "/readyz").status == 200 }

        // A certificate of a CA Redis does not trust yet: refused, the old one kept.
        try secrets.swap([
            "tls.crt": try String(contentsOfFile: files.otherClientCertificate, encoding: .utf8),
            "tls.key": try String(contentsOfFile: files.otherClientKey, encoding: .utf8),
        ])
        try waitUntil(timeout: 5) { reloads("refused") == 1 }
        _ = try redisCLI("CLIENT", "KILL", "TYPE", "normal")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await ready(), "reconnected with the certificate in use: \(replica.log.suffix(1000))")
        // Redis trusts both CAs: the retry takes the new certificate; then only the new CA is trusted.
        #expect(try redisCLI("CONFIG", "SET", "tls-ca-cert-file", bundle).contains("OK"))
        try waitUntil(timeout: 5) { reloads("ok") == 1 }
        #expect(try redisCLI("CONFIG", "SET", "tls-ca-cert-file", files.otherCA).contains("OK"))
        #expect(try redisCLI("PING").contains("PONG") == false, "the old CA's certificates are refused now")
        #expect(try redisCLI("CLIENT", "KILL", "TYPE", "normal", newCA: true).trimmingCharacters(in: .whitespacesAndNewlines) != "0")
        _ = try redisCLI("CLIENT", "KILL", "TYPE", "pubsub", newCA: true)
        try await Task.sleep(for: .milliseconds(500))
        var isReady = false
        for _ in 0..<20 where !isReady {
            isReady = try await ready()
            if !isReady { try await Task.sleep(for: .milliseconds(250)) }
        }
        #expect(isReady, "new connections present the new certificate: \(replica.log.suffix(1500))")
        #expect(reloads("refused") == 1, "the refusal was logged once, its retries silently")
    }
}
