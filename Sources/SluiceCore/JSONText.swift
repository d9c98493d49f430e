/// JSON written by hand on hot paths (problem bodies, predictions), where `JSONEncoder`'s
/// reflection costs more than the rest of the answer.
public enum JSONText {
    /// `text` as a JSON string literal, quotes included: `"` and `\` escaped, control characters
    /// as `\u00XX` (valid JSON whatever the text holds).
    public static func quoted(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + 2)
        appendQuoted(text, to: &out)
        return out
    }

    /// Appends ``quoted(_:)`` of `text` to `out`, with no string of its own in between.
    public static func appendQuoted(_ text: String, to out: inout String) {
        out += "\""
        // Most text needs no escape: appended whole.
        if !text.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 < 0x20 }) {
            out += text
            out += "\""
            return
        }
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}
