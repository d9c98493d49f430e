import Foundation
import SluiceTestSupport
import Testing
import Yams

/// docker-compose.yml, the Dockerfile, deploy/k8s and the load balancer configs, parsed and
/// cross-checked against each other and against the code (no Docker engine or cluster runs here).
@Suite("Deployment files agree with the code")
struct DeploymentFilesTests {
    /// Environment variables the code reads, and those that may also come from a `*_FILE`.
    static let codeVariables: (plain: Set<String>, secrets: Set<String>) = {
        var plain = Set<String>(), secrets = Set<String>()
        let sources = FileManager.default.enumerator(atPath: Repository.path("Sources"))!
        for case let file as String in sources where file.hasSuffix(".swift") {
            let text = (try? Repository.read("Sources/\(file)")) ?? ""
            for match in text.matches(of: /"((?:SLUICE|REDIS)_[A-Z_]+)"/) { plain.insert(String(match.1)) }
            for match in text.matches(of: /(?:required|optional)\("([A-Z_]+)"\)|let name = "([A-Z_]+)"/) {
                secrets.insert(String(match.1 ?? match.2 ?? ""))
            }
        }
        return (plain, secrets.union(["REDIS_PASSWORD"]))
    }()

    static func isReadByCode(_ name: String) -> Bool {
        if codeVariables.plain.contains(name) { return true }
        return name.hasSuffix("_FILE") && codeVariables.secrets.contains(String(name.dropLast(5)))
    }

    static let secretNames: Set<String> = ["sluice-admin-key", "sluice-model-signing-key", "sluice-replica", "sluice-worker"]
    /// The load balancer's TLS certificate and key (compose secrets, mounted into nginx only).
    static let tlsSecretNames: Set<String> = ["sluice-lb-cert", "sluice-lb-key"]

    static func yaml(_ file: String) throws -> [String: Any] {
        try #require(try Yams.load(yaml: Repository.read(file)) as? [String: Any], "\(file)")
    }

    static func documents(_ file: String) throws -> [[String: Any]] {
        try Yams.load_all(yaml: Repository.read(file)).compactMap { $0 as? [String: Any] }
    }

