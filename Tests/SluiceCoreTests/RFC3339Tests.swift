import Foundation
import SluiceCore
import Testing

/// Timestamps in request bodies are RFC 3339 `date-time`, all of it (as `openapi.yaml`'s
/// `format: date-time` promises), and nothing else.
@Suite("RFC 3339 timestamps")
struct RFC3339Tests {
    @Test(arguments: [
        ("2030-09-19T11:41:34Z", 1_916_048_494.0),
        ("2030-09-19t11:41:34z", 1_916_048_494.0),
        ("2030-09-19T11:41:34.25Z", 1_916_048_494.25),
        ("2030-09-19T11:41:34.123456789Z", 1_916_048_494.123456789),
        ("2030-09-19T12:41:34+01:00", 1_916_048_494.0),
        ("2030-09-18T15:51:34-19:50", 1_916_048_494.0),
        ("2016-12-31T23:59:60Z", 1_483_228_800.0),
        ("2024-02-29T00:00:00Z", 1_709_164_800.0),
        ("9197-09-19T11:41:34.7956-19:50", 228_084_795_094.7956),
    ])
    func valid(text: String, seconds: Double) {
        #expect(abs((RFC3339.date(text)?.timeIntervalSince1970 ?? .nan) - seconds) < 1e-5, "\(text)")
    }

    @Test(arguments: [
        "", "2030-09-19", "2030-09-19T11:41Z", "2030-09-19 11:41:34Z", "2030-09-19T11:41:34", "2030-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2030-09-19T24:00:00Z", "2030-09-19T11:41:61Z", "2030-09-19T11:41:34.Z",
        "2030-09-19T11:41:34+24:00", "2030-09-19T11:41:34+0100", "+2030-09-19T11:41:34Z", "2030-09-19T11:41:34Z ",
    ])
    func invalid(text: String) {
        #expect(RFC3339.date(text) == nil, "\(text)")
    }
}
