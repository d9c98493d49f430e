import SluiceModel

/// A prediction request, validated against the served model's feature schema.
///
/// `{"features": {…}}` or `{"instances": [{…}, …]}` (1–100 instances). Every feature must be present
/// once, be a finite number, and lie within 10 training ranges of the training data's min…max
/// (anything further is an absurd magnitude, not a flower); unknown fields are refused.
struct PredictionInput {
    static let maximumInstances = 100
    let instances: [[Double]]

    static func parse(_ body: [UInt8], model: ModelArtifact) throws(Problem) -> PredictionInput {
        if let usual = usualBody(body, model: model) { return usual }
        return try parseInFull(body, model: model)
    }

    /// The body almost every request sends, `{"features": {…}}` with each feature once and
    /// plausible, read in one pass without building its JSON value
    /// (``StrictJSON/numberMembers(_:under:_:)``). nil for every other body, valid or not:
    /// ``parseInFull(_:model:)`` then reads it, and says what is wrong. So this decides nothing
    /// the full parse would decide differently; it only gets there sooner.
    static func usualBody(_ body: [UInt8], model: ModelArtifact) -> PredictionInput? {
        let features = model.features
        guard features.count <= 64 else { return nil }
        // The row is filled on the stack: a body of another shape costs no allocation here.
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: features.count) { row in
            var seen: UInt64 = 0
            let taken = StrictJSON.numberMembers(body, under: "features") { name, value in
                guard let position = features.firstIndex(where: { $0.name.utf8.elementsEqual(name) }), seen & (1 << position) == 0,
                    isPlausible(value, for: features[position])
                else { return false }
                seen |= 1 << position
                row[position] = value
                return true
            }
            guard taken, seen == UInt64.max >> (64 - features.count) else { return nil }
            return PredictionInput(instances: [Array(row)])
        }
    }

    /// Finite, and within 10 training ranges of the training data's min…max.
    private static func isPlausible(_ number: Double, for feature: ModelArtifact.Feature) -> Bool {
        let range = max(feature.max - feature.min, 1e-9)
        return number.isFinite && number >= feature.min - 10 * range && number <= feature.max + 10 * range
    }

    /// Any body, read in full, and every problem of an invalid one.
    static func parseInFull(_ body: [UInt8], model: ModelArtifact) throws(Problem) -> PredictionInput {
        let json: JSONValue
        do {
            json = try StrictJSON.parse(body)
        } catch {
            switch error {
            case .malformed(let offset, let reason): throw Problem.malformedJSON("Malformed JSON at byte \(offset): \(reason).")
            case .tooDeep(let pointer): throw Problem.invalid([.init(pointer: pointer, detail: "nested too deeply")])
            case .duplicateKey(let pointer): throw Problem.invalid([.init(pointer: pointer, detail: "duplicated field")])
            }
        }
        guard case .object(let top) = json else {
            throw Problem.invalid([.init(pointer: "", detail: "expected an object with \"features\" or \"instances\"")])
        }
        var errors: [Problem.FieldError] = []
        // JSON Pointers are spelled only for errors: a valid body builds no strings here.
        if top.keys.contains(where: { $0 != "features" && $0 != "instances" }) {
            for key in top.keys.sorted() where key != "features" && key != "instances" {
                errors.append(.init(pointer: "/" + StrictJSON.escapePointer(key), detail: "unknown field"))
            }
        }
        // The rows: the single `features` object, or the `instances` array as it is (no copy).
        var single: JSONValue?
        var batch: [JSONValue] = []
        switch (top["features"], top["instances"]) {
        case (let features?, nil):
            single = features
        case (nil, .array(let instances)?):
            if instances.isEmpty { errors.append(.init(pointer: "/instances", detail: "at least one instance is required")) }
            if instances.count > maximumInstances {
                errors.append(.init(pointer: "/instances", detail: "at most \(maximumInstances) instances per request, got \(instances.count)"))
            } else {
                batch = instances
            }
        case (nil, _?):
            errors.append(.init(pointer: "/instances", detail: "must be an array of objects"))
        case (_?, _?):
            errors.append(.init(pointer: "", detail: "send either \"features\" or \"instances\", not both"))
        case (nil, nil):
            errors.append(.init(pointer: "", detail: "missing \"features\" or \"instances\""))
        }
        let rowCount = single == nil ? batch.count : 1
        var instances: [[Double]] = []
        instances.reserveCapacity(rowCount)
        for position in 0..<rowCount where errors.count < 50 {
            let value = single ?? batch[position]
            var pointer: String { single == nil ? "/instances/\(position)" : "/features" }
            guard case .object(let fields) = value else {
                errors.append(.init(pointer: pointer, detail: "must be an object of feature values"))
                continue
            }
            if fields.count != model.features.count || fields.keys.contains(where: { name in !model.features.contains { $0.name == name } }) {
                for name in fields.keys.sorted() where !model.features.contains(where: { $0.name == name }) {
                    errors.append(.init(pointer: "\(pointer)/\(StrictJSON.escapePointer(name))", detail: "unknown feature"))
                }
            }
            var row: [Double] = []
            row.reserveCapacity(model.features.count)
            for feature in model.features {
                func fieldError(_ detail: String) -> Problem.FieldError { .init(pointer: "\(pointer)/\(feature.name)", detail: detail) }
                switch fields[feature.name] {
                case nil:
                    errors.append(fieldError("missing feature"))
                case .number(let number) where !number.isFinite:
                    errors.append(fieldError("must be a finite number"))
                case .number(let number):
                    if !isPlausible(number, for: feature) {
                        errors.append(fieldError("absurd magnitude: training data spans \(feature.min)…\(feature.max)"))
                    }
                    row.append(number)
                case .string, .bool, .null, .object, .array:
                    errors.append(fieldError("must be a number"))
                }
            }
            instances.append(row)
        }
        guard errors.isEmpty else { throw Problem.invalid(errors) }
        return PredictionInput(instances: instances)
    }
}
