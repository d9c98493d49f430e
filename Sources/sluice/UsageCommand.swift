import ArgumentParser
import Foundation

/// `sluice usage`: a key's or a tenant's usage per hour or day, as a table, JSON or CSV (billing).
struct UsageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "Show a key's or a tenant's usage per UTC hour or day: admitted requests and cost, denied by reason.",
        discussion: "Exit status: 0 done, 1 refused by the API, 2 bad usage, 3 API unreachable. The key needs scope admin or metrics."
    )

    @OptionGroup var api: AdminAPIOptions
    @Option(help: "The key's id.") var key: String?
    @Option(help: "The tenant's id.") var tenant: String?
    @Option(help: "RFC 3339 start (default: 24 hours before --to).") var from: String?
    @Option(help: "RFC 3339 end (default: now).") var to: String?
    @Option(help: "hour or day.") var granularity = "hour"
    @Flag(help: "Print CSV (one row per hour or day, for billing) instead of a table.") var csv = false

    /// The columns of the table and the CSV, in order.
    static let columns = ["start", "admitted", "admitted_cost", "denied_rate", "denied_quota", "denied_concurrency", "denied_auth"]

    func run() async throws {
        try await runAdmin(api) { client throws(AdminCommandError) in
            var query: [String] = []
            switch (key, tenant) {
            case (let key?, nil): query.append("key=\(try KeysCommand.checked(key))")
            case (nil, let tenant?): query.append("tenant=\(try TenantsCommand.checked(tenant))")
            default: throw .usage("give --key or --tenant, one of them")
            }
            guard ["hour", "day"].contains(granularity) else { throw .usage("--granularity is hour or day") }
            query.append("granularity=\(granularity)")
            for (name, value) in [("from", from), ("to", to)] {
                guard let value else { continue }
                guard value.allSatisfy({ $0.isLetter || $0.isNumber || ":-.".contains($0) }) else { throw .usage("--\(name) must be an RFC 3339 time, as 2026-12-04T00:00:00Z") }
                query.append("\(name)=\(value)")
            }
            let answer = try await client.call(.GET, "/v1/usage?" + query.joined(separator: "&")) as? [String: Any] ?? [:]
            if api.json { return printJSON(answer) }
            let rows = (answer["usage"] as? [[String: Any]] ?? []).map(Self.row)
            if csv {
                print(Self.columns.joined(separator: ","))
                for row in rows { print(row.joined(separator: ",")) }
                return
            }
            var total = Self.row(answer["total"] as? [String: Any] ?? [:])
            total[0] = "total"
            printTable(Self.columns.map { $0.uppercased().replacingOccurrences(of: "_", with: " ") }, rows + [total])
        }
    }

    /// One usage row as the columns' texts.
    static func row(_ usage: [String: Any]) -> [String] {
        let denied = usage["denied"] as? [String: Any] ?? [:]
        let number = { (value: Any?) in (value as? Int).map(String.init) ?? "0" }
        return [usage["start"] as? String ?? "", number(usage["admitted"]), number(usage["admitted_cost"]), number(denied["rate"]),
                number(denied["quota"]), number(denied["concurrency"]), number(denied["auth"])]
    }
}
