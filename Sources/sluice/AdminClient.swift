import ArgumentParser
import Foundation
import NIOHTTP1
import NIOSSL
import SluiceLoad
import SluiceSecrets

/// Options every admin command shares: where the API is, which key to use, how to print.
struct AdminAPIOptions: ParsableArguments {
    @Option(help: "Base URL of the API: http://host:port or https://host:port (certificate verified).")
    var url = "http://127.0.0.1:8080"

    @Option(help: "PEM file of the CA to trust for https:// (default: the system's trust store).")
    var cacert: String?

    @Option(help: "File holding the API key to use (scope admin; train for `models train`). Else SLUICE_ADMIN_KEY(_FILE).")
    var adminKeyFile: String?

    @Flag(help: "Print the API's JSON (for scripts) instead of a table.")
    var json = false
}

/// Why an admin command failed; each has its exit status.
enum AdminCommandError: Error, CustomStringConvertible {
    /// The API answered, and refused (4xx/5xx): exit 1.
    case refused(status: Int, detail: String)
    /// Bad arguments or configuration: exit 2.
    case usage(String)
    /// The API could not be reached: exit 3.
    case unreachable(String)

    var exitCode: Int32 {
        switch self {
        case .refused: 1
        case .usage: 2
        case .unreachable: 3
        }
    }

    var description: String {
        switch self {
        case .refused(let status, let detail): "refused (\(status)): \(detail)"
        case .usage(let message): message
        case .unreachable(let message): "unreachable: \(message)"
        }
    }
}

/// A small client of the admin API for `sluice keys` and `sluice models`.
struct AdminClient {
    let pool: HTTPClientPool
    let key: String
    let options: AdminAPIOptions

    init(_ options: AdminAPIOptions) throws(AdminCommandError) {
        self.options = options
        guard let url = URL(string: options.url), let scheme = url.scheme, ["http", "https"].contains(scheme), let host = url.host,
            url.path.isEmpty || url.path == "/"
        else {
            throw .usage("--url must be http://host:port or https://host:port, not \(options.url)")
        }
        let secrets = SecretSource()
        let key: String
        do {
            if let file = options.adminKeyFile {
                key = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            } else {
                key = try secrets.required("SLUICE_ADMIN_KEY").revealed
            }
        } catch {
            throw .usage("no API key: give --admin-key-file or set SLUICE_ADMIN_KEY(_FILE) (\(error))")
        }
        var tls: NIOSSLContext?
        if scheme == "https" {
            do {
                tls = try HTTPClientPool.tlsContext(caFile: options.cacert)
            } catch {
                throw .usage("--cacert cannot be used: \(error)")
            }
        } else if options.cacert != nil {
            throw .usage("--cacert goes with an https:// URL")
        }
        self.key = key
        self.pool = HTTPClientPool(host: host, port: url.port ?? (scheme == "https" ? 443 : 80), tls: tls, maximumConnections: 1)
    }

    /// Sends one request; a 2xx answer's JSON body, else the error with its exit status.
    func call(_ method: HTTPMethod, _ path: String, json body: [String: Any]? = nil, raw: [UInt8]? = nil, contentType: String? = nil)
        async throws(AdminCommandError) -> Any?
    {
        var headers = [("Authorization", "Bearer \(key)")]
        var bytes = raw
        if let body {
            bytes = Array((try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data())
            headers.append(("Content-Type", "application/json"))
        } else if let contentType {
            headers.append(("Content-Type", contentType))
        }
        let request = HTTPClientPool.Request(method: method, path: path, headers: headers, body: bytes)
        let pool = pool
        let response: HTTPClientPool.Response
        do {
            response = try await withTimeout(.seconds(30)) { try await pool.send(request) }
        } catch {
            throw .unreachable("\(options.url): \(error)")
        }
        let parsed = response.body.isEmpty ? nil : try? JSONSerialization.jsonObject(with: Data(response.body))
        guard (200..<300).contains(response.status) else {
            let problem = parsed as? [String: Any]
            var detail = problem?["detail"] as? String ?? String(decoding: response.body.prefix(300), as: UTF8.self)
            if let errors = problem?["errors"] as? [[String: Any]] {
                detail += " " + errors.map { "\($0["pointer"] ?? ""): \($0["detail"] ?? "")" }.joined(separator: "; ")
            }
            throw .refused(status: response.status, detail: detail)
        }
        return parsed
    }

    func close() { pool.close() }

    private func withTimeout<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw AdminCommandError.unreachable("no answer within \(limit)")
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
    }
}

/// Prints rows as aligned columns.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    for row in [header] + rows {
        print(row.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
            .trimmingCharacters(in: .whitespaces))
    }
}

/// Prints a JSON value as the API sent it (sorted keys, one document).
func printJSON(_ value: Any?) {
    guard let value, let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]) else {
        return
    }
    print(String(decoding: data, as: UTF8.self))
}

/// Runs an admin command's body; failures print to standard error and exit with their status.
func runAdmin(_ options: AdminAPIOptions, _ body: (AdminClient) async throws(AdminCommandError) -> Void) async throws {
    do {
        let client = try AdminClient(options)
        defer { client.close() }
        try await body(client)
    } catch {
        FileHandle.standardError.write(Data("sluice: \(error)\n".utf8))
        throw ExitCode(error.exitCode)
    }
}
