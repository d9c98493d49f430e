import Foundation
import HTTPTypes
import SluiceLimiter

/// What a client prefers for a request over its limit (RFC 7240 `Prefer`).
struct DeferralPreferences: Sendable, Equatable {
    /// `respond-async`: queue (answer 202) even when holding the request would do.
    var respondAsync = false
    /// `wait=N`: hold the request at most N seconds; a later slot is queued instead.
    var wait: Int?

    init(respondAsync: Bool = false, wait: Int? = nil) {
        self.respondAsync = respondAsync
        self.wait = wait
    }

    /// Parses every `Prefer` field: comma-separated preferences, parameters after `;` ignored,
    /// names case-insensitive; unknown or malformed preferences are ignored, as RFC 7240 asks.
    init(_ headers: HTTPFields) {
        for field in headers[values: .prefer] {
            for item in field.split(separator: ",") {
                let token = item.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
                if token == "respond-async" { respondAsync = true }
                if token.hasPrefix("wait="), let seconds = Int(token.dropFirst(5)), seconds >= 0 { wait = seconds }
            }
        }
    }
}

/// How a reserved request is served.
enum DeferralPlan: Equatable {
    /// Hold it until its slot, then serve it (`Preference-Applied` when a preference decided so).
    case hold(applied: String?)
    /// Queue it for a worker and answer `202 Accepted`.
    case enqueue(applied: String?)

    /// `delay` keys hold unless the client asked for `respond-async` or a `wait` shorter than the
    /// delay; `queue` keys queue unless the client's `wait` covers the delay.
    static func choose(overflow: KeyPlan.Overflow, preferences: DeferralPreferences, delay: Duration) -> DeferralPlan {
        let waitCovers = preferences.wait.map { delay <= .seconds($0) }
        let waitApplied = preferences.wait.map { "wait=\($0)" }
        switch overflow {
        case .reject, .delay:
            if preferences.respondAsync { return .enqueue(applied: "respond-async") }
            if waitCovers == false { return .enqueue(applied: waitApplied) }
            return .hold(applied: waitApplied)
        case .queue:
            if !preferences.respondAsync, waitCovers == true { return .hold(applied: waitApplied) }
            return .enqueue(applied: preferences.respondAsync ? "respond-async" : nil)
        }
    }
}
