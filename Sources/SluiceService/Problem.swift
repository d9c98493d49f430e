import Foundation
import HTTPTypes
import Hummingbird
import SluiceCore

/// An error as the client sees it: RFC 9457 `application/problem+json`.
///
/// `type` is a relative URI naming the kind of problem (documented in `openapi.yaml`); `errors`
/// points at each bad field of a request body with a JSON Pointer (RFC 6901).
public struct Problem: HTTPResponseError, Sendable {
    public struct FieldError: Sendable, Encodable, Equatable {
        public var pointer: String
        public var detail: String
    }

    public var status: HTTPResponse.Status
    public var type: String
    public var title: String
    public var detail: String
    public var errors: [FieldError] = []
    /// The rate-limit policy that denied the request.
    public var policy: String?
    /// `violated-policies` of the `quota-exceeded` problem type: every policy that denied it.
    public var violatedPolicies: [String]?
    /// Seconds until the request may be retried (429 and 503), as in `Retry-After`.
    public var retryAfter: Int?
    public var headers: HTTPFields = [:]

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let (headers, body) = answer(instance: request.uri.path)
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// The answer's fields and body, about a request to `instance` (its path).
    func answer(instance: String) -> (headers: HTTPFields, body: ByteBuffer) {
        let body = ProblemBody(
            type: type, title: title, status: status.code, detail: detail, instance: instance,
            errors: errors.isEmpty ? nil : errors, policy: policy, retry_after: retryAfter, violated_policies: violatedPolicies
        )
        var headers = self.headers
        headers.reserveCapacity(headers.count + 2)
        headers[.contentType] = "application/problem+json"
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return (headers, ByteBuffer(string: body.json))
    }

    /// The body alone, for the connection-level handlers that answer before Hummingbird has a
    /// request (a read timeout, a refused head): the same encoding as every other problem.
    var encodedBody: [UInt8] {
        Array(ProblemBody(type: type, title: title, status: status.code, detail: detail).json.utf8)
    }

    /// Written by hand (every 429 of a flood is one): the fields in sorted order, as
    /// `JSONEncoder.sluice` writes them.
    struct ProblemBody {
        var type: String, title: String, status: Int, detail: String
        var instance: String?
        var errors: [FieldError]?
        var policy: String?
        var retry_after: Int?
        var violated_policies: [String]?

        var json: String {
            var json = ""
            json.reserveCapacity(
                128 + detail.utf8.count + title.utf8.count + type.utf8.count + (instance?.utf8.count ?? 0) + (policy?.utf8.count ?? 0)
                    + 64 * (errors?.count ?? 0) + 32 * (violated_policies?.count ?? 0))
            json += "{\"detail\":"
            JSONText.appendQuoted(detail, to: &json)
            if let errors {
                json += ",\"errors\":["
                for (index, error) in errors.enumerated() {
                    json += index == 0 ? "{\"detail\":" : ",{\"detail\":"
                    JSONText.appendQuoted(error.detail, to: &json)
                    json += ",\"pointer\":"
                    JSONText.appendQuoted(error.pointer, to: &json)
                    json += "}"
                }
                json += "]"
            }
            if let instance {
                json += ",\"instance\":"
                JSONText.appendQuoted(instance, to: &json)
            }
            if let policy {
                json += ",\"policy\":"
                JSONText.appendQuoted(policy, to: &json)
            }
            if let retry_after {
                json += ",\"retry_after\":"
                json += String(retry_after)
            }
            json += ",\"status\":"
            json += String(status)
            json += ",\"title\":"
            JSONText.appendQuoted(title, to: &json)
            json += ",\"type\":"
            JSONText.appendQuoted(type, to: &json)
            if let violated_policies {
                json += ",\"violated-policies\":["
                for (index, name) in violated_policies.enumerated() {
                    if index > 0 { json += "," }
                    JSONText.appendQuoted(name, to: &json)
                }
                json += "]"
            }
            json += "}"
            return json
        }
    }

    // MARK: - The kinds of problem

    static func malformedJSON(_ detail: String) -> Problem {
        Problem(status: .badRequest, type: "/problems/malformed-json", title: "Malformed JSON", detail: detail)
    }

