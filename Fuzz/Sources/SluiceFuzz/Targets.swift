import Foundation
import HTTPTypes
@testable import SluiceAuth
@testable import SluiceModel
@testable import SluiceRedis
@testable import SluiceService

/// One fuzz target: takes any bytes; crashing (or a sanitizer report) is the only failure, apart
/// from the properties a target checks itself with `precondition`.
struct FuzzTarget: Sendable {
    let name: String
    let run: @Sendable ([UInt8]) -> Void

    static let all: [FuzzTarget] = [
        FuzzTarget(name: "json") { bytes in _ = try? StrictJSON.parse(bytes) },
        FuzzTarget(name: "predict") { bytes in _ = try? PredictionInput.parse(bytes, model: model) },
        FuzzTarget(name: "training") { bytes in
            _ = try? TrainingData.csv(String(decoding: bytes, as: UTF8.self), schema: .iris)
            _ = try? TrainingData.json(Data(bytes), schema: .iris)
        },
        FuzzTarget(name: "apikey") { bytes in
            let text = String(decoding: bytes, as: UTF8.self)
            if let key = APIKey(text) { precondition(APIKey.isValidID(key.id) && key.revealed == text) }
            var headers = HTTPFields()
            headers[.authorization] = text
            _ = Admission.presentedKey(headers)
        },
        FuzzTarget(name: "forwarded") { bytes in
            // First line: the trusted-proxy list; second: the peer; the rest: X-Forwarded-For.
            let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
            guard lines.count == 3, let proxies = TrustedProxies(String(lines[0])) else { return }
            let client = Admission.clientAddress(peer: String(lines[1]), forwardedFor: String(lines[2]), trusting: proxies)
            precondition(client.utf8.count <= 45 && client.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || $0 == "." || $0 == ":" })
        },
        FuzzTarget(name: "prefer") { bytes in
            var headers = HTTPFields()
            headers[.prefer] = String(decoding: bytes, as: UTF8.self)
            let preferences = DeferralPreferences(headers)
            precondition(preferences.wait.map { $0 >= 0 } ?? true)
        },
        FuzzTarget(name: "resp") { bytes in
            if case .success(let replies) = RESPReader.replies(from: bytes) { _ = String(describing: replies) }
        },
        FuzzTarget(name: "lua") { bytes in LuaArguments.run(bytes) },
    ]

    static let model = try! LogisticRegression.bootstrapModel()
}
