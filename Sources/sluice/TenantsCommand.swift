import ArgumentParser
import Foundation
import SluiceAuth

/// `sluice tenants`: manage tenants (customers whose keys share budgets) through the admin API.
struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants",
        abstract: "Create, list, show, update and delete tenants: budgets a customer's keys share.",
        discussion: "Exit status: 0 done, 1 refused by the API, 2 bad usage, 3 API unreachable.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Delete.self]
    )

    /// A tenant's settings as options; only those given are sent.
    struct Settings: ParsableArguments {
        @Option(help: "The tenant's name.") var name: String?
        @Option(name: .customLong("policy"), help: "A policy its keys share (repeatable): NAME:rate=R,period=SECONDS,burst=B.")
        var policies: [String] = []
        @Option(help: "Requests per rolling day its keys share.") var quotaPerDay: Int?

        func fields() throws(AdminCommandError) -> [String: Any] {
            var fields: [String: Any] = [:]
            if let name { fields["name"] = name }
            if !policies.isEmpty { fields["policies"] = try policies.map { spec throws(AdminCommandError) in try KeysCommand.Settings.policy(spec) } }
            if let quotaPerDay { fields["quota_per_day"] = quotaPerDay }
            return fields
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a tenant; give its keys --tenant <id> (sluice keys create|update).")
        @OptionGroup var api: AdminAPIOptions
        @OptionGroup var settings: Settings

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let fields = try settings.fields()
                guard fields["name"] != nil else { throw .usage("create needs --name, and --policy or --quota-per-day") }
                let tenant = try await client.call(.POST, "/v1/tenants", json: fields) as? [String: Any] ?? [:]
                if api.json { return printJSON(tenant) }
                TenantsCommand.printTenants([tenant])
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every tenant.")
        @OptionGroup var api: AdminAPIOptions

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let answer = try await client.call(.GET, "/v1/tenants") as? [String: Any]
                if api.json { return printJSON(answer) }
                TenantsCommand.printTenants(answer?["tenants"] as? [[String: Any]] ?? [])
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one tenant and the ids of its keys.")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "The tenant's id.") var id: String

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let tenant = try await client.call(.GET, "/v1/tenants/\(try TenantsCommand.checked(id))") as? [String: Any] ?? [:]
                if api.json { return printJSON(tenant) }
                KeysCommand.printDetail(tenant)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change a tenant in place (PATCH): its keys and limiter state stay.")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "The tenant's id.") var id: String
        @OptionGroup var settings: Settings

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let fields = try settings.fields()
                guard !fields.isEmpty else { throw .usage("update needs at least one setting to change") }
                let tenant = try await client.call(.PATCH, "/v1/tenants/\(try TenantsCommand.checked(id))", json: fields) as? [String: Any] ?? [:]
                if api.json { return printJSON(tenant) }
                KeysCommand.printDetail(tenant)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a tenant: refused while it has keys, unless --cascade revokes them.")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "The tenant's id.") var id: String
        @Flag(help: "Revoke the tenant's keys too.") var cascade = false

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                _ = try await client.call(.DELETE, "/v1/tenants/\(try TenantsCommand.checked(id))" + (cascade ? "?cascade=true" : ""))
                if api.json { return printJSON(["deleted": id]) }
                print("deleted \(id)")
            }
        }
    }

    /// A tenant id as the API takes it (so that nothing else ends up in the path).
    static func checked(_ id: String) throws(AdminCommandError) -> String {
        guard TenantRecord.isValidID(id) else {
            throw .usage("\(id) is not a tenant id (tn and 16 hex digits)")
        }
        return id
    }

    static func printTenants(_ tenants: [[String: Any]]) {
        printTable(["ID", "NAME", "POLICIES", "QUOTA/DAY"], tenants.map { tenant in
            [tenant["id"] as? String ?? "", tenant["name"] as? String ?? "", KeysCommand.policies(tenant),
             (tenant["quota_per_day"] as? Int).map(String.init) ?? "-"]
        })
    }
}