    static func invalid(_ errors: [FieldError], detail: String = "The request body has invalid fields; see errors.") -> Problem {
        Problem(status: .unprocessableContent, type: "/problems/invalid-input", title: "Invalid input", detail: detail, errors: errors)
    }

    static func unsupportedMediaType(_ accepted: [String]) -> Problem {
        Problem(
            status: .unsupportedMediaType, type: "/problems/unsupported-media-type", title: "Unsupported media type",
            detail: "Send the body as \(accepted.joined(separator: " or ")).")
    }

    /// The client went away before its body arrived in full. Nobody reads the answer; 499 (as
    /// nginx logs it) keeps such requests apart from real errors in the access log and metrics.
    static let clientClosedRequest = Problem(
        status: .init(code: 499, reasonPhrase: "Client Closed Request"), type: "/problems/client-closed-request",
        title: "Client closed request", detail: "The connection closed before the request body arrived in full.")

    static func tooLarge(limit: Int) -> Problem {
        Problem(status: .contentTooLarge, type: "/problems/body-too-large", title: "Request body too large",
                detail: "The body exceeds \(limit) bytes.")
    }

    static func unauthorized(_ detail: String, invalidToken: Bool) -> Problem {
        var problem = Problem(status: .unauthorized, type: "/problems/unauthorized", title: "Unauthorized", detail: detail)
        problem.headers[.wwwAuthenticate] = invalidToken ? #"Bearer realm="sluice", error="invalid_token""# : #"Bearer realm="sluice""#
        return problem
    }

    /// `scopes`: any one of them would do. RFC 6750 wants them space-separated in `scope`.
    static func forbidden(missing scopes: [String]) -> Problem {
        let named = scopes.map { "'\($0)'" }.joined(separator: " or ")
        var problem = Problem(status: .forbidden, type: "/problems/insufficient-scope", title: "Insufficient scope",
                              detail: "This endpoint needs a key with the \(named) scope.")
        problem.headers[.wwwAuthenticate] = #"Bearer realm="sluice", error="insufficient_scope", scope="\#(scopes.joined(separator: " "))""#
        return problem
    }

    static func notFound(_ detail: String) -> Problem {
        Problem(status: .notFound, type: "/problems/not-found", title: "Not found", detail: detail)
    }

    /// The path exists, the method does not: `Allow` lists the methods that do.
    static func methodNotAllowed(allowed: [String]) -> Problem {
        var problem = Problem(
            status: .methodNotAllowed, type: "/problems/method-not-allowed", title: "Method not allowed",
            detail: "This resource answers \(allowed.joined(separator: ", ")).")
        problem.headers[.allow] = allowed.joined(separator: ", ")
        return problem
    }

    static let invalidIdempotencyKey = Problem(
        status: .badRequest, type: "/problems/invalid-idempotency-key", title: "Invalid Idempotency-Key",
        detail: "Idempotency-Key must be 1–255 printable ASCII characters, optionally in double quotes.")

    /// draft-ietf-httpapi-idempotency-key-header §2.7: the first request is still being served.
    static let idempotencyKeyInProgress = Problem(
        status: .conflict, type: "/problems/idempotency-key-in-progress", title: "Request in progress",
        detail: "A request with this Idempotency-Key is still being served; retry shortly for its answer.", retryAfter: 1)

    /// draft-ietf-httpapi-idempotency-key-header §2.7: the key was used for another request.
    static let idempotencyKeyReused = Problem(
        status: .unprocessableContent, type: "/problems/idempotency-key-reused", title: "Idempotency-Key reused",
        detail: "This Idempotency-Key was used for a different request; use a new key for a new request.")

    static func conflict(_ detail: String) -> Problem {
        Problem(status: .conflict, type: "/problems/conflict", title: "Conflict", detail: detail)
    }

    /// Another upload is being trained on this replica (one at a time); retry in a second.
    static let trainingBusy = Problem(
        status: .tooManyRequests, type: "/problems/training-busy", title: "Training in progress",
        detail: "This replica is training another upload; retry shortly.", retryAfter: 1)

    /// Fail-secure: without Redis there is no limiter decision and no verified model, so no service.
    static func unavailable(_ detail: String) -> Problem {
        Problem(status: .serviceUnavailable, type: "/problems/unavailable", title: "Service unavailable",
                detail: detail, retryAfter: 1)
    }
}
