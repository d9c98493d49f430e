import ArgumentParser
import Foundation

/// `sluice models`: list, train and activate models through the API.
struct ModelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List stored models, train one from a file, activate (or roll back to) a version.",
        discussion: "Exit status: 0 done, 1 refused by the API, 2 bad usage, 3 API unreachable.",
        subcommands: [List.self, Train.self, Activate.self, Resign.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List stored model versions (scope train or admin).")
        @OptionGroup var api: AdminAPIOptions

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let answer = try await client.call(.GET, "/v1/models") as? [String: Any]
                if api.json { return printJSON(answer) }
                let models = answer?["models"] as? [[String: Any]] ?? []
                printTable(["VERSION", "ACTIVE", "VERIFIED", "REFERENCE ACCURACY", "TRAINED BY", "CREATED"], models.map { model in
                    let accuracy = (model["metrics"] as? [String: Any])?["reference_accuracy"] as? Double
                    return ["\(model["version"] ?? "?")", (model["active"] as? Bool ?? false) ? "*" : "", (model["verified"] as? Bool ?? false) ? "yes" : "NO",
                            accuracy.map { String(format: "%.3f", $0) } ?? "-", model["trained_by"] as? String ?? "-", model["created_at"] as? String ?? "-"]
                })
            }
        }
    }

    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a model from a CSV file (or JSON rows, by the .json extension); it goes live only if it passes the activation gate (scope train).")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "CSV with a header row, or a .json file of rows.") var file: String

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                guard let data = FileManager.default.contents(atPath: file) else { throw .usage("cannot read \(file)") }
                let type = file.lowercased().hasSuffix(".json") ? "application/json" : "text/csv"
                let answer = try await client.call(.POST, "/v1/models", raw: Array(data), contentType: type) as? [String: Any]
                if api.json { return printJSON(answer) }
                let model = answer?["model"] as? [String: Any] ?? [:]
                print("trained version \(model["version"] ?? "?"); activated: \(answer?["activated"] as? Bool ?? false) (\(answer?["reason"] as? String ?? ""))")
            }
        }
    }

    struct Resign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-sign every stored model with the active signing key, so that a retired key can leave the keyring (scope admin).")
        @OptionGroup var api: AdminAPIOptions

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                let answer = try await client.call(.POST, "/v1/models/resign") as? [String: Any]
                if api.json { return printJSON(answer) }
                let list = { (field: String) in (answer?[field] as? [Int] ?? []).map(String.init).joined(separator: ", ") }
                print("signing key: \(answer?["signing_key_id"] as? String ?? "?")")
                print("re-signed: \(list("resigned").isEmpty ? "none" : list("resigned"))")
                print("already signed by it: \(list("unchanged").isEmpty ? "none" : list("unchanged"))")
                let refused = list("refused")
                if !refused.isEmpty {
                    print("REFUSED (verify with no listed key; left as they are): \(refused)")
                    throw .refused(status: 200, detail: "\((answer?["refused"] as? [Int] ?? []).count) stored model(s) fail verification")
                }
            }
        }
    }

    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a stored version the active model on every replica (scope admin).")
        @OptionGroup var api: AdminAPIOptions
        @Argument(help: "The version.") var version: Int

        func run() async throws {
            try await runAdmin(api) { client throws(AdminCommandError) in
                guard version >= 1 else { throw .usage("a version is a whole number from 1") }
                let answer = try await client.call(.POST, "/v1/models/\(version)/activate")
                if api.json { return printJSON(answer) }
                print("active version: \(version)")
            }
        }
    }
}
