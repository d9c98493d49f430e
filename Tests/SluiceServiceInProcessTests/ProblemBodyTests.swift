import Foundation
import SluiceCore
import Testing

@testable import SluiceService

@Suite("Problem bodies written by hand")
struct ProblemBodyTests {
    /// Mirrors the fields, encoded by JSONEncoder as the bodies used to be.
    struct Reference: Encodable {
        var type: String, title: String, status: Int, detail: String
        var instance: String?
        var errors: [Problem.FieldError]?
        var policy: String?
        var retry_after: Int?
        var violated_policies: [String]?

        enum CodingKeys: String, CodingKey {
            case type, title, status, detail, instance, errors, policy, retry_after
            case violated_policies = "violated-policies"
        }
    }

    @Test(arguments: [
        ("plain", nil as String?, nil as Int?, [] as [Problem.FieldError]),
        ("quote \" backslash \\ slash / tab \t newline \n nul \u{0} bell \u{7} é 😀 \u{202E}", "default", 3, [.init(pointer: "/a~1b", detail: "x \"y\"")]),
    ])
    func theSameJSONAsTheEncoderWrote(detail: String, policy: String?, retryAfter: Int?, errors: [Problem.FieldError]) throws {
        let body = Problem.ProblemBody(
            type: "/problems/quota-exceeded", title: "Too many requests", status: 429, detail: detail, instance: "/v1/predict",
            errors: errors.isEmpty ? nil : errors, policy: policy, retry_after: retryAfter, violated_policies: policy.map { [$0, "daily"] })
        let reference = Reference(
            type: body.type, title: body.title, status: body.status, detail: detail, instance: body.instance, errors: body.errors,
            policy: policy, retry_after: retryAfter, violated_policies: body.violated_policies)
        let written = try JSONSerialization.jsonObject(with: Data(body.json.utf8)) as? NSDictionary
        let encoded = try JSONSerialization.jsonObject(with: try JSONEncoder.sluice.encode(reference)) as? NSDictionary
        #expect(written != nil && written == encoded, "\(body.json)")
        #expect(Array(body.json.utf8).allSatisfy { $0 >= 0x20 }, "no raw control characters")
    }
}
