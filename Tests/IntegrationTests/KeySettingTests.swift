import Foundation
import SluiceLimiter
import SluiceTestSupport
import Testing
import Yams

/// Each setting of a key's plan is declared once (``KeySetting``); what users read and generate
/// clients from is held to that declaration: `openapi.yaml`'s schemas, the list in
/// `docs/configuration.md`, and `sluice keys create|update --help`.
@Suite("Key settings: one declaration, checked everywhere")
struct KeySettingTests {
    nonisolated(unsafe) static let spec: [String: Any] = {
        let text = try! Repository.read("openapi.yaml")
        return try! Yams.load(yaml: text) as! [String: Any]
    }()

    static var schemas: [String: Any] { (spec["components"] as! [String: Any])["schemas"] as! [String: Any] }

    /// A schema's properties, each `$ref` resolved.
    static func properties(_ schema: String) -> [String: [String: Any]] {
        let properties = (schemas[schema] as! [String: Any])["properties"] as! [String: Any]
        return properties.mapValues { value in
            var property = value as! [String: Any]
            if let ref = property["$ref"] as? String {
                property = schemas[String(ref.split(separator: "/").last!)] as! [String: Any]
            }
            return property
        }
    }

    static func number(_ value: Any?) -> Double? {
        switch value {
        case let int as Int: Double(int)
        case let double as Double: double
        default: nil
        }
    }

    @Test(arguments: KeySetting.all.map(\.field))
    func openAPISaysWhatTheDeclarationSays(field: String) throws {
        let setting = try #require(KeySetting.all.first { $0.field == field })
        let property = try #require(Self.properties("KeyPatch")[field], "KeyPatch lacks \(field)")
        switch setting.kind {
        case .integer: #expect(property["type"] as? String == "integer")
        case .number: #expect(property["type"] as? String == "number")
        case .choice(let choices): #expect(property["enum"] as? [String] == choices)
        }
        if setting.exclusiveMinimum {
            #expect(Self.number(property["exclusiveMinimum"]) == setting.minimum && property["minimum"] == nil)
        } else {
            #expect(Self.number(property["minimum"]) == setting.minimum && property["exclusiveMinimum"] == nil)
        }
        #expect(Self.number(property["maximum"]) == setting.maximum)
        // PATCH keeps what is not given, so overflow's default is stated where a key is created.
        let stated = field == "overflow" ? Self.properties("RejectingKeySpec")[field]?["default"] : property["default"]
        #expect(stated.map { "\($0)" } == setting.defaultText, "\(field): openapi.yaml's default \(stated ?? "none")")
        // A key of each overflow mode takes exactly the settings that go with it.
        for (schema, overflow) in [("RejectingKeySpec", KeyPlan.Overflow.reject), ("DelayingKeySpec", .delay), ("QueueingKeySpec", .queue)] {
            #expect((Self.properties(schema)[field] != nil) == setting.goes(with: overflow), "\(schema) and \(field)")
        }
    }

    @Test func everySettingOfTheSchemasIsDeclared() {
        let record: Set = ["name", "scopes", "policies", "output", "expires_at", "tenant"]
        let declared = Set(KeySetting.all.map(\.field))
        #expect(Set(Self.properties("KeyPatch").keys).subtracting(record) == declared)
        let shown = Set(((Self.schemas["Key"] as! [String: Any])["properties"] as! [String: Any]).keys)
        #expect(declared.isSubset(of: shown), "the Key view shows every setting")
    }

    @Test func theConfigurationDocListsEachSettingAsDeclared() throws {
        let collapse = { (text: String) in text.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        let doc = collapse(try Repository.read("docs/configuration.md"))
        for setting in KeySetting.all {
            let listed = doc.contains(collapse("- `\(setting.field)`: \(setting.help)"))
            #expect(listed, "docs/configuration.md should list: - `\(setting.field)`: \(setting.help)")
        }
    }

    @Test(arguments: ["create", "update"])
    func theCLITakesEachSettingAsAFlagWithItsHelp(subcommand: String) throws {
        let (status, help) = try runCommand([ServiceProcess.binary, "keys", subcommand, "--help"])
        #expect(status == 0, "\(help)")
        let collapsed = help.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        for setting in KeySetting.all {
            let flag = collapsed.contains("\(setting.flag) <")
            let described = collapsed.contains(setting.help.split(whereSeparator: \.isWhitespace).joined(separator: " "))
            #expect(flag && described, "sluice keys \(subcommand) should take \(setting.flag): \(setting.help)")
        }
    }
}
