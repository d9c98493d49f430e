import Histogram
import Synchronization

/// Everything observed for one key during a run, from many concurrent request tasks.
final class KeyRecorder: Sendable {
    struct Counts: Sendable {
        var sent = 0, ok = 0, accepted = 0, tooMany = 0, serverErrors = 0, otherClientErrors = 0, transportErrors = 0
        var retries = 0
        var jobsCompleted = 0, jobsFailed = 0, jobsUnfinished = 0, polls = 0
    }

    typealias Failure = LoadReport.Failure

    private struct State {
        var counts = Counts()
        /// Admission slots (µs since the epoch, the limiter's clock) from `Sluice-Slot`.
        var slots: [Int64] = []
        var unslotted = 0
        var latency = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var failures: [Failure] = []
        /// Answers per 100 ms of the run (by when the request was sent): 2xx, 202, 429, 5xx.
        var timeline: [Int: LoadReport.Tick] = [:]
    }

    private let state = Mutex(State())

    func update(_ body: (inout Counts) -> Void) {
        state.withLock { body(&$0.counts) }
    }

    /// An answered request: its status, latency (µs) and, when admitted, its slot.
    func record(status: Int, latencyMicros: UInt64, slot: Int64?, at: Double) {
        state.withLock { state in
            state.counts.sent += 1
            _ = state.latency.record(latencyMicros)
            switch status {
            case 200..<300 where status != 202: state.counts.ok += 1
            case 202: state.counts.accepted += 1
            case 429: state.counts.tooMany += 1
            case 500...: state.counts.serverErrors += 1
            default: state.counts.otherClientErrors += 1
            }
            let tick = Int(max(0, at) * 10)
            var counts = state.timeline[tick] ?? LoadReport.Tick(at: Double(tick) / 10)
            switch status {
            case 202: counts.accepted += 1
            case 200..<300: counts.ok += 1
            case 429: counts.tooMany += 1
            case 500...: counts.serverErrors += 1
            default: break
            }
            state.timeline[tick] = counts
            if (200..<300).contains(status) {
                if let slot { state.slots.append(slot) } else { state.unslotted += 1 }
            }
            if status >= 500, state.failures.count < 1000 { state.failures.append(Failure(at: at, what: "HTTP \(status)")) }
        }
    }

    func recordTransportError(_ error: any Error, at: Double) {
        state.withLock { state in
            state.counts.sent += 1
            state.counts.transportErrors += 1
            if state.failures.count < 1000 { state.failures.append(Failure(at: at, what: "\(error)")) }
        }
    }

    var snapshot: (counts: Counts, slots: [Int64], unslotted: Int, latency: Histogram<UInt64>, failures: [Failure]) {
        state.withLock { ($0.counts, $0.slots, $0.unslotted, $0.latency, $0.failures) }
    }

    /// The answers per 100 ms, in time order.
    var timeline: [LoadReport.Tick] {
        state.withLock { $0.timeline.values.sorted { $0.at < $1.at } }
    }
}
