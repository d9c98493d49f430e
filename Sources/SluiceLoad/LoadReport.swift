import Histogram

/// The outcome of a run, per key: what was sent and answered, and whether the limiter held.
public struct LoadReport: Sendable, Encodable {
    public struct Window: Sendable, Encodable {
        public var seconds: Double
        /// The most admissions whose slots fall within any window of this length.
        public var maxAdmitted: Int
        /// burst + rate × window: the most GCRA may admit in it.
        public var allowance: Double

        enum CodingKeys: String, CodingKey {
            case seconds, allowance
            case maxAdmitted = "max_admitted"
        }
    }

    /// A request that failed (5xx or no answer), sent `at` seconds after the run started.
    public struct Failure: Sendable, Encodable {
        public var at: Double
        public var what: String
    }

    /// Answers to the requests sent within one 100 ms step of the run.
    public struct Tick: Sendable, Encodable {
        public var at: Double
        public var ok = 0, accepted = 0, tooMany = 0, serverErrors = 0
    }

    public struct Latency: Sendable, Encodable {
        public var p50: Double, p90: Double, p99: Double, p99_9: Double, max: Double
    }

    public struct KeyReport: Sendable, Encodable {
        public var name: String
        /// The API key's id (never the key): where its limiter state lives (`sluice:rl:{<id>}:…`).
        public var id: String
        public var overflow: String
        public var rate: Int
        public var period: Double
        public var burst: Int
        public var offeredRate: Double
        public var sent: Int
        public var ok: Int
        public var accepted: Int
        public var tooManyRequests: Int
        public var serverErrors: Int
        public var otherClientErrors: Int
        public var errors: Int
        public var retries: Int
        /// Requests admitted (200 now or after a hold, or 202 queued): each holds one slot.
        public var admitted: Int
        /// Admitted answers that carried no slot: the limiter was bypassed (should be 0).
        public var unslotted: Int
        /// From the first slot to the last.
        public var spanSeconds: Double
        public var admittedPerSecond: Double
        /// admitted ÷ (burst + rate × span): 1.0 means every slot the policy allows was used.
        public var allowanceUsed: Double
        public var windows: [Window]
        /// The most any window exceeded its allowance by (0: the limit held exactly).
        public var overAdmission: Int
        public var latencyMs: Latency
        public var jobsCompleted: Int
        public var jobsFailed: Int
        public var jobsUnfinished: Int
        public var polls: Int
        /// 5xx answers, transport errors and (polite) jobs that failed or never finished.
        public var failures: Int
        public var failureLog: [Failure]
        /// For the HTML report (not in the JSON): admission slots (µs, the limiter's clock), sorted,
        /// and the answers per 100 ms.
        public var slots: [Int64] = []
        public var timeline: [Tick] = []

        enum CodingKeys: String, CodingKey {
            case name, id, overflow, rate, period, burst, sent, ok, accepted, errors, retries, admitted, unslotted, windows, polls, failures
            case offeredRate = "offered_rate"
            case tooManyRequests = "too_many_requests"
            case serverErrors = "server_errors"
            case otherClientErrors = "other_client_errors"
            case spanSeconds = "span_seconds"
            case admittedPerSecond = "admitted_per_second"
            case allowanceUsed = "allowance_used"
            case overAdmission = "over_admission"
            case latencyMs = "latency_ms"
            case jobsCompleted = "jobs_completed"
            case jobsFailed = "jobs_failed"
            case jobsUnfinished = "jobs_unfinished"
            case failureLog = "failure_log"
        }
    }

    public var mode: String
    public var polite: Bool
    public var durationSeconds: Double
    public var keys: [KeyReport]

    enum CodingKeys: String, CodingKey {
        case mode, polite, keys
        case durationSeconds = "duration_seconds"
    }

    /// True when no window of any key admitted more than its allowance.
    public var limitsHeld: Bool { keys.allSatisfy { $0.overAdmission == 0 && $0.unslotted == 0 } }

    /// Window lengths checked, in periods of the policy.
    static let windowPeriods = [0.1, 0.25, 0.5, 1, 2, 5]

    /// The most slots within any window of `length` µs (both ends included).
    static func maxInWindow(_ sorted: [Int64], length: Int64) -> Int {
        var worst = 0
        var low = 0
        for high in sorted.indices {
            while sorted[high] - sorted[low] > length { low += 1 }
            worst = max(worst, high - low + 1)
        }
        return worst
    }

