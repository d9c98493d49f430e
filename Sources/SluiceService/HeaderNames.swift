import HTTPTypes

/// Every header field Sluice names that HTTPTypes does not: one place to read them all.
extension HTTPField.Name {
    static let apiKey = Self("X-API-Key")!
    static let forwardedFor = Self("X-Forwarded-For")!
    /// draft-ietf-httpapi-ratelimit-headers-10.
    static let rateLimit = Self("RateLimit")!
    static let rateLimitPolicy = Self("RateLimit-Policy")!
    /// RFC 7240.
    static let prefer = Self("Prefer")!
    static let preferenceApplied = Self("Preference-Applied")!
    /// draft-ietf-httpapi-idempotency-key-header.
    static let idempotencyKey = Self("Idempotency-Key")!
    /// On an answer sent again for a repeated `Idempotency-Key` (as Stripe names it).
    static let idempotentReplayed = Self("Idempotent-Replayed")!
    /// Seconds a request was held before it was served.
    static let sluiceDelay = Self("Sluice-Delay")!
    /// The admitted request's slot on the limiter's clock.
    static let sluiceSlot = Self("Sluice-Slot")!
    /// `local` on answers decided by the replica alone while Redis is unreachable (degraded mode).
    static let sluiceDegraded = Self("Sluice-Degraded")!
}

extension HTTPFields {
    /// `self[name]` for the hot path: a field that occurs once (the usual case) is returned as it
    /// is, without HTTPTypes' generic join of all its values (runtime generic metadata on every
    /// lookup); a repeated one is still joined, so `self[name]`'s meaning is kept.
    func value(_ name: HTTPField.Name) -> String? {
        guard let first = firstIndex(where: { $0.name == name }) else { return nil }
        if self[index(after: first)...].contains(where: { $0.name == name }) { return self[name] }
        return self[first].value
    }
}
