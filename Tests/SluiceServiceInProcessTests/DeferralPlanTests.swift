import HTTPTypes
import Testing

@testable import SluiceService

/// The pure decisions behind deferral and proxy trust (the HTTP behaviour is in DeferralTests).
@Suite("Prefer parsing, deferral plans, trusted proxies")
struct DeferralPlanTests {
    @Test func preferFieldsAreParsedAsRFC7240Says() {
        var headers = HTTPFields()
        headers.append(HTTPField(name: HTTPField.Name("Prefer")!, value: "Respond-Async; foo=bar, wait=10"))
        #expect(DeferralPreferences(headers) == DeferralPreferences(respondAsync: true, wait: 10))
        var odd = HTTPFields()
        odd.append(HTTPField(name: HTTPField.Name("Prefer")!, value: "wait=-1, wait=soon, handling=lenient"))
        #expect(DeferralPreferences(odd) == DeferralPreferences(), "unknown or malformed preferences are ignored")
        #expect(DeferralPreferences(HTTPFields()) == DeferralPreferences())
    }

    @Test(arguments: [
        ("delay", false, nil, 500, DeferralPlan.hold(applied: nil)),
        ("delay", true, nil, 500, .enqueue(applied: "respond-async")),
        ("delay", false, 1, 500, .hold(applied: "wait=1")),
        ("delay", false, 0, 500, .enqueue(applied: "wait=0")),
        ("queue", false, nil, 500, .enqueue(applied: nil)),
        ("queue", false, 1, 500, .hold(applied: "wait=1")),
        ("queue", false, 1, 1500, .enqueue(applied: nil)),
        ("queue", true, 5, 500, .enqueue(applied: "respond-async")),
    ] as [(String, Bool, Int?, Int, DeferralPlan)])
    func plans(overflow: String, respondAsync: Bool, wait: Int?, delayMs: Int, expected: DeferralPlan) {
        let plan = DeferralPlan.choose(
            overflow: .init(rawValue: overflow)!, preferences: DeferralPreferences(respondAsync: respondAsync, wait: wait),
            delay: .milliseconds(delayMs))
        #expect(plan == expected)
    }

    @Test func trustedProxiesTakeAddressesAndIPv4Ranges() throws {
        let proxies = try #require(TrustedProxies("127.0.0.1, 10.0.0.0/8,172.28.1.0/24, ::1"))
        for trusted in ["127.0.0.1", "10.1.2.3", "10.255.255.255", "172.28.1.10", "::1"] { #expect(proxies.contains(trusted), "\(trusted)") }
        for untrusted in ["127.0.0.2", "11.0.0.1", "172.28.2.10", "fe80::1", "", "10.0.0"] { #expect(!proxies.contains(untrusted), "\(untrusted)") }
        #expect(TrustedProxies("")?.isEmpty == true)
        for bad in ["10.0.0.0/33", "300.1.1.1", "proxy.local", "10.0.0.0/x"] { #expect(TrustedProxies(bad) == nil, "\(bad)") }
    }
}
