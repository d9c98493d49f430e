import Foundation

/// RFC 3339 timestamps with fractional seconds (`2027-01-01T00:00:00.250Z`): whole-second ISO 8601
/// would cut a 0.3 s rotation grace period to nothing. Decoding also takes whole seconds.
extension JSONEncoder {
    public static var sluice: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        }
        return encoder
    }
}

extension JSONDecoder {
    public static var sluice: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            if let date = try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)) { return date }
            if let date = try? Date(text, strategy: Date.ISO8601FormatStyle()) { return date }
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected an RFC 3339 timestamp such as 2027-01-01T00:00:00Z")
        }
        return decoder
    }
}
