import Foundation
import Hummingbird
import SluiceAuth
import SluiceCore
import SluiceLimiter

/// `GET /v1/usage`: a key's or a tenant's usage per UTC hour or day (scope `admin` or `metrics`):
/// admitted requests and their cost, denied requests by reason, as the limiter and the replicas
/// counted them. Kept 35 days.
struct UsageRoutes {
    let admission: Admission
    let keys: KeyStore
    let tenants: TenantStore
    let reader: UsageReader
    let metrics: ServiceMetrics

    var collection: RouteCollection<SluiceRequestContext> {
        let router = RouteCollection(context: SluiceRequestContext.self)
        router.get("/v1/usage") { request, context in
            try await admission.admit(request, context, scopes: [.admin, .metrics]) { _ in
                let query = try UsageQuery(request.uri.queryParameters)
                var sources: [(key: String, tag: String)] = []
                switch query.subject {
                case .key(let id):
                    guard let record = try await storeCall(context, { try await keys.get(id) }) else { throw Problem.notFound("No such key.") }
                    // Counted under its own id while it has no tenant, under its tenant's tag while it has one.
                    sources.append((record.id, ""))
                    if let tenant = record.tenant { sources.append((TenantRecord.limiterKey(tenant), LimiterCall.usageTags(keyID: id)[0])) }
                case .tenant(let id):
                    guard try await storeCall(context, { try await tenants.get(id) }) != nil else { throw Problem.notFound("No such tenant.") }
                    sources.append((TenantRecord.limiterKey(id), "t"))
                }
                var counts: [Int: [UsageMeter.Count: Int64]] = [:]
                for source in sources {
                    let read = try await storeCall(context) { try await reader.counts(key: source.key, tag: source.tag, hours: query.hours) }
                    counts.merge(read) { $0.merging($1, uniquingKeysWith: +) }
                }
                return try Response.json(UsageView(query, counts: counts))
            }
        }
        return router
    }

    private func storeCall<T>(_ context: SluiceRequestContext, _ call: () async throws -> T) async throws(Problem) -> T {
        try await Problem.storeCall("usage store", metrics: metrics, logger: context.logger, call)
    }
}

/// `?key=…|tenant=…&from=…&to=…&granularity=hour|day`: one subject, a range of whole hours (default
/// the last 24), at most 35 days long.
struct UsageQuery {
    enum Subject {
        case key(String)
        case tenant(String)
    }

    enum Granularity: String {
        case hour, day
    }

    var subject: Subject
    var hours: Range<Int>
    var granularity: Granularity

    init(_ parameters: Hummingbird.Parameters) throws(Problem) {
        let known: Set = ["key", "tenant", "from", "to", "granularity"]
        if let unknown = parameters.first(where: { !known.contains(String($0.key)) }) {
            throw Self.invalid("unknown parameter '\(unknown.key)'; this endpoint takes \(known.sorted().joined(separator: ", "))")
        }
        switch (parameters.get("key"), parameters.get("tenant")) {
        case (let key?, nil):
            guard APIKey.isValidID(key) else { throw Self.invalid("key must be a key id") }
            subject = .key(key)
        case (nil, let tenant?):
            guard TenantRecord.isValidID(tenant) else { throw Self.invalid("tenant must be a tenant id") }
            subject = .tenant(tenant)
        default:
            throw Self.invalid("give key or tenant, one of them")
        }
        let to = try Self.hour(parameters.get("to"), "to", roundingUp: true) ?? Int((Date().timeIntervalSince1970 / 3600).rounded(.up))
        let from = try Self.hour(parameters.get("from"), "from", roundingUp: false) ?? to - 24
        guard from < to, to - from <= 35 * 24 else { throw Self.invalid("from must be before to, at most 35 days before it") }
        hours = from..<to
        guard let granularity = Granularity(rawValue: parameters.get("granularity") ?? "hour") else {
            throw Self.invalid("granularity is hour or day")
        }
        self.granularity = granularity
    }

    /// An RFC 3339 time as hours since the epoch (a range covers whole hours).
    private static func hour(_ text: String?, _ name: String, roundingUp: Bool) throws(Problem) -> Int? {
        guard let text else { return nil }
        guard let date = RFC3339.date(text) else { throw invalid("\(name) must be an RFC 3339 time") }
        let hours = date.timeIntervalSince1970 / 3600
        return Int(roundingUp ? hours.rounded(.up) : hours.rounded(.down))
    }

    static func invalid(_ detail: String) -> Problem {
        Problem(status: .badRequest, type: "/problems/invalid-query", title: "Invalid query", detail: detail)
    }
}

/// What `GET /v1/usage` answers: the range, and a row per hour or day that saw any request.
struct UsageView: Encodable {
    struct Denied: Encodable {
        var rate: Int64 = 0
        var quota: Int64 = 0
        var concurrency: Int64 = 0
        var auth: Int64 = 0
    }

    struct Row: Encodable {
        var start: Date
        var admitted: Int64 = 0
        var admitted_cost: Int64 = 0
        var denied = Denied()

        mutating func add(_ counts: [UsageMeter.Count: Int64]) {
            admitted += counts[.admitted] ?? 0
            admitted_cost += (counts[.admitted] ?? 0) + (counts[.extraCost] ?? 0)
            denied.rate += counts[.rate] ?? 0
            denied.quota += counts[.quota] ?? 0
            denied.concurrency += counts[.concurrency] ?? 0
            denied.auth += counts[.auth] ?? 0
        }
    }

    var key: String?
    var tenant: String?
    var from: Date
    var to: Date
    var granularity: String
    var usage: [Row]
    var total: Row

    init(_ query: UsageQuery, counts: [Int: [UsageMeter.Count: Int64]]) {
        switch query.subject {
        case .key(let id): key = id
        case .tenant(let id): tenant = id
        }
        from = Date(timeIntervalSince1970: Double(query.hours.lowerBound) * 3600)
        to = Date(timeIntervalSince1970: Double(query.hours.upperBound) * 3600)
        granularity = query.granularity.rawValue
        let width = query.granularity == .hour ? 1 : 24
        var rows: [Int: Row] = [:]
        total = Row(start: from)
        for (hour, counts) in counts {
            let bucket = hour - ((hour % width) + width) % width
            rows[bucket, default: Row(start: Date(timeIntervalSince1970: Double(bucket) * 3600))].add(counts)
            total.add(counts)
        }
        usage = rows.keys.sorted().map { rows[$0]! }
    }
}
