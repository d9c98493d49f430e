import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SluiceAuth
import SluiceCore
import SluiceLimiter

/// Who is calling: the presented key, the client's address, the key's record.
extension Admission {
    /// The key's record; failures are `401` (or `429` for a client that keeps failing, `503`
    /// when keys cannot be checked).
    func authenticate(_ request: Request, context: SluiceRequestContext) async throws -> KeyRecord {
        try await authenticate(request, presented: Self.presentedKey(request.headers), context: context)
    }

    /// With `cached`, what ``KeyAuthenticator/cachedAnswer(_:at:)`` already said of `presented`
    /// (a refusal, say): not worked out a second time.
    func authenticate(
        _ request: Request, presented: String?, cached: Result<KeyRecord, AuthenticationError>? = nil, context: SluiceRequestContext
    ) async throws -> KeyRecord {
        // Degraded mode: a key served while Redis fails, known to this replica, waits for no
        // Redis call. Every other key still asks Redis: with Redis Cluster the breaker may have
        // opened for one failed node while the others serve their keys as usual.
        if limits.breaker.isOpen, let record = authenticator.lastKnownRecord(presented) { return record }
        // An address the failed-authentication limiter is provably refusing gets no lookup of
        // an id that does not exist: its made-up keys cost no Redis call (neither a lookup nor
        // the limiter), while real keys from the same address (behind one NAT) still work.
        // Asked only when a lookup is due: a cached key costs neither the address nor the check.
        // (Asked again after a failure rather than remembered from the closure: a variable the
        // closure set would be boxed on the heap for every request, cached keys included.)
        var clientKey: String { "client-\(clientAddress(request, context: context))" }
        do {
            if let cached { return try cached.get() }
            return try await authenticator.authenticate(presented) {
                limits.limiter.provenDenial(key: clientKey, policies: [limits.failedAuthPolicy]) != nil
            }
        } catch {
            if case .unavailable(let cause) = error {
                if let redis = cause.redisCause { limits.breaker.record(redis) }
                if let record = authenticator.lastKnownRecord(presented) { return record }
                throw Problem.storeFailure("key store", cause: cause, metrics: metrics, logger: context.logger)
            }
            metrics.authFailures.increment()
            // A real key with a wrong or outdated secret, or expired, counts against its usage; a
            // made-up id writes nothing (no Redis hash per guess).
            if let id = presented.flatMap(APIKey.init)?.id, let known = authenticator.knownRecord(id: id) { countDenial(.auth, of: known) }
            let decision: Decision
            let client = clientKey
            if let throttled = limits.limiter.provenDenial(key: client, policies: [limits.failedAuthPolicy]) {
                metrics.recordDecision(throttled, duration: .zero)
                decision = throttled
            } else {
                decision = try await askLimiter(LimiterCall(key: client, policies: [limits.failedAuthPolicy]), cost: 1, logger: context.logger)
            }
            if !decision.isAllowed {
                throw Self.rateLimited(decision, detail: "Too many failed authentication attempts from this address.")
            }
            var problem = Problem.unauthorized(error.description, invalidToken: presented != nil)
            // Not Sluice-Slot: Redis' clock to the µs is nothing to hand an unauthenticated client.
            problem.headers.append(contentsOf: Self.headers(for: decision, slot: false))
            throw problem
        }
    }

    /// `Authorization: Bearer <key>`, else `X-API-Key: <key>`.
    /// Byte-level on purpose: this runs on every request.
    static func presentedKey(_ headers: HTTPFields) -> String? {
        if let authorization = headers.value(.authorization) {
            let bytes = authorization.utf8
            // Case-insensitive "bearer ", compared in place (no array of its own).
            guard bytes.count > 7, zip(bytes, "bearer ".utf8).allSatisfy({ $0 | 0x20 == $1 }) else {
                return ""  // some other scheme: present but unusable
            }
            return trimmedSpaces(authorization.utf8.dropFirst(7))
        }
        return headers.value(.apiKey).map { trimmedSpaces($0.utf8[...]) }
    }

    private static func trimmedSpaces(_ text: Substring.UTF8View) -> String {
        func isSpace(_ byte: UInt8) -> Bool { byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var start = text.startIndex
        var end = text.endIndex
        while start < end, isSpace(text[start]) { start = text.index(after: start) }
        while end > start, isSpace(text[text.index(before: end)]) { end = text.index(before: end) }
        return String(Substring(text[start..<end]))
    }

    /// The peer address, or — only when the peer is a trusted proxy — the last address in
    /// `X-Forwarded-For` that is not itself a trusted proxy.
    func clientAddress(_ request: Request, context: SluiceRequestContext) -> String {
        Self.clientAddress(peer: context.remoteAddress?.ipAddress ?? "unknown", forwardedFor: request.headers.value(.forwardedFor), trusting: trustedProxies)
    }

    /// ``clientAddress(_:context:)`` on plain values (fuzzed on its own).
    static func clientAddress(peer: String, forwardedFor: String?, trusting trustedProxies: TrustedProxies) -> String {
        guard trustedProxies.contains(peer), let forwarded = forwardedFor else { return sanitized(peer) }
        let hops = forwarded.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let client = hops.last { !trustedProxies.contains($0) } ?? peer
        return sanitized(client)
    }

    /// Keeps an address usable as a limiter key whatever a header contained.
    private static func sanitized(_ address: String) -> String {
        let allowed = address.unicodeScalars.filter { $0.properties.isASCIIHexDigit || $0 == "." || $0 == ":" }
        return String(String.UnicodeScalarView(allowed.prefix(45)))
    }
}
