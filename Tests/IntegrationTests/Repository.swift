import Foundation
import SluiceTestSupport

/// Paths in this repository, for tests that run its scripts or read its deployment files.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized.path

    static func path(_ relative: String) -> String { "\(root)/\(relative)" }

    static func read(_ relative: String) throws -> String { try String(contentsOfFile: path(relative), encoding: .utf8) }

    /// A fresh private directory.
    static func temporaryDirectory(_ prefix: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        return path
    }

    /// deploy/redis/users.acl.in rendered by deploy/redis/render-acl with fresh passwords, as
    /// `scripts/cluster` and the compose file do: the ACL file's path and each user's password file.
    static func renderedACL() throws -> (file: String, passwords: [String: String], directory: String) {
        let directory = try temporaryDirectory("sluice-acl")
        let passwords = ["sluice-replica": Cluster.randomHex(), "sluice-worker": Cluster.randomHex()]
        for (user, password) in passwords { try (password + "\n").write(toFile: "\(directory)/\(user)", atomically: true, encoding: .utf8) }
        let rendered = try runCommand([path("deploy/redis/render-acl"), path("deploy/redis/users.acl.in"), directory])
        guard rendered.status == 0 else { throw TestSupportError("render-acl failed: \(rendered.output)") }
        try rendered.output.write(toFile: "\(directory)/users.acl", atomically: true, encoding: .utf8)
        return ("\(directory)/users.acl", passwords, directory)
    }
}