    @Test func composeMatchesTheCodeAndTheOtherFiles() throws {
        let compose = try Self.yaml("docker-compose.yml")
        let services = try #require(compose["services"] as? [String: [String: Any]])
        #expect(Set(services.keys) == ["redis", "sluice", "worker", "lb"])
        let declaredSecrets = Set((compose["secrets"] as? [String: Any] ?? [:]).keys)
        #expect(declaredSecrets == Self.secretNames.union(Self.tlsSecretNames))
        for (name, secret) in compose["secrets"] as? [String: [String: String]] ?? [:] {
            #expect(secret["file"]?.hasPrefix("./run/") == true, "\(name): secret files live in run/, outside git")
        }

        for (name, service) in services {
            let mounted = Set(service["secrets"] as? [String] ?? [])
            #expect(mounted.isSubset(of: declaredSecrets), "\(name)")
            for (variable, value) in service["environment"] as? [String: Any] ?? [:] {
                #expect(Self.isReadByCode(variable), "\(name): \(variable) is not read by the code")
                if variable.hasSuffix("_FILE"), let path = value as? String {
                    let secret = path.replacingOccurrences(of: "/run/secrets/", with: "")
                    #expect(mounted.contains(secret), "\(name): \(variable) points at \(path), which is not mounted")
                }
            }
        }

        let sluice = try #require(services["sluice"])
        let environment = try #require(sluice["environment"] as? [String: Any])
        #expect(((sluice["deploy"] as? [String: Any])?["replicas"] as? Int ?? 0) >= 2, "replicas scale by deploy.replicas")
        #expect(sluice["ports"] == nil, "replicas are reached through the load balancer only")
        let port = try #require(environment["SLUICE_PORT"] as? String)
        let check = ((sluice["healthcheck"] as? [String: Any])?["test"] as? [String] ?? []).joined(separator: " ")
        #expect(check.contains("healthcheck") && check.contains("--port \(port)") && check.contains("/readyz"), "\(check)")

        let worker = try #require(services["worker"])
        let command = try #require(worker["command"] as? [String])
        let workerPort = try #require(command.firstIndex(of: "--port").map { command[$0 + 1] })
        let workerCheck = ((worker["healthcheck"] as? [String: Any])?["test"] as? [String] ?? []).joined(separator: " ")
        #expect(command.first == "worker" && workerCheck.contains("--port \(workerPort)") && workerCheck.contains("/healthz"))
        #expect(!(worker["secrets"] as? [String] ?? []).contains("sluice-admin-key"), "a worker never holds the admin key")

        let lb = try #require(services["lb"])
        let nginx = try Repository.read("deploy/nginx.conf")
        let plain = try #require(nginx.firstMatch(of: /listen (\d+);/)).1
        let https = try #require(nginx.firstMatch(of: /listen (\d+) ssl;/)).1
        let upstream = try #require(nginx.firstMatch(of: /server sluice:(\d+)/)).1
        #expect(lb["ports"] as? [String] == ["\(https):\(https)", "\(plain):\(plain)"])
        #expect(nginx.contains("return 308 https://$host:\(https)$request_uri"), "plain HTTP only redirects to HTTPS")
        #expect(Set(lb["secrets"] as? [String] ?? []) == Self.tlsSecretNames)
        for secret in Self.tlsSecretNames { #expect(nginx.contains("/run/secrets/\(secret);")) }
        #expect(String(upstream) == port, "nginx forwards to the replicas' SLUICE_PORT")
        #expect((lb["volumes"] as? [String] ?? []).contains("./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"))
        let lbAddress = try #require(((lb["networks"] as? [String: Any])?["frontend"] as? [String: Any])?["ipv4_address"] as? String)
        #expect(environment["SLUICE_TRUSTED_PROXIES"] as? String == lbAddress, "replicas believe nginx's X-Forwarded-For")

        let redis = try #require(services["redis"])
        let redisCommand = (redis["command"] as? [String] ?? []).joined(separator: " ")
        for option in ["--appendonly yes", "--aclfile", "--maxmemory-policy noeviction", "render-acl", "users.acl.in"] {
            #expect(redisCommand.contains(option), "redis: \(option)")
        }
        #expect(Set(redis["secrets"] as? [String] ?? []) == ["sluice-replica", "sluice-worker"])
        #expect((redis["networks"] as? [String]) == ["backend"])
        #expect(((compose["networks"] as? [String: Any])?["backend"] as? [String: Any])?["internal"] as? Bool == true)
    }

    /// deploy/compose.redis-cluster.yml (the Redis Cluster variant): 6 cluster nodes with the
    /// settings scripts/cluster uses, one `--cluster create` with a replica per master, replicas and
    /// workers in cluster mode seeded with node addresses that exist, and every secret it names
    /// written by scripts/secrets.
    @Test func theRedisClusterVariantOfComposeIsConsistent() throws {
        let variant = try Self.yaml("deploy/compose.redis-cluster.yml")
        let services = try #require(variant["services"] as? [String: [String: Any]])
        let nodes = ["redis", "redis-2", "redis-3", "redis-4", "redis-5", "redis-6"]
        var addresses: [String] = []
        for name in nodes {
            let node = try #require(services[name], "\(name)")
            let command = (node["command"] as? [String] ?? []).joined(separator: " ")
            for option in ["--cluster-enabled yes", "--cluster-node-timeout 2000", "--cluster-require-full-coverage no", "--appendonly yes",
                           "--maxmemory-policy noeviction", "--aclfile", "--masteruser sluice-cluster"] {
                #expect(command.contains(option), "\(name): \(option)")
            }
            let address = ((node["networks"] as? [String: Any])?["backend"] as? [String: Any])?["ipv4_address"] as? String
            addresses.append(try #require(address, "\(name) has a fixed address (CLUSTER MEET needs one)"))
        }
        let initCommand = ((services["redis-cluster-init"]?["command"] as? [String]) ?? []).joined(separator: " ")
        #expect(initCommand.contains("--cluster-replicas 1") && addresses.allSatisfy { initCommand.contains("\($0):6379") }, "\(initCommand)")
        for name in ["sluice", "worker"] {
            let environment = try #require(services[name]?["environment"] as? [String: Any], "\(name)")
            #expect(environment["SLUICE_REDIS_MODE"] as? String == "cluster")
            let seeds = (environment["SLUICE_REDIS_URL"] as? String ?? "").dropFirst("redis://".count).split(separator: ",")
            #expect(seeds.count == 3 && seeds.allSatisfy { addresses.contains(String($0.split(separator: ":")[0])) }, "\(name): \(seeds)")
            #expect(Self.isReadByCode("SLUICE_REDIS_MODE"))
        }
        let directory = try Repository.temporaryDirectory("sluice-cluster-secrets")
        #expect(try runCommand([Repository.path("scripts/secrets"), directory]).status == 0)
        for (name, secret) in variant["secrets"] as? [String: [String: String]] ?? [:] {
            #expect(secret["file"] == "./run/secrets/\(name)" && FileManager.default.fileExists(atPath: "\(directory)/\(name)"), "\(name)")
        }
    }

    @Test func dockerfileBuildsInOneStageAndRunsSlimAndUnprivileged() throws {
        let lines = try Repository.read("Dockerfile").split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let stages = lines.indices.filter { lines[$0].hasPrefix("FROM ") }
        #expect(stages.count == 2)
        let build = lines[stages[0]..<stages[1]].joined(separator: "\n")
        let runtime = lines[stages[1]...].joined(separator: "\n")
        #expect(lines[stages[0]].contains("swift:") && build.contains("swift build -c release"))
        for needed in ["COPY Sources", "COPY lua", "COPY data", "libhiredis-dev"] { #expect(build.contains(needed), "\(needed)") }
        #expect(lines[stages[1]].contains("slim") && runtime.contains("libhiredis"))
        let user = try #require(runtime.firstMatch(of: /\nUSER (\S+)/)).1
        #expect(!user.hasPrefix("root") && !user.hasPrefix("0"), "runs as \(user)")
        #expect(runtime.contains("EXPOSE 8080") && runtime.contains(#"ENTRYPOINT ["sluice"]"#))
        #expect(runtime.contains(#""healthcheck", "--path", "/readyz""#))
    }

    @Test func kubernetesManifestsAreConsistent() throws {
        let kustomization = try Self.yaml("deploy/k8s/kustomization.yaml")
        let files = try #require(kustomization["resources"] as? [String])
        let documents = try files.flatMap { try Self.documents("deploy/k8s/\($0)") }
        #expect(!documents.contains { $0["kind"] as? String == "Secret" }, "no Secret is committed")
        func named(_ kind: String, _ name: String) throws -> [String: Any] {
            try #require(documents.first { $0["kind"] as? String == kind && ($0["metadata"] as? [String: Any])?["name"] as? String == name },
                         "\(kind)/\(name)")
        }
        func podSpec(_ deployment: [String: Any]) -> [String: Any] {
            ((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["spec"] as? [String: Any] ?? [:]
        }
        func templateLabels(_ deployment: [String: Any]) -> [String: String] {
            (((deployment["spec"] as? [String: Any])?["template"] as? [String: Any])?["metadata"] as? [String: Any])?["labels"] as? [String: String] ?? [:]
        }
        func container(_ deployment: [String: Any]) throws -> [String: Any] {
            try #require((podSpec(deployment)["containers"] as? [[String: Any]])?.first)
        }
        func probe(_ container: [String: Any], _ kind: String) -> (path: String?, port: String?) {
            let get = (container[kind] as? [String: Any])?["httpGet"] as? [String: Any]
            return (get?["path"] as? String, get?["port"].map { "\($0)" })
        }
        func portNumber(_ container: [String: Any], _ nameOrNumber: String?) -> Int? {
            let ports = container["ports"] as? [[String: Any]] ?? []
            return ports.first { $0["name"] as? String == nameOrNumber || "\($0["containerPort"] ?? "")" == nameOrNumber }?["containerPort"] as? Int
        }
        func environment(_ container: [String: Any]) -> [String: String] {
            Dictionary(uniqueKeysWithValues: (container["env"] as? [[String: Any]] ?? []).map { ($0["name"] as? String ?? "", "\($0["value"] ?? "")") })
        }
        func secretItems(_ deployment: [String: Any]) -> (name: String?, keys: Set<String>) {
            let secret = (podSpec(deployment)["volumes"] as? [[String: Any]])?.first?["secret"] as? [String: Any]
            return (secret?["secretName"] as? String, Set((secret?["items"] as? [[String: Any]] ?? []).compactMap { $0["key"] as? String }))
        }

        let api = try named("Deployment", "sluice")
        let apiContainer = try container(api)
        let apiEnvironment = environment(apiContainer)
        #expect(apiContainer["args"] as? [String] == ["serve"])
        #expect(probe(apiContainer, "readinessProbe").path == "/readyz" && probe(apiContainer, "livenessProbe").path == "/healthz")
        #expect(portNumber(apiContainer, probe(apiContainer, "readinessProbe").port) == Int(apiEnvironment["SLUICE_PORT"] ?? ""))
        for name in apiEnvironment.keys { #expect(Self.isReadByCode(name), "sluice: \(name) is not read by the code") }
        #expect(secretItems(api).name == "sluice-secrets" && secretItems(api).keys == ["sluice-admin-key", "sluice-model-signing-key", "sluice-replica"])

        let workerDeployment = try named("Deployment", "sluice-worker")
        let workerContainer = try container(workerDeployment)
        let args = workerContainer["args"] as? [String] ?? []
        let workerPort = args.firstIndex(of: "--port").map { Int(args[$0 + 1]) } ?? nil
        #expect(args.first == "worker" && portNumber(workerContainer, probe(workerContainer, "livenessProbe").port) == workerPort)
        #expect(probe(workerContainer, "livenessProbe").path == "/healthz")
        for name in environment(workerContainer).keys { #expect(Self.isReadByCode(name), "worker: \(name) is not read by the code") }
        #expect(secretItems(workerDeployment).keys == ["sluice-model-signing-key", "sluice-worker"], "a worker never holds the admin key")

        let service = try named("Service", "sluice")
        let selector = (service["spec"] as? [String: Any])?["selector"] as? [String: String] ?? [:]
        #expect(!selector.isEmpty && selector.allSatisfy { templateLabels(api)[$0.key] == $0.value })
        let servicePort = ((service["spec"] as? [String: Any])?["ports"] as? [[String: Any]])?.first?["targetPort"].map { "\($0)" }
        #expect(portNumber(apiContainer, servicePort) != nil)
        let hpa = try named("HorizontalPodAutoscaler", "sluice")
        let target = (hpa["spec"] as? [String: Any])?["scaleTargetRef"] as? [String: String]
        #expect(target?["kind"] == "Deployment" && target?["name"] == "sluice")
        let pdb = try named("PodDisruptionBudget", "sluice")
        let pdbSelector = ((pdb["spec"] as? [String: Any])?["selector"] as? [String: Any])?["matchLabels"] as? [String: String] ?? [:]
        #expect(!pdbSelector.isEmpty && pdbSelector.allSatisfy { templateLabels(api)[$0.key] == $0.value })

        // HTTPS at the edge: an Ingress with a TLS section, redirecting plain HTTP, to the Service.
        let edge = try named("Ingress", "sluice")
        let edgeSpec = edge["spec"] as? [String: Any] ?? [:]
        let tls = (edgeSpec["tls"] as? [[String: Any]])?.first ?? [:]
        #expect(tls["secretName"] as? String == "sluice-tls" && !(tls["hosts"] as? [String] ?? []).isEmpty)
        let annotations = (edge["metadata"] as? [String: Any])?["annotations"] as? [String: String] ?? [:]
        #expect(annotations["nginx.ingress.kubernetes.io/ssl-redirect"] == "true")
        #expect(annotations["nginx.ingress.kubernetes.io/permanent-redirect-code"] == "308")
        #expect(try Repository.read("deploy/k8s/ingress.yaml").contains("cert-manager.io/cluster-issuer"), "cert-manager shown as an option")
        let route = ((((edgeSpec["rules"] as? [[String: Any]])?.first?["http"] as? [String: Any])?["paths"] as? [[String: Any]])?.first?["backend"]
            as? [String: Any])?["service"] as? [String: Any]
        let servicePortName = ((service["spec"] as? [String: Any])?["ports"] as? [[String: Any]])?.first?["name"] as? String
        #expect(route?["name"] as? String == "sluice" && (route?["port"] as? [String: Any])?["name"] as? String == servicePortName)

        let policy = try named("NetworkPolicy", "redis-from-sluice-only")
        let spec = policy["spec"] as? [String: Any] ?? [:]
        #expect((spec["podSelector"] as? [String: Any])?["matchLabels"] as? [String: String] == ["app.kubernetes.io/name": "redis"])
        let ingress = (spec["ingress"] as? [[String: Any]])?.first ?? [:]
        let allowed = ((ingress["from"] as? [[String: Any]])?.first?["podSelector"] as? [String: Any])?["matchLabels"] as? [String: String] ?? [:]
        #expect(!allowed.isEmpty)
        for deployment in [api, workerDeployment] {
            #expect(allowed.allSatisfy { templateLabels(deployment)[$0.key] == $0.value }, "Sluice pods may reach Redis")
        }
        let redisPort = (ingress["ports"] as? [[String: Any]])?.first?["port"] as? Int
        #expect(apiEnvironment["SLUICE_REDIS_URL"]?.hasSuffix(":\(redisPort ?? 0)") == true)
    }

    @Test func loadBalancerConfigsAreValid() throws {
        let haproxy = try Repository.read("deploy/haproxy.cfg")
        #expect(haproxy.contains("option httpchk GET /readyz"))
        #expect(haproxy.contains("http-request disable-l7-retry unless idempotent"), "only idempotent requests are retried once sent")
        for directive in ["timeout http-request", "sc_conn_cur(0)", "sc_http_req_rate(0)", "errorfiles problems", "errorfile 503 haproxy-errors/503.http"] {
            #expect(haproxy.contains(directive), "haproxy.cfg bounds slow and hostile clients: \(directive)")
        }
        for code in [429, 500, 502, 503, 504] {
            let file = try Repository.read("deploy/haproxy-errors/\(code).http")
            #expect(file.hasPrefix("HTTP/1.1 \(code) ") && file.contains("\r\nContent-Type: application/problem+json\r\n"))
            let body = try #require(file.components(separatedBy: "\r\n\r\n").last)
            #expect(file.contains("\r\nContent-Length: \(body.utf8.count)\r\n"), "\(code): Content-Length matches the body")
            #expect(file.contains("\r\nRetry-After: ") == [429, 503].contains(code))
        }
        // The TLS certificate files (compose secrets, and scripts/cluster's) come from scripts/secrets.
        let directory = try Repository.temporaryDirectory("sluice-lb-config")
        let secrets = try runCommand([Repository.path("scripts/secrets"), "\(directory)/secrets"])
        #expect(secrets.status == 0, "\(secrets.output)")
        let pem = try String(contentsOfFile: "\(directory)/secrets/sluice-lb-cert", encoding: .utf8)
            + String(contentsOfFile: "\(directory)/secrets/sluice-lb-key", encoding: .utf8)
        try pem.write(toFile: "\(directory)/lb.pem", atomically: true, encoding: .utf8)
        let upstreams = ["SLUICE_LB_BIND": "127.0.0.1:1", "SLUICE_REPLICA_1": "127.0.0.1:2", "SLUICE_REPLICA_2": "127.0.0.1:3", "SLUICE_REPLICA_3": "127.0.0.1:4"]
        for tls in [["SLUICE_LB_CERT": "\(directory)/lb.pem", "SLUICE_LB_HTTP_BIND": "127.0.0.1:5"], [:]] {
            let checked = try runCommand(["haproxy", "-c", "-f", Repository.path("deploy/haproxy.cfg")], environment: upstreams.merging(tls) { $1 })
            #expect(checked.status == 0 && !checked.output.contains("WARNING"), "\(tls.isEmpty ? "plain" : "TLS"): \(checked.output)")
        }
        for directive in ["ssl-min-ver TLSv1.2", "Strict-Transport-Security", "code 308"] {
            #expect(haproxy.contains(directive), "haproxy.cfg: \(directive)")
        }

        // nginx resolves `sluice` at start-up; checked here against a loopback upstream instead.
        let nginx = try Repository.read("deploy/nginx.conf").replacingOccurrences(of: "server sluice:", with: "server 127.0.0.1:")
            .replacingOccurrences(of: "/run/secrets/", with: "\(directory)/secrets/")
        try nginx.write(toFile: "\(directory)/nginx.conf", atomically: true, encoding: .utf8)
        let tested = try runCommand(["nginx", "-t", "-c", "\(directory)/nginx.conf"])
        #expect(tested.status == 0, "\(tested.output)")
        let directives = nginx.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }
        for directive in ["client_header_timeout", "client_body_timeout", "limit_conn per_address_connections", "limit_req zone=per_address_requests"] {
            #expect(directives.contains { $0.contains(directive) }, "nginx.conf bounds slow and hostile clients: \(directive)")
        }
        let retries = directives.filter { $0.contains("proxy_next_upstream ") }
        #expect(retries.count == 1 && !retries[0].contains("non_idempotent"), "nginx must never retry a POST that reached a replica")
    }
}
