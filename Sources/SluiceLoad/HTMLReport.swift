import Foundation

/// The report as one self-contained HTML page (`sluice loadtest --report FILE.html`): inline CSS
/// and SVG, no script, nothing fetched when it is viewed. Per key: admissions per 100 ms against
/// the allowance, cumulative admissions against burst + rate × t (slots on the limiter's clock),
/// the mix of answers over time, latency percentiles, and the figures of the JSON report (each
/// marked `data-key`/`data-field`, so that a test can read them back from the rendered page).
extension LoadReport {
    public var html: String {
        var page = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Sluice load test</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2330; }
            h1 { font-size: 20px; } h2 { font-size: 17px; margin-top: 32px; }
            table { border-collapse: collapse; margin: 8px 0; } td, th { border: 1px solid #ccd; padding: 3px 8px; text-align: right; }
            th { background: #eef; } .charts { display: flex; flex-wrap: wrap; gap: 12px; }
            figure { margin: 0; } figcaption { font-size: 12px; color: #556; }
            .held { color: #176b2c; } .over { color: #b00020; font-weight: bold; }
            </style></head><body>
            <h1>Sluice load test: \(escape(mode))-loop, \(format(durationSeconds)) s\(polite ? ", polite client" : "")</h1>

            """
        for (index, key) in keys.enumerated() {
            page += section(key, index: index)
        }
        return page + "</body></html>\n"
    }

    private func section(_ key: KeyReport, index: Int) -> String {
        let name = escape(key.name)
        func cell(_ field: String, _ value: String) -> String { "<td data-key=\"\(name)\" data-field=\"\(field)\">\(value)</td>" }
        let held = key.overAdmission == 0 && key.unslotted == 0
        var html = """
            <h2>key \(name) <small>(\(escape(key.overflow)); \(key.rate)/\(format(key.period)) s, burst \(key.burst), offered \(format(key.offeredRate))/s)</small></h2>
            <p class="\(held ? "held" : "over")">\(held ? "limit held: no window over burst + rate × window" : "OVER-ADMISSION: \(key.overAdmission) over the allowance")</p>
            <table><tr><th>sent</th><th>admitted</th><th>200</th><th>202</th><th>429</th><th>5xx</th><th>over-admission</th><th>allowance used</th>
            <th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>max ms</th></tr><tr>
            \(cell("sent", "\(key.sent)"))\(cell("admitted", "\(key.admitted)"))\(cell("ok", "\(key.ok)"))\(cell("accepted", "\(key.accepted)"))\
            \(cell("too_many_requests", "\(key.tooManyRequests)"))\(cell("server_errors", "\(key.serverErrors)"))\
            \(cell("over_admission", "\(key.overAdmission)"))\(cell("allowance_used", String(format: "%.4f", key.allowanceUsed)))\
            \(cell("p50", String(format: "%.2f", key.latencyMs.p50)))\(cell("p90", String(format: "%.2f", key.latencyMs.p90)))\
            \(cell("p99", String(format: "%.2f", key.latencyMs.p99)))\(cell("max", String(format: "%.2f", key.latencyMs.max)))
            </tr></table>
            <div class="charts">

            """
        let ratePerSecond = Double(key.rate) / key.period
        // Admissions per 100 ms, slots relative to the first one (the limiter's clock).
        let first = key.slots.first ?? 0
        let steps = key.slots.isEmpty ? 0 : Int((key.slots.last! - first) / 100_000) + 1
        var perStep = Array(repeating: 0.0, count: max(steps, 1))
        for slot in key.slots { perStep[Int((slot - first) / 100_000)] += 1 }
        let times = perStep.indices.map { Double($0) / 10 }
        html += chart(
            "Admitted per 100 ms against the allowance (rate × 0.1 s)", x: times,
            series: [("admitted", perStep, "#2f5fd0"), ("allowance", times.map { _ in ratePerSecond / 10 }, "#d07a2f")])
        var running = 0.0
        let cumulative = perStep.map { running += $0; return running }
        html += chart(
            "Cumulative admitted against burst + rate × t", x: times,
            series: [("admitted", cumulative, "#2f5fd0"), ("burst + rate × t", times.map { Double(key.burst) + ratePerSecond * ($0 + 0.1) }, "#d07a2f")])
        let ticks = key.timeline
        html += chart(
            "Answers per 100 ms (by send time)", x: ticks.map(\.at),
            series: [("200", ticks.map { Double($0.ok) }, "#2e9d4a"), ("202", ticks.map { Double($0.accepted) }, "#7a4fd0"),
                     ("429", ticks.map { Double($0.tooMany) }, "#d0a12f"), ("5xx", ticks.map { Double($0.serverErrors) }, "#c0222f")])
        let percentiles = [("p50", key.latencyMs.p50), ("p90", key.latencyMs.p90), ("p99", key.latencyMs.p99), ("p99.9", key.latencyMs.p99_9), ("max", key.latencyMs.max)]
        html += bars("Latency percentiles (ms)", percentiles)
        return html + "</div>\n"
    }

    /// A line chart as inline SVG: axes with their largest values, one polyline per series.
    private func chart(_ title: String, x: [Double], series: [(String, [Double], String)]) -> String {
        let (width, height, left, bottom) = (460.0, 220.0, 44.0, 24.0)
        let maxX = max(x.max() ?? 1, 0.1)
        let maxY = max(series.flatMap(\.1).max() ?? 1, 1)
        func point(_ xv: Double, _ yv: Double) -> String {
            String(format: "%.1f,%.1f", left + xv / maxX * (width - left - 8), height - bottom - yv / maxY * (height - bottom - 16))
        }
        var svg = """
            <figure><svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" role="img" aria-label="\(escape(title))">
            <line x1="\(left)" y1="\(height - bottom)" x2="\(width - 8)" y2="\(height - bottom)" stroke="#889"/>
            <line x1="\(left)" y1="8" x2="\(left)" y2="\(height - bottom)" stroke="#889"/>
            <text x="\(left - 4)" y="18" font-size="10" text-anchor="end">\(format(maxY))</text>
            <text x="\(left - 4)" y="\(height - bottom)" font-size="10" text-anchor="end">0</text>
            <text x="\(width - 8)" y="\(height - 8)" font-size="10" text-anchor="end">\(format(maxX)) s</text>

            """
        for (index, (name, values, color)) in series.enumerated() {
            let points = zip(x, values).map { point($0, $1) }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" points=\"\(points)\"/>\n"
            svg += "<text x=\"\(Int(left) + 8 + index * 110)\" y=\"\(Int(height) - 6)\" font-size=\"11\" fill=\"\(color)\">■ \(escape(name))</text>\n"
        }
        return svg + "</svg><figcaption>\(escape(title))</figcaption></figure>\n"
    }

    private func bars(_ title: String, _ values: [(String, Double)]) -> String {
        let (width, height) = (460.0, 220.0)
        let maxValue = max(values.map(\.1).max() ?? 1, 0.001)
        var svg = "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\">\n"
        for (index, (name, value)) in values.enumerated() {
            let barHeight = value / maxValue * 160
            let x = 30.0 + Double(index) * 85
            svg += String(format: "<rect x=\"%.0f\" y=\"%.1f\" width=\"50\" height=\"%.1f\" fill=\"#2f5fd0\"/>\n", x, 190 - barHeight, barHeight)
            svg += "<text x=\"\(Int(x) + 25)\" y=\"205\" font-size=\"11\" text-anchor=\"middle\">\(escape(name))</text>\n"
            svg += String(format: "<text x=\"%.0f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%.2f</text>\n", x + 25, 186 - barHeight, value)
        }
        return svg + "</svg><figcaption>\(escape(title))</figcaption></figure>\n"
    }

    private func format(_ value: Double) -> String { String(format: "%g", (value * 100).rounded() / 100) }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
