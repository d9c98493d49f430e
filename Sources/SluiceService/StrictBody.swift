import Foundation
import SluiceCore

/// Which fields a JSON request body may have, object by object.
indirect enum BodyShape: Sendable {
    case object([String: BodyShape])
    case array(of: BodyShape)
    /// Any JSON value; `Decodable` checks its type.
    case value
    /// A whole number (Foundation reports `1.5` for an `Int` as invalid JSON, naming no field).
    case integer
}

/// Every JSON request body goes through here: ``StrictJSON`` first (malformed → 400; a key given
/// twice, as in `{"scopes":["admin"],"scopes":["predict"]}`, which Foundation would read as
/// `admin` and Python or JavaScript as `predict` → 422), then fields the shape does not name are
/// refused (422, each by its JSON Pointer: a typo such as `max_dealy` must not silently take the
/// default) as is `null` for any field, and only then `Decodable` (a value of the wrong type → 422
/// naming its field).
enum StrictBody {
    static func decode<T: Decodable>(_ type: T.Type, from body: [UInt8], shape: BodyShape) throws(Problem) -> T {
        try validate(body, shape: shape)
        do {
            return try JSONDecoder.sluice.decode(T.self, from: Data(body))
        } catch {
            throw Problem.invalid([.init(pointer: pointer(of: error), detail: "missing or of the wrong type")])
        }
    }

    /// The first two steps alone, for bodies that another parser then reads.
    static func validate(_ body: [UInt8], shape: BodyShape) throws(Problem) {
        let json: JSONValue
        do {
            json = try StrictJSON.parse(body)
        } catch {
            throw problem(error)
        }
        var unknown: [Problem.FieldError] = []
        check(json, shape: shape, pointer: "", into: &unknown)
        guard unknown.isEmpty else {
            throw Problem.invalid(unknown, detail: "The body has fields this endpoint does not take, or values of the wrong kind; see errors.")
        }
    }

    /// The problem for a body ``StrictJSON`` refuses.
    static func problem(_ failure: StrictJSON.Failure) -> Problem {
        switch failure {
        case .malformed(let offset, let reason): Problem.malformedJSON("Malformed JSON at byte \(offset): \(reason).")
        case .tooDeep(let pointer): Problem.invalid([.init(pointer: pointer, detail: "nested too deeply")])
        case .duplicateKey(let pointer): Problem.invalid([.init(pointer: pointer, detail: "duplicated field")])
        }
    }

    private static func check(_ value: JSONValue, shape: BodyShape, pointer: String, into errors: inout [Problem.FieldError]) {
        switch (value, shape) {
        case (.object(let members), .object(let fields)):
            for key in members.keys.sorted() {
                let child = pointer + "/" + StrictJSON.escapePointer(key)
                guard let fieldShape = fields[key] else {
                    errors.append(.init(pointer: child, detail: "unknown field"))
                    continue
                }
                // No field takes null (the schema says so): leave an optional field out instead.
                if case .null = members[key]! {
                    errors.append(.init(pointer: child, detail: "must not be null; leave the field out for its default"))
                    continue
                }
                check(members[key]!, shape: fieldShape, pointer: child, into: &errors)
            }
        case (.array(let items), .array(let itemShape)):
            for (index, item) in items.enumerated() {
                check(item, shape: itemShape, pointer: "\(pointer)/\(index)", into: &errors)
            }
        case (.number(let number), .integer) where number.rounded() != number || abs(number) >= 0x1p63:
            errors.append(.init(pointer: pointer, detail: "must be a whole number"))
        default:
            break  // a value of another type than the shape's is Decodable's to refuse
        }
    }
}

/// The JSON Pointer of the field a `DecodingError` complains about.
func pointer(of error: any Error) -> String {
    let path: [any CodingKey]
    switch error as? DecodingError {
    case .keyNotFound(let key, let context)?: path = context.codingPath + [key]
    case .typeMismatch(_, let context)?, .valueNotFound(_, let context)?, .dataCorrupted(let context)?: path = context.codingPath
    default: path = []
    }
    return path.map { "/" + ($0.intValue.map(String.init) ?? $0.stringValue) }.joined()
}
