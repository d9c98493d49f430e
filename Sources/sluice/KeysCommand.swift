import ArgumentParser
import Foundation
import SluiceLimiter

/// `sluice keys`: manage API keys through the admin API (no curl, no pasted JSON).
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Create, list, show, update, rotate and revoke API keys through the admin API.",
        discussion: "Exit status: 0 done, 1 refused by the API, 2 bad usage, 3 API unreachable.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Rotate.self, Revoke.self]
    )

    /// A key's settings as options; only those given are sent.
    struct Settings: ParsableArguments {
        @Option(help: "The key's name.")
        var name: String?

        @Option(name: .customLong("scope"), help: "A scope (repeatable): predict, train, admin, metrics.")
        var scopes: [String] = []

        @Option(name: .customLong("policy"), help: "A policy (repeatable): NAME:rate=R,period=SECONDS,burst=B (period default 1, burst default rate).")
        var policies: [String] = []

        @Option(help: ArgumentHelp(KeySetting.quotaPerDay.help))
        var quotaPerDay: Int?

        @Option(help: ArgumentHelp(KeySetting.overflow.help))
        var overflow: String?

        @Option(help: ArgumentHelp(KeySetting.maxDelay.help))
        var maxDelay: Double?

        @Option(help: ArgumentHelp(KeySetting.maxQueueDelay.help))
        var maxQueueDelay: Double?

        @Option(help: ArgumentHelp(KeySetting.maxDepth.help))
        var maxDepth: Int?

        @Option(help: "probabilities, rounded or label.")
        var output: String?

        @Option(help: ArgumentHelp(KeySetting.onRedisFailure.help))
        var onRedisFailure: String?

        @Option(help: ArgumentHelp(KeySetting.retryAfterJitter.help))
        var retryAfterJitter: Double?

        @Option(help: ArgumentHelp(KeySetting.maxInFlight.help))
        var maxInFlight: Int?

        @Option(help: "RFC 3339 time the key stops working.")
        var expiresAt: String?

        @Option(help: "The tenant whose budgets the key shares (`sluice tenants`); \"\" takes it out of its tenant.")
        var tenant: String?

        /// The JSON fields given, checked locally only for shape (the API checks the rest).
        func fields() throws(AdminCommandError) -> [String: Any] {
            var fields: [String: Any] = [:]
            if let name { fields["name"] = name }
            if !scopes.isEmpty { fields["scopes"] = scopes }
            if !policies.isEmpty { fields["policies"] = try policies.map { spec throws(AdminCommandError) in try Self.policy(spec) } }
            if let quotaPerDay { fields[KeySetting.quotaPerDay.field] = quotaPerDay }
            if let overflow { fields[KeySetting.overflow.field] = overflow }
            if let maxDelay { fields[KeySetting.maxDelay.field] = maxDelay }
            if let maxQueueDelay { fields[KeySetting.maxQueueDelay.field] = maxQueueDelay }
            if let maxDepth { fields[KeySetting.maxDepth.field] = maxDepth }
            if let output { fields["output"] = output }
            if let onRedisFailure { fields[KeySetting.onRedisFailure.field] = onRedisFailure }
            if let retryAfterJitter { fields[KeySetting.retryAfterJitter.field] = retryAfterJitter }
            if let maxInFlight { fields[KeySetting.maxInFlight.field] = maxInFlight }
            if let expiresAt { fields["expires_at"] = expiresAt }
            if let tenant { fields["tenant"] = tenant }
            return fields
        }

        /// `NAME:rate=R,period=S,burst=B` as the API's policy object.
        static func policy(_ spec: String) throws(AdminCommandError) -> [String: Any] {
            let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw .usage("--policy \(spec): expected NAME:rate=R,period=SECONDS,burst=B") }
            var policy: [String: Any] = ["name": parts[0]]
            for pair in parts[1].split(separator: ",") {
                let field = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard field.count == 2 else { throw .usage("--policy \(spec): \(pair) is not field=value") }
                switch field[0] {
                case "rate", "burst":
                    guard let value = Int(field[1]) else { throw .usage("--policy \(spec): \(field[0]) must be a whole number") }
                    policy[field[0]] = value
                case "period":
                    guard let value = Double(field[1]) else { throw .usage("--policy \(spec): period must be seconds") }
                    policy["period"] = value
                default:
                    throw .usage("--policy \(spec): unknown field \(field[0]) (rate, period, burst)")
                }
            }
            guard policy["rate"] != nil else { throw .usage("--policy \(spec): rate is required") }
            return policy
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key; its full value is printed once, never again.")
        @OptionGroup var api: AdminAPIOptions
        @OptionGroup var settings: Settings

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let fields = try settings.fields()
                guard fields["name"] != nil, fields["scopes"] != nil else { throw .usage("create needs --name and at least one --scope") }
                let key = try await client.call(.POST, "/v1/keys", json: fields) as? [String: Any] ?? [:]
                if api.json { return printJSON(key) }
                KeysCommand.printKeys([key])
                print("\nkey: \(key["key"] as? String ?? "?")\n(shown once: store it now; the server keeps only its hash)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every key.")
        @OptionGroup var api: AdminAPIOptions

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let answer = try await client.call(.GET, "/v1/keys") as? [String: Any]
                if api.json { return printJSON(answer) }
                KeysCommand.printKeys(answer?["keys"] as? [[String: Any]] ?? [])
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one key.")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "The key's id.") var id: String

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let key = try await client.call(.GET, "/v1/keys/\(try KeysCommand.checked(id))") as? [String: Any] ?? [:]
                if api.json { return printJSON(key) }
                KeysCommand.printDetail(key)
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change a key's settings in place (PATCH): its id, secrets and limiter state stay.")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "The key's id.") var id: String
        @OptionGroup var settings: Settings

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let fields = try settings.fields()
                guard !fields.isEmpty else { throw .usage("update needs at least one setting to change") }
                let key = try await client.call(.PATCH, "/v1/keys/\(try KeysCommand.checked(id))", json: fields) as? [String: Any] ?? [:]
                if api.json { return printJSON(key) }
                KeysCommand.printDetail(key)
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Issue a new secret; the old one works for --grace-period seconds.")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "The key's id.") var id: String
        @Option(help: "Seconds the old secret keeps working (default 0).") var gracePeriod: Double?

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let body: [String: Any] = gracePeriod.map { ["grace_period": $0] } ?? [:]
                let key = try await client.call(.POST, "/v1/keys/\(try KeysCommand.checked(id))/rotate", json: body) as? [String: Any] ?? [:]
                if api.json { return printJSON(key) }
                print("key: \(key["key"] as? String ?? "?")\n(shown once: store it now)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key: every replica refuses it within 1 s.")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "The key's id.") var id: String

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                _ = try await client.call(.DELETE, "/v1/keys/\(try KeysCommand.checked(id))")
                if api.json { return printJSON(["revoked": id]) }
                print("revoked \(id)")
            }
        }
    }

    /// A key id as the API takes it (so that nothing else ends up in the path).
    static func checked(_ id: String) throws(AdminCommandError) -> String {
        guard (8...32).contains(id.count), id.allSatisfy({ ($0.isLowercase && $0.isASCII) || $0.isNumber && $0.isASCII }) else {
            throw .usage("\(id) is not a key id (8-32 of a-z0-9; the part between sk_ and the next _)")
        }
        return id
    }

    static func printKeys(_ keys: [[String: Any]]) {
        printTable(["ID", "NAME", "SCOPES", "POLICIES", "OVERFLOW", "ON REDIS FAILURE", "TENANT", "EXPIRES"], keys.map { key in
            [key["id"] as? String ?? "", key["name"] as? String ?? "", (key["scopes"] as? [String] ?? []).joined(separator: ","),
             policies(key), key["overflow"] as? String ?? "", key["on_redis_failure"] as? String ?? "", key["tenant"] as? String ?? "-",
             key["expires_at"] as? String ?? "-"]
        })
    }

    static func printDetail(_ key: [String: Any]) {
        for name in key.keys.sorted() where name != "key" {
            let value = key[name]!
            let text = name == "policies" ? policies(key) : (value as? [String])?.joined(separator: ",") ?? "\(value)"
            print("\(name): \(text)")
        }
    }

    /// `default 10/1s burst 20, daily ...`
    static func policies(_ key: [String: Any]) -> String {
        (key["policies"] as? [[String: Any]] ?? []).map { policy in
            "\(policy["name"] ?? "?") \(policy["rate"] ?? "?")/\(policy["period"] ?? "?")s burst \(policy["burst"] ?? "?")"
        }.joined(separator: ", ")
    }
}
