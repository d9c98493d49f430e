import Foundation

/// The endpoint × scope matrix: every endpoint that needs a key and the scopes allowed on it.
public struct ScopedEndpoint: CustomStringConvertible, Sendable {
    public var method: String
    public var path: String
    public var allowed: Set<String>
    public var contentType = "application/json"
    public var body = ""
    /// What an allowed key gets: 2xx, except where the resource is the key's own and it has none.
    public var allowedStatuses = 200..<300
    public var description: String { "\(method) \(path)" }

    /// Every endpoint that needs a key, with the scopes allowed on it; `victim` is a key id the
    /// key endpoints act on.
    public static func all(victim: String) throws -> [ScopedEndpoint] {
        [
            ScopedEndpoint(method: "POST", path: "/v1/predict", allowed: ["predict"], body: Cluster.setosa),
            ScopedEndpoint(method: "GET", path: "/v1/models", allowed: ["train", "admin"]),
            ScopedEndpoint(method: "GET", path: "/v1/models/1", allowed: ["train", "admin"]),
            ScopedEndpoint(method: "POST", path: "/v1/models", allowed: ["train"], contentType: "text/csv", body: try Cluster.irisCSV()),
            ScopedEndpoint(method: "POST", path: "/v1/models/1/activate", allowed: ["admin"]),
            ScopedEndpoint(method: "POST", path: "/v1/keys", allowed: ["admin"], body: #"{"name":"x","scopes":["predict"]}"#),
            ScopedEndpoint(method: "GET", path: "/v1/keys", allowed: ["admin"]),
            ScopedEndpoint(method: "GET", path: "/v1/keys/\(victim)", allowed: ["admin"]),
            ScopedEndpoint(method: "POST", path: "/v1/keys/\(victim)/rotate", allowed: ["admin"]),
            ScopedEndpoint(method: "DELETE", path: "/v1/keys/\(victim)", allowed: ["admin"]),
            ScopedEndpoint(method: "GET", path: "/metrics", allowed: ["metrics"]),
            // Past the scope check a job that is not the key's own is 404 (DeferralTests reads real ones).
            ScopedEndpoint(method: "GET", path: "/v1/jobs/\(String(repeating: "a", count: 32))", allowed: ["predict"], allowedStatuses: 404..<405),
        ]
    }
}
