import Foundation
import SluiceTestSupport
import Testing

/// `sluice loadtest --report FILE.html`, rendered by a real headless Chromium.
@Suite("Load-test HTML report", .serialized)
struct LoadTestReportTests {
    @Test func theRenderedPageShowsTheFiguresOfTheJSONReport() async throws {
        let cluster = try await Cluster()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-report-\(UUID().uuidString.prefix(6))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let page = "\(directory)/report.html"
        let run = try runCommand(
            [ServiceProcess.binary, "loadtest", "--url", cluster.url, "--json", "--duration", "3", "--report", page,
             "--key", "steady:rate=20,burst=5,offered=60", "--key", "queued:rate=10,burst=5,overflow=queue,offered=30"],
            environment: ["SLUICE_ADMIN_KEY": cluster.adminKey])
        #expect(run.status == 0, "\(run.output.suffix(1500))")
        let start = try #require(run.output.range(of: "\n{\n") ?? run.output.range(of: "{\n"))
        let json = try JSONSerialization.jsonObject(with: Data(run.output[start.lowerBound...].utf8)) as? [String: Any]
        let keys = try #require(json?["keys"] as? [[String: Any]])

        let source = try String(contentsOfFile: page, encoding: .utf8)
        #expect(!source.contains("<script") && !source.contains("src=") && !source.contains("href=") && !source.contains("@import"),
                "self-contained: nothing fetched when viewed")

        // Chromium renders it: the DOM it built, and a screenshot.
        let screenshot = "\(directory)/report.png"
        let chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,1600"]
        let dom = try runCommand(chromium + ["--dump-dom", "file://\(page)"])
        #expect(dom.status == 0 && dom.output.contains("<svg"), "\(dom.output.suffix(500))")
        let shot = try runCommand(chromium + ["--screenshot=\(screenshot)", "file://\(page)"])
        let png = FileManager.default.contents(atPath: screenshot) ?? Data()
        #expect(shot.status == 0 && png.count > 20_000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]), "\(shot.output.suffix(500))")
        // Kept for a person to look at.
        try? FileManager.default.removeItem(atPath: "/tmp/sluice-loadtest-report.png")
        try? FileManager.default.copyItem(atPath: screenshot, toPath: "/tmp/sluice-loadtest-report.png")

        var shown: [String: [String: String]] = [:]
        for match in dom.output.matches(of: /data-key="([^"]+)" data-field="([a-z_0-9]+)">([^<]*)</) {
            shown[String(match.1), default: [:]][String(match.2)] = String(match.3)
        }
        #expect(shown.count == 2, "\(shown)")
        for key in keys {
            let name = try #require(key["name"] as? String)
            let figures = try #require(shown[name], "\(name) on the page")
            for field in ["sent", "admitted", "ok", "accepted", "too_many_requests", "server_errors", "over_admission"] {
                #expect(figures[field] == "\(key[field] as? Int ?? -1)", "\(name) \(field): page \(figures[field] ?? "-"), JSON \(key[field] ?? "-")")
            }
            #expect(abs((Double(figures["allowance_used"] ?? "") ?? -1) - (key["allowance_used"] as? Double ?? -2)) < 0.0001)
            let latency = key["latency_ms"] as? [String: Double] ?? [:]
            for percentile in ["p50", "p90", "p99", "max"] {
                #expect(abs((Double(figures[percentile] ?? "") ?? -1) - (latency[percentile] ?? -2)) < 0.006, "\(name) \(percentile)")
            }
        }
    }
}