    static func keyReport(_ key: LoadPlan.Key, id: String, offered: Double, recorder: KeyRecorder) -> KeyReport {
        let (counts, unsortedSlots, unslotted, latency, failureLog) = recorder.snapshot
        let slots = unsortedSlots.sorted()
        let span = slots.count > 1 ? Double(slots.last! - slots.first!) / 1_000_000 : 0
        let ratePerSecond = Double(key.rate) / key.period
        let windows = windowPeriods.map { periods -> Window in
            let seconds = periods * key.period
            return Window(
                seconds: seconds, maxAdmitted: maxInWindow(slots, length: Int64((seconds * 1_000_000).rounded())),
                allowance: Double(key.burst) + ratePerSecond * seconds)
        }
        let over = windows.map { $0.maxAdmitted - Int(($0.allowance + 1e-9).rounded(.down)) }.max() ?? 0
        let admitted = counts.ok + counts.accepted
        func ms(_ percentile: Double) -> Double { Double(latency.valueAtPercentile(percentile)) / 1000 }
        return KeyReport(
            name: key.name, id: id, overflow: key.overflow, rate: key.rate, period: key.period, burst: key.burst, offeredRate: offered,
            sent: counts.sent, ok: counts.ok, accepted: counts.accepted, tooManyRequests: counts.tooMany,
            serverErrors: counts.serverErrors, otherClientErrors: counts.otherClientErrors, errors: counts.transportErrors,
            retries: counts.retries, admitted: admitted, unslotted: unslotted, spanSeconds: span,
            admittedPerSecond: span > 0 ? Double(admitted) / span : 0,
            allowanceUsed: Double(admitted) / (Double(key.burst) + ratePerSecond * span),
            windows: windows, overAdmission: max(0, over),
            latencyMs: Latency(p50: ms(50), p90: ms(90), p99: ms(99), p99_9: ms(99.9), max: Double(latency.max) / 1000),
            jobsCompleted: counts.jobsCompleted, jobsFailed: counts.jobsFailed, jobsUnfinished: counts.jobsUnfinished,
            polls: counts.polls, failures: counts.serverErrors + counts.transportErrors + counts.jobsFailed + counts.jobsUnfinished,
            failureLog: failureLog, slots: slots, timeline: recorder.timeline)
    }

    /// The report for people: one block per key.
    public var text: String {
        var lines = ["\(mode)-loop load test, \(String(format: "%.1f", durationSeconds)) s\(polite ? ", polite" : "")", ""]
        for key in keys {
            lines.append("key \(key.name) (overflow \(key.overflow)): \(key.rate)/\(key.period)s, burst \(key.burst), offered \(String(format: "%.1f", key.offeredRate))/s")
            lines.append("  sent \(key.sent): 2xx \(key.ok), 202 \(key.accepted), 429 \(key.tooManyRequests), 5xx \(key.serverErrors), other 4xx \(key.otherClientErrors), errors \(key.errors)\(key.retries > 0 ? ", retries \(key.retries)" : "")")
            lines.append(String(
                format: "  admitted %d over %.2f s = %.2f/s (policy %.2f/s); %.1f%% of burst + rate × span", key.admitted, key.spanSeconds,
                key.admittedPerSecond, Double(key.rate) / key.period, key.allowanceUsed * 100))
            let windows = key.windows.map { "\(String(format: "%g", $0.seconds)) s: \($0.maxAdmitted)/\(String(format: "%g", $0.allowance))" }
            lines.append("  max admitted per window (burst + rate × window): " + windows.joined(separator: ", "))
            lines.append(key.overAdmission == 0 && key.unslotted == 0 ? "  limit held: no window over its allowance"
                : "  OVER-ADMISSION: \(key.overAdmission) over the allowance, \(key.unslotted) admitted without a slot")
            lines.append(String(format: "  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f",
                                key.latencyMs.p50, key.latencyMs.p90, key.latencyMs.p99, key.latencyMs.p99_9, key.latencyMs.max))
            if polite && key.accepted > 0 {
                lines.append("  jobs: \(key.jobsCompleted) completed, \(key.jobsFailed) failed, \(key.jobsUnfinished) unfinished (\(key.polls) polls)")
            }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }
}
