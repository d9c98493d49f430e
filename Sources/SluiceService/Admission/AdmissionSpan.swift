import SluiceCore
import SluiceLimiter
import Tracing

/// What the `admission` span of a traced request says: the decision (`allowed`, `deferred`,
/// `denied`), the deciding policy and who decided (`redis`, `local-denial`, `degraded`).
/// Written only when the span records, so untraced requests build none of it.
extension Admission {
    static func describe(_ decision: Decision, in span: any Span) {
        span.attributes["sluice.decision"] = decision.delay > .zero ? "deferred" : "allowed"
        span.attributes["sluice.policy"] = decision.policy.name
        span.attributes["sluice.limiter"] = switch decision.origin {
        case .redis: "redis"
        case .localDenial: "local-denial"
        case .degraded: "degraded"
        }
        if decision.delay > .zero { span.attributes["sluice.delay_ms"] = Int(decision.delay.seconds * 1000) }
    }

    static func describe(_ refusal: Problem, in span: any Span) {
        span.attributes["sluice.decision"] = "denied"
        span.attributes["http.response.status_code"] = Int(refusal.status.code)
        if let policy = refusal.policy { span.attributes["sluice.policy"] = policy }
    }
}
