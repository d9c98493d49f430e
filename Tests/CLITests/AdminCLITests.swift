import Foundation
import SluiceTestSupport
import Testing

/// `sluice keys`, `sluice tenants` and `sluice models` against a live replica, as an operator runs them.
@Suite("sluice keys and sluice models", .serialized)
struct AdminCLITests {
    @Test func operatorsManageTenantsAndTheirKeys() async throws {
        let cluster = try await Cluster()
        func cli(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try runCommand(
                [ServiceProcess.binary] + arguments + ["--url", cluster.url], environment: ["SLUICE_ADMIN_KEY": cluster.adminKey, "SLUICE_ADMIN_KEY_FILE": ""])
        }
        let created = try cli(["tenants", "create", "--name", "acme", "--policy", "minute:rate=100,period=60,burst=10", "--json"])
        let tenant = try #require((try JSONSerialization.jsonObject(with: Data(created.output.utf8)) as? [String: Any])?["id"] as? String, "\(created.output)")
        let key = try cli(["keys", "create", "--name", "acme prod", "--scope", "predict", "--tenant", tenant, "--json"])
        let keyID = try #require((try JSONSerialization.jsonObject(with: Data(key.output.utf8)) as? [String: Any])?["id"] as? String, "\(key.output)")
        let list = try cli(["tenants", "list"])
        #expect(list.status == 0 && list.output.contains(tenant) && list.output.contains("minute 100/60"), "\(list.output)")
        #expect(try cli(["keys", "list"]).output.contains(tenant), "the keys table names each key's tenant")
        let shown = try cli(["tenants", "show", tenant])
        #expect(shown.status == 0 && shown.output.contains("keys: \(keyID)"), "\(shown.output)")
        // Usage for billing: CSV rows per hour, a table with a total, refused without a subject.
        let member = try #require((try JSONSerialization.jsonObject(with: Data(key.output.utf8)) as? [String: Any])?["key"] as? String)
        for _ in 0..<3 { #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: member, Cluster.setosa).status == 200) }
        let csv = try cli(["usage", "--tenant", tenant, "--csv"])
        let lines = csv.output.split(separator: "\n")
        #expect(csv.status == 0 && lines.first == "start,admitted,admitted_cost,denied_rate,denied_quota,denied_concurrency,denied_auth", "\(csv.output)")
        #expect(lines.count == 2 && lines[1].hasSuffix(",3,3,0,0,0,0"), "\(csv.output)")
        let table = try cli(["usage", "--key", keyID, "--granularity", "day"])
        #expect(table.status == 0 && table.output.contains("total") && table.output.contains("ADMITTED COST"), "\(table.output)")
        #expect(try cli(["usage"]).status == 2, "a key or a tenant is needed")
        let updated = try cli(["tenants", "update", tenant, "--quota-per-day", "5000"])
        #expect(updated.status == 0 && updated.output.contains("quota_per_day: 5000"), "\(updated.output)")
        let refused = try cli(["tenants", "delete", tenant])
        #expect(refused.status == 1 && refused.output.contains("cascade"), "a tenant with keys: \(refused.output)")
        #expect(try cli(["tenants", "create", "--name", "no budget"]).status == 1, "a tenant needs policies or a quota")
        #expect(try cli(["tenants", "show", "acme"]).status == 2, "not a tenant id")
        #expect(try cli(["tenants", "delete", tenant, "--cascade"]).status == 0)
        #expect(try cli(["keys", "show", keyID]).status == 1, "revoked with its tenant")
    }

    @Test func operatorsManageKeysAndModelsWithoutCurl() async throws {
        let cluster = try await Cluster()
        func cli(_ arguments: [String], key: String? = nil, url: String? = nil) throws -> (status: Int32, output: String) {
            try runCommand(
                [ServiceProcess.binary] + arguments + ["--url", url ?? cluster.url],
                environment: ["SLUICE_ADMIN_KEY": key ?? cluster.adminKey, "SLUICE_ADMIN_KEY_FILE": ""])
        }

        // create: a table, and the key printed once.
        let created = try cli(["keys", "create", "--name", "cli key", "--scope", "predict", "--policy", "default:rate=1,period=60,burst=2"])
        #expect(created.status == 0, "\(created.output)")
        let key = try #require(created.output.firstMatch(of: /key: (sk_[a-z0-9]+_[A-Za-z0-9]+)/).map { String($0.1) }, "\(created.output)")
        let id = String(key.split(separator: "_")[1])
        #expect(created.output.contains("ID") && created.output.contains("cli key") && created.output.contains("default 1/60"), "\(created.output)")
        // --json for scripts; list and show never print a key.
        let json = try cli(["keys", "create", "--name", "scripted", "--scope", "train", "--json"])
        let trainer = try #require((try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])?["key"] as? String, "\(json.output)")
        let list = try cli(["keys", "list"])
        #expect(list.status == 0 && list.output.contains(id) && list.output.contains("scripted") && !list.output.contains(key), "\(list.output)")
        let shown = try cli(["keys", "show", id, "--json"])
        #expect((try JSONSerialization.jsonObject(with: Data(shown.output.utf8)) as? [String: Any])?["id"] as? String == id, "\(shown.output)")

        // update changes the policy in place: the limiter state stays (no fresh burst).
        for _ in 0..<2 { #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 200) }
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 429)
        let updated = try cli(["keys", "update", id, "--policy", "default:rate=2,period=60,burst=2", "--overflow", "delay", "--max-delay", "2"])
        #expect(updated.status == 0 && updated.output.contains("default 2/60") && updated.output.contains("overflow: delay"), "\(updated.output)")
        try await Task.sleep(for: .seconds(1))  // every replica applies it within 1 s
        #expect(try await HTTP.json("POST", cluster.url + "/v1/predict", key: key, Cluster.setosa).status == 429, "the bucket was not refilled")
        let invalid = try cli(["keys", "update", id, "--max-queue-delay", "5"])
        #expect(invalid.status == 1 && invalid.output.contains("/max_queue_delay"), "refused by the API: \(invalid.output)")

        // rotate prints the new key once; revoke ends it.
        let rotated = try cli(["keys", "rotate", id])
        let newKey = try #require(rotated.output.firstMatch(of: /key: (sk_[a-z0-9]+_[A-Za-z0-9]+)/).map { String($0.1) }, "\(rotated.output)")
        #expect(newKey != key && newKey.contains(id))
        #expect(try cli(["keys", "revoke", id]).status == 0)
        #expect(try cli(["keys", "show", id]).status == 1)

        // Exit statuses: refused 1, usage 2, unreachable 3.
        #expect(try cli(["keys", "list"], key: key).status == 1, "a revoked key is refused")
        for usage in [["keys", "show"], ["keys", "create", "--name", "x", "--scope", "predict", "--policy", "nonsense"], ["keys", "show", "BAD/../id"],
                      ["keys", "update", "abcdefgh"], ["models", "activate", "x"], ["keys", "list", "--no-such-flag"]] {
            let result = try cli(usage)
            #expect(result.status == 2, "\(usage): exit \(result.status) \(result.output)")
        }
        let unreachable = try cli(["keys", "list"], url: "http://127.0.0.1:\(try RedisServer.freePort())")
        #expect(unreachable.status == 3 && unreachable.output.contains("unreachable"), "\(unreachable.output)")

        // models: list, train (a train key), activate (admin).
        let models = try cli(["models", "list"])
        #expect(models.status == 0 && models.output.contains("VERSION") && models.output.contains(/\n1 +\* +yes +[01]\.\d{3} +bootstrap/), "\(models.output)")
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-cli-\(UUID().uuidString.prefix(6)).csv").path
        try Cluster.irisCSV().write(toFile: csv, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let trained = try cli(["models", "train", csv], key: trainer)
        #expect(trained.status == 0 && trained.output.contains("trained version 2"), "\(trained.output)")
        #expect(try cli(["models", "train", csv]).status == 1, "the admin key has no train scope")
        let activated = try cli(["models", "activate", "1"])
        #expect(activated.status == 0 && activated.output.contains("active version: 1"), "\(activated.output)")
    }
}
