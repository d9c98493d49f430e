import Foundation
import NIOHTTP1
import SluiceCore
import Synchronization

/// Drives a running Sluice deployment with several keys at once and reports, per key, whether
/// the global limit held: `sluice loadtest`.
///
/// Admissions are judged by their slots on the limiter's own clock (`Sluice-Slot`, µs since the
/// epoch on Redis' clock), not by when answers arrived: network jitter between replicas must not
/// look like, or hide, an over-admission.
public struct LoadGenerator: Sendable {
    public let plan: LoadPlan
    private let client: HTTPClientPool
    private let progress: @Sendable (String) -> Void

    /// `progress` receives one line per second while the test runs.
    public init(plan: LoadPlan, progress: @escaping @Sendable (String) -> Void) {
        self.plan = plan
        self.client = HTTPClientPool(host: plan.host, port: plan.port, tls: plan.tls)
        self.progress = progress
    }

    static let predictBody = Array(#"{"features":{"sepal_length":5.1,"sepal_width":3.5,"petal_length":1.4,"petal_width":0.2}}"#.utf8)

    private struct Driven: Sendable {
        var key: LoadPlan.Key
        var secret: String
        var id: String
        var recorder = KeyRecorder()
    }

    public func run() async throws -> LoadReport {
        defer { client.close() }
        var driven: [Driven] = []
        for key in plan.keys { driven.append(try await create(key)) }
        let start = ContinuousClock.now
        let stopSending = start + plan.duration
        let context = RunContext(start: start, stopSending: stopSending, maximumRequests: plan.maximumRequests ?? .max)

        let recorders = driven.map(\.recorder)
        let reporter = Task {
            var second = 1
            while !Task.isCancelled {
                try? await Task.sleep(until: start + .seconds(second), clock: .continuous)
                if Task.isCancelled { break }
                progress(Self.progressLine(second: second, recorders))
                second += 1
            }
        }
        let targets = driven
        await withTaskGroup(of: Void.self) { group in
            for target in targets {
                group.addTask { await self.drive(target, context) }
            }
        }
        reporter.cancel()
        let elapsed = (ContinuousClock.now - start)
        for target in driven { _ = try? await client.send(.init(method: .DELETE, path: "/v1/keys/\(target.id)", headers: adminHeaders)) }
        return LoadReport(
            mode: plan.mode.rawValue, polite: plan.polite, durationSeconds: elapsed.seconds,
            keys: driven.map { LoadReport.keyReport($0.key, id: $0.id, offered: plan.offeredRate(of: $0.key), recorder: $0.recorder) })
    }

    private final class RunContext: Sendable {
        let start: ContinuousClock.Instant
        let stopSending: ContinuousClock.Instant
        let budget: Atomic<Int>

        init(start: ContinuousClock.Instant, stopSending: ContinuousClock.Instant, maximumRequests: Int) {
            self.start = start
            self.stopSending = stopSending
            self.budget = Atomic(maximumRequests)
        }

        /// Takes one request from the budget; false once it is spent or sending time is over.
        func take() -> Bool {
            ContinuousClock.now < stopSending && budget.subtract(1, ordering: .relaxed).newValue >= 0
        }

        func offset(_ instant: ContinuousClock.Instant) -> Double { (instant - start).seconds }
    }

    private var adminHeaders: [(String, String)] { [("Authorization", "Bearer \(plan.adminKey)"), ("Content-Type", "application/json")] }

    /// Creates one key through the admin API; a 429 (the admin key's own limit, when many keys are
    /// created at once) is retried after its Retry-After, five times at most.
    private func create(_ key: LoadPlan.Key) async throws -> Driven {
        var response: HTTPClientPool.Response
        var attempts = 0
        repeat {
            do {
                response = try await client.send(.init(method: .POST, path: "/v1/keys", headers: adminHeaders, body: Array(key.creationBody.utf8)))
            } catch {
                throw LoadError.setup("cannot reach http://\(plan.host):\(plan.port): \(error)")
            }
            attempts += 1
            guard response.status == 429, attempts < 5 else { break }
            let wait = response.headers["retry-after"].first.flatMap(Double.init) ?? 1
            try await Task.sleep(for: .seconds(min(max(wait, 0.1), 10)))
        } while true
        guard response.status == 201, let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
            let secret = json["key"] as? String, let id = json["id"] as? String
        else {
            throw LoadError.setup("creating key \(key.name) answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        return Driven(key: key, secret: secret, id: id)
    }

    /// Open loop: arrivals on a fixed schedule; closed loop: `connections` back-to-back senders.
    private func drive(_ target: Driven, _ context: RunContext) async {
        await withTaskGroup(of: Void.self) { group in
            switch plan.mode {
            case .open:
                let interval = Duration.seconds(1 / plan.offeredRate(of: target.key))
                var next = context.start
                while context.take() {
                    try? await Task.sleep(until: next, clock: .continuous)
                    group.addTask { await self.journey(target, context) }
                    next += interval
                }
            case .closed:
                for _ in 0..<plan.connections {
                    group.addTask { while context.take() { await self.journey(target, context) } }
                }
            }
        }
    }

    /// One request: sent, answered, and — when polite — retried after a 429 or followed to its
    /// job's result after a 202.
    private func journey(_ target: Driven, _ context: RunContext) async {
        let request = HTTPClientPool.Request(
            method: .POST, path: "/v1/predict",
            headers: [("Authorization", "Bearer \(target.secret)"), ("Content-Type", "application/json")], body: Self.predictBody)
        var retries = 0
        while true {
            let sentAt = ContinuousClock.now
            let response: HTTPClientPool.Response
            do {
                response = try await client.send(request)
            } catch {
                target.recorder.recordTransportError(error, at: context.offset(sentAt))
                return
            }
            let latency = UInt64(max(0, (ContinuousClock.now - sentAt).microseconds))
            let slot = response.headers.first(name: "Sluice-Slot").flatMap(Self.microseconds)
            target.recorder.record(status: response.status, latencyMicros: latency, slot: slot, at: context.offset(sentAt))
            guard plan.polite else { return }
            if response.status == 202, let location = response.headers.first(name: "Location") {
                await follow(location, target, firstWait: Self.retryAfter(response), deadline: context.stopSending + .seconds(target.key.horizon + 15))
                return
            }
            guard response.status == 429, retries < 2 else { return }
            let wait = Self.retryAfter(response)
            guard ContinuousClock.now + wait < context.stopSending else { return }
            try? await Task.sleep(for: wait)
            retries += 1
            target.recorder.update { $0.retries += 1 }
        }
    }

    /// Polls a queued job, honouring `Retry-After`, until it finished or the deadline passed.
    private func follow(_ location: String, _ target: Driven, firstWait: Duration, deadline: ContinuousClock.Instant) async {
        let poll = HTTPClientPool.Request(method: .GET, path: location, headers: [("Authorization", "Bearer \(target.secret)")])
        var wait = firstWait
        while ContinuousClock.now + wait < deadline {
            try? await Task.sleep(for: wait)
            target.recorder.update { $0.polls += 1 }
            guard let response = try? await client.send(poll) else {
                wait = .seconds(1)
                continue
            }
            switch response.status {
            case 200:
                let json = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
                let succeeded = json?["status"] as? String == "succeeded"
                target.recorder.update { succeeded ? ($0.jobsCompleted += 1) : ($0.jobsFailed += 1) }
                return
            case 202, 429, 503:
                wait = Self.retryAfter(response)
            default:
                target.recorder.update { $0.jobsFailed += 1 }
                return
            }
        }
        target.recorder.update { $0.jobsUnfinished += 1 }
    }

    static func progressLine(second: Int, _ recorders: [KeyRecorder]) -> String {
        var total = KeyRecorder.Counts()
        for recorder in recorders {
            let counts = recorder.snapshot.counts
            total.sent += counts.sent
            total.ok += counts.ok
            total.accepted += counts.accepted
            total.tooMany += counts.tooMany
            total.serverErrors += counts.serverErrors
            total.transportErrors += counts.transportErrors
            total.jobsCompleted += counts.jobsCompleted
        }
        return "[\(String(format: "%3d", second))s] sent \(total.sent)  2xx \(total.ok)  202 \(total.accepted)  429 \(total.tooMany)"
            + "  5xx \(total.serverErrors)  errors \(total.transportErrors)  jobs done \(total.jobsCompleted)"
    }

    /// `Retry-After` in seconds (default 1).
    static func retryAfter(_ response: HTTPClientPool.Response) -> Duration {
        .seconds(Int(response.headers.first(name: "Retry-After") ?? "") ?? 1)
    }

    /// `"1795219812.123456"` → microseconds.
    static func microseconds(_ text: String) -> Int64? {
        let parts = text.split(separator: ".", maxSplits: 1)
        guard let seconds = parts.first.flatMap({ Int64($0) }) else { return nil }
        let fraction = parts.count > 1 ? String(parts[1].prefix(6)) : ""
        guard let micros = Int64(fraction.padding(toLength: 6, withPad: "0", startingAt: 0)) else { return nil }
        return seconds * 1_000_000 + micros
    }
}
