import Foundation
import SluiceTestSupport

/// `scripts/cluster` in a private directory on free ports, run with the tests' own `sluice`.
struct ClusterScript {
    let directory: String
    let lbPort: Int
    let httpPort: Int
    let environment: [String: String]

    /// `tls: false` serves plain HTTP on `lbPort` (SLUICE_LB_TLS=0); `extra` adds variables.
    init(_ name: String, tls: Bool = true, extra: [String: String] = [:]) throws {
        directory = try Repository.temporaryDirectory(name)
        lbPort = try RedisServer.freePort()
        httpPort = try RedisServer.freePort()
        environment = [
            "SLUICE_CLUSTER_DIR": directory, "SLUICE_LB_PORT": String(lbPort), "SLUICE_LB_HTTP_PORT": String(httpPort),
            "SLUICE_LB_TLS": tls ? "1" : "0", "SLUICE_BINARY": ServiceProcess.binary,
        ].merging(extra) { $1 }
    }

    /// `scripts/cluster up|down|status`.
    func run(_ command: String) throws -> (status: Int32, output: String) {
        try runCommand([Repository.path("scripts/cluster"), command], environment: environment)
    }

    /// The local CA that signed the load balancer's certificate.
    var ca: String { "\(directory)/secrets/sluice-lb-ca.crt" }

    var adminKeyFile: String { "\(directory)/secrets/sluice-admin-key" }

    func adminKey() throws -> String {
        try String(contentsOfFile: adminKeyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The pid of one of the cluster's processes (`redis`, `replica-1`, `lb`, …).
    func pid(_ name: String) throws -> Int32 {
        let text = try String(contentsOfFile: "\(directory)/pids/\(name).pid", encoding: .utf8)
        guard let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw TestSupportError("no pid for \(name)") }
        return pid
    }
}
