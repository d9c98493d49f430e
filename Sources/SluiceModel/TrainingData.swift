import Crypto
import Foundation

/// Labelled rows for training, validated before any model sees them.
///
/// Accepted as CSV (a header row of the feature names and the label column, in any order) or as
/// JSON `{"rows": [{"sepal_length": 5.1, …, "species": "setosa"}]}`. Every value must be a finite
/// number, every label one of the known classes, and there must be at least ``minimumRows`` rows
/// and every class represented: data that breaks a rule is refused with a pointer to each problem.
public struct TrainingData: Sendable {
    public let features: [String]
    public let classes: [String]
    public let rows: [[Double]]
    /// Index into ``classes`` per row.
    public let labels: [Int]
    /// SHA-256 of the canonical CSV form, recorded in the artifact (what exactly was trained on).
    public let sha256: String

    public static let minimumRows = 30
    public static let maximumRows = 100_000

    public init(features: [String], classes: [String], rows: [[Double]], labels: [Int]) {
        self.features = features
        self.classes = classes
        self.rows = rows
        self.labels = labels
        var canonical = features.joined(separator: ",") + ",label\n"
        for (row, label) in zip(rows, labels) {
            canonical += row.map { String($0) }.joined(separator: ",") + "," + classes[label] + "\n"
        }
        self.sha256 = SHA256.hash(data: Array(canonical.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Parses CSV with a header row.
    public static func csv(_ text: String, schema: DataSchema) throws(DataValidationError) -> TrainingData {
        var lines = text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline).map(String.init)
        guard !lines.isEmpty else { throw DataValidationError([.init("/", "the CSV is empty")]) }
        let header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        var problems: [DataValidationError.Problem] = []
        let expected = Set(schema.features + [schema.labelColumn])
        if Set(header) != expected || header.count != expected.count {
            problems.append(.init("/header", "the header must name each of \(schema.features + [schema.labelColumn]) once"))
            throw DataValidationError(problems)
        }
        let records = lines.enumerated().map { index, line in
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            var record: [String: RawValue] = [:]
            for (column, cell) in zip(header, cells) {
                record[column] = column == schema.labelColumn ? .text(cell) : Double(cell).map(RawValue.number) ?? .text(cell)
            }
            if cells.count != header.count { record["__width"] = .text("\(index)") }
            return record
        }
        return try validate(records, schema: schema, pointerPrefix: "/rows")
    }

    /// Parses `{"rows": [{…}, …]}`.
    public static func json(_ data: Data, schema: DataSchema) throws(DataValidationError) -> TrainingData {
        struct Upload: Decodable { var rows: [[String: Scalar]] }
        guard let upload = try? JSONDecoder().decode(Upload.self, from: data) else {
            throw DataValidationError([.init("/rows", "expected {\"rows\": [{…}, …]} with one object per row")])
        }
        let records = upload.rows.map { row in
            row.mapValues { scalar -> RawValue in
                if case .number(let value) = scalar { return .number(value) }
                if case .text(let text) = scalar { return .text(text) }
                return .text("")
            }
        }
        return try validate(records, schema: schema, pointerPrefix: "/rows")
    }

    /// A JSON value as far as a data cell goes: a number, a string, or anything else.
    enum Scalar: Decodable {
        case number(Double)
        case text(String)
        case other

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if (try? container.decode(Bool.self)) != nil {
                self = .other
            } else if let number = try? container.decode(Double.self) {
                self = .number(number)
            } else if let text = try? container.decode(String.self) {
                self = .text(text)
            } else {
                self = .other
            }
        }
    }

    enum RawValue {
        case number(Double)
        case text(String)
    }

    static func validate(_ records: [[String: RawValue]], schema: DataSchema, pointerPrefix: String) throws(DataValidationError) -> TrainingData {
        var problems: [DataValidationError.Problem] = []
        if records.count < minimumRows { problems.append(.init(pointerPrefix, "at least \(minimumRows) rows are required, got \(records.count)")) }
        if records.count > maximumRows { problems.append(.init(pointerPrefix, "at most \(maximumRows) rows are accepted")) }
        var rows: [[Double]] = []
        var labels: [Int] = []
        for (index, record) in records.enumerated() where problems.count < 50 {
            let pointer = "\(pointerPrefix)/\(index)"
            if record["__width"] != nil { problems.append(.init(pointer, "the row does not have one cell per header column")); continue }
            for name in record.keys where !schema.features.contains(name) && name != schema.labelColumn {
                problems.append(.init("\(pointer)/\(name)", "unknown column"))
            }
            var row: [Double] = []
            for name in schema.features {
                switch record[name] {
                case .number(let value) where value.isFinite: row.append(value)
                case .number: problems.append(.init("\(pointer)/\(name)", "must be a finite number"))
                case .text: problems.append(.init("\(pointer)/\(name)", "must be a number"))
                case nil: problems.append(.init("\(pointer)/\(name)", "is missing"))
                }
            }
            guard case .text(let label) = record[schema.labelColumn], let labelIndex = schema.classes.firstIndex(of: label) else {
                problems.append(.init("\(pointer)/\(schema.labelColumn)", "must be one of \(schema.classes)"))
                continue
            }
            rows.append(row)
            labels.append(labelIndex)
        }
        if problems.isEmpty {
            for (index, name) in schema.classes.enumerated() where !labels.contains(index) {
                problems.append(.init(pointerPrefix, "no row of class \(name)"))
            }
        }
        guard problems.isEmpty else { throw DataValidationError(problems) }
        return TrainingData(features: schema.features, classes: schema.classes, rows: rows, labels: labels)
    }
}

/// The columns training data must have.
public struct DataSchema: Sendable {
    public var features: [String]
    public var labelColumn: String
    public var classes: [String]

    public static let iris = DataSchema(
        features: ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        labelColumn: "species",
        classes: ["setosa", "versicolor", "virginica"]
    )
}

/// Training data that breaks the rules; each problem points at its place (a JSON Pointer).
public struct DataValidationError: Error, Sendable, CustomStringConvertible {
    public struct Problem: Sendable, Equatable {
        public var pointer: String
        public var detail: String

        init(_ pointer: String, _ detail: String) {
            self.pointer = pointer
            self.detail = detail
        }
    }

    public var problems: [Problem]

    init(_ problems: [Problem]) {
        self.problems = problems
    }

    public var description: String {
        "invalid training data: " + problems.prefix(3).map { "\($0.pointer): \($0.detail)" }.joined(separator: "; ")
    }
}
