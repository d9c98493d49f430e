import Foundation
import SluiceAuth
import SluiceTestSupport
import Testing

/// `deploy/grafana/sluice.json` and `deploy/prometheus/alerts.yml` name only metrics that a running
/// replica or worker exports, and the rules pass `promtool check rules`.
@Suite("Dashboards and alert rules", .serialized)
struct MonitoringFilesTests {
    static let deploy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../deploy").standardized.path

    @Test func alertRulesPassPromtool() throws {
        let check = try runCommand(["promtool", "check", "rules", "\(Self.deploy)/prometheus/alerts.yml"])
        #expect(check.status == 0 && check.output.contains("SUCCESS: 5 rules found"), "\(check.output)")
    }

    @Test func everyMetricTheyNameIsExported() async throws {
        let cluster = try await Cluster(workers: 1)
        let monitor = try await cluster.createKey(scopes: ["metrics"])
        // Traffic that makes every lazily created series appear: admissions, a local denial, an
        // auth failure, a queued job the worker runs.
        let queued = try await cluster.createKey(
            scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":1,"burst":1}]"#, extra: #", "overflow": "queue""#)
        for _ in 0..<3 { _ = try await HTTP.json("POST", cluster.url + "/v1/predict", key: queued.key, Cluster.setosa) }
        let flooded = try await cluster.createKey(scopes: ["predict"], policies: #"[{"name":"default","rate":1,"period":60,"burst":1}]"#)
        for _ in 0..<4 { _ = try await HTTP.json("POST", cluster.url + "/v1/predict", key: flooded.key, Cluster.setosa) }
        _ = try await HTTP.json("POST", cluster.url + "/v1/predict", key: APIKey.generate().revealed, Cluster.setosa)
        // A tenant's key: the per-tenant series.
        let tenant = try await HTTP.json("POST", cluster.url + "/v1/tenants", key: cluster.adminKey, #"{"name":"acme","quota_per_day":100}"#)
        let tenantID = try #require(tenant.json?["id"] as? String, "\(tenant.text)")
        let member = try await cluster.createKey(scopes: ["predict"], extra: #","tenant":"\#(tenantID)""#)
        _ = try await HTTP.json("POST", cluster.url + "/v1/predict", key: member.key, Cluster.setosa)
        try await Task.sleep(for: .seconds(3))  // the worker runs the queued jobs at their slots

        let replica = try await HTTP.send("GET", cluster.url + "/metrics", headers: ["Authorization": "Bearer \(monitor.key)"]).text
        let worker = try await HTTP.send("GET", cluster.workers[0].baseURL + "/metrics").text
        var exported: Set<String> = []
        for line in (replica + "\n" + worker).split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            let name = String(parts[2])
            exported.insert(name)
            if parts[3] == "histogram" { exported.formUnion(["\(name)_bucket", "\(name)_sum", "\(name)_count"]) }
        }
        #expect(exported.contains("sluice_limiter_local_denials_total"), "the flood's local denials are exported")
        #expect(worker.contains(#"sluice_jobs_lag_seconds_bucket{le="60.0"}"#), "the queue-lag alert's bucket exists")

        for file in ["grafana/sluice.json", "prometheus/alerts.yml"] {
            let text = try String(contentsOfFile: "\(Self.deploy)/\(file)", encoding: .utf8)
            let named = Set(text.matches(of: /sluice_[a-z_]+/).map { String($0.0) })
            #expect(named.count >= 8, "\(file) names \(named.count) metrics")
            let missing = named.subtracting(exported)
            #expect(missing.isEmpty, "\(file) names metrics nobody exports: \(missing.sorted())")
        }
        // The dashboard covers what operators watch.
        let dashboard = try String(contentsOfFile: "\(Self.deploy)/grafana/sluice.json", encoding: .utf8)
        for metric in ["sluice_limiter_decisions_total", "sluice_limiter_local_denials_total", "sluice_redis_errors_total", "sluice_queue_depth",
                       "sluice_jobs_lag_seconds_bucket", "sluice_jobs_completed_total", "sluice_model_artifacts_refused_total", "sluice_limiter_mode"] {
            #expect(dashboard.contains(metric), "\(metric) on the dashboard")
        }
    }
}
