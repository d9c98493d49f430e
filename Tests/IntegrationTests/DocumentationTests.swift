import Foundation
import SluiceTestSupport
import Testing

/// The docs against what they describe: `docs/configuration.md` names every flag of `sluice serve`
/// and `sluice worker` (from their `--help`) and every environment variable the code reads, and
/// nothing else; Markdown tables stay narrow enough to read in a terminal.
@Suite("Documentation in step with the binary")
struct DocumentationTests {
    /// Not configuration: the label under which the Redis TLS files are reloaded together
    /// (`sluice_secret_reloads_total{secret="SLUICE_REDIS_TLS"}`), and the prefix whose unknown
    /// names are refused.
    static let notVariables: Set<String> = ["SLUICE_REDIS_TLS", "SLUICE_REDIS_TLS_"]

    /// `--flag` names in a command's `--help` (its OPTIONS section), `--help` itself left out.
    static func flags(ofCommand command: String) throws -> Set<String> {
        let (status, help) = try runCommand([ServiceProcess.binary, command, "--help"])
        #expect(status == 0, "\(help)")
        let options = help.components(separatedBy: "OPTIONS:").last ?? ""
        return Set(matches(of: #"(?m)^\s+(--[a-z][a-z0-9-]*)"#, in: options)).subtracting(["--help", "--version"])
    }

    /// Environment variables named by a string literal in the product's sources (not test support).
    static func variablesInSources() throws -> Set<String> {
        let sources = Repository.path("Sources")
        var names: Set<String> = []
        for case let file as String in FileManager.default.enumerator(atPath: sources)!
        where file.hasSuffix(".swift") && !file.hasPrefix("SluiceTestSupport/") {
            let text = try String(contentsOfFile: "\(sources)/\(file)", encoding: .utf8)
            names.formUnion(matches(of: #""((?:SLUICE|REDIS|OTEL)_[A-Z0-9_]+)""#, in: text))
        }
        return names.subtracting(notVariables)
    }

    static func matches(of pattern: String, in text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: pattern)
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    @Test func theConfigurationReferenceNamesExactlyWhatTheBinaryKnows() throws {
        let page = try Repository.read("docs/configuration.md")
        // The binary's own settings: everything before scripts/cluster's section.
        let binarySection = try #require(page.components(separatedBy: "## `scripts/cluster`").first)
        let documentedFlags = Set(Self.matches(of: #"`(--[a-z][a-z0-9-]*)`"#, in: binarySection)).subtracting(["--help"])
        let flags = try Self.flags(ofCommand: "serve").union(try Self.flags(ofCommand: "worker"))
        #expect(flags.subtracting(documentedFlags).isEmpty, "flags missing from docs/configuration.md: \(flags.subtracting(documentedFlags).sorted())")
        #expect(documentedFlags.subtracting(flags).isEmpty, "documented flags the binary lacks: \(documentedFlags.subtracting(flags).sorted())")

        // `NAME_FILE` is the file form of `NAME` (SecretSource reads it for every secret).
        let strip = { (name: String) in name.hasSuffix("_FILE") && !name.hasPrefix("SLUICE_REDIS_TLS_") ? String(name.dropLast(5)) : name }
        let documented = Set(Self.matches(of: #"`((?:SLUICE|REDIS|OTEL)_[A-Z0-9_]*[A-Z0-9])`"#, in: binarySection).map(strip))
        let read = Set(try Self.variablesInSources().map(strip))
        #expect(read.subtracting(documented).isEmpty, "variables missing from docs/configuration.md: \(read.subtracting(documented).sorted())")
        // The other OTEL_* variables are swift-otel's to read (the OpenTelemetry spec's names).
        let unread = documented.subtracting(read).filter { !$0.hasPrefix("OTEL_") }
        #expect(unread.isEmpty, "documented variables no code reads: \(unread.sorted())")
    }

    @Test func scriptsClusterVariablesAreTheOnesItReads() throws {
        let page = try Repository.read("docs/configuration.md")
        let section = try #require(page.components(separatedBy: "## `scripts/cluster`").dropFirst().first?.components(separatedBy: "\n## ").first)
        let script = try Repository.read("scripts/cluster") + Repository.read("scripts/lib/common.sh")
        for name in Set(Self.matches(of: #"`(SLUICE_[A-Z0-9_]+)`"#, in: section)) {
            #expect(script.contains(name), "\(name) is documented for scripts/cluster, which never reads it")
        }
    }

    @Test func markdownTablesFitATerminal() throws {
        let pages = ["README.md", "deploy/README.md"]
            + (try FileManager.default.contentsOfDirectory(atPath: Repository.path("docs"))).filter { $0.hasSuffix(".md") }.map { "docs/\($0)" }
        for page in pages {
            let wide = try Repository.read(page).split(separator: "\n").filter { $0.hasPrefix("|") && $0.count > 120 }
            #expect(wide.isEmpty, "\(page): table lines over 120 characters: \(wide.map { $0.prefix(60) })")
        }
    }

    @Test func theReadmeLinksEveryPageOfDocs() throws {
        let readme = try Repository.read("README.md")
        for page in try FileManager.default.contentsOfDirectory(atPath: Repository.path("docs")) where page.hasSuffix(".md") {
            #expect(readme.contains("(docs/\(page))"), "README.md does not link docs/\(page)")
        }
        #expect(readme.utf8.count < 12_000, "the README stays short: \(readme.utf8.count) bytes")
    }
}
