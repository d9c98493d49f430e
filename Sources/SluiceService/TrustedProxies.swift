/// The peers whose `X-Forwarded-For` is believed: `SLUICE_TRUSTED_PROXIES`, a comma-separated
/// list of addresses and IPv4 CIDR ranges (`127.0.0.1, 10.0.0.0/8`), so that a load balancer or
/// an ingress controller whose pods change address can be trusted by its network.
public struct TrustedProxies: Sendable, Equatable {
    private var addresses: Set<String> = []
    private var ranges: [(base: UInt32, mask: UInt32)] = []

    /// Nil when an entry is neither an address nor a valid IPv4 CIDR range.
    public init?(_ list: String) {
        for entry in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            if let slash = entry.firstIndex(of: "/") {
                guard let base = Self.ipv4(entry[..<slash]), let bits = Int(entry[entry.index(after: slash)...]), (0...32).contains(bits)
                else { return nil }
                let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
                ranges.append((base & mask, mask))
            } else {
                guard Self.ipv4(entry[...]) != nil || entry.contains(":") else { return nil }
                addresses.insert(entry)
            }
        }
    }

    public func contains(_ address: String) -> Bool {
        if addresses.contains(address) { return true }
        guard !ranges.isEmpty, let value = Self.ipv4(address[...]) else { return false }
        return ranges.contains { value & $0.mask == $0.base }
    }

    public var isEmpty: Bool { addresses.isEmpty && ranges.isEmpty }

    static func ipv4(_ text: Substring) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard octet.count <= 3, let byte = UInt8(octet) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.addresses == rhs.addresses && lhs.ranges.map(\.base) == rhs.ranges.map(\.base) && lhs.ranges.map(\.mask) == rhs.ranges.map(\.mask)
    }
}
