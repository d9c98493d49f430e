extension LogisticRegression {
    /// Version 1 of every deployment: trained (deterministically) on the shipped data set.
    public static func bootstrapModel() throws -> ModelArtifact {
        let iris = try IrisDataset.load()
        return LogisticRegression().train(iris, reference: iris, trainedBy: "bootstrap")
    }
}

/// Whether a model trained from uploaded data may go live without an admin.
///
/// A candidate is activated automatically only when its accuracy on the reference set is at
/// least the active model's *and* at least ``floor``. Both halves matter: with any tolerance
/// below the active model ("within 5 points"), each upload may lose a little and the losses add
/// up, so a `train` key could walk the model off course one small step at a time (measured: 1.00
/// to 0.70 in 21 activations). Without a tolerance automatic activations never lower the
/// reference accuracy, and the floor also bounds what follows an admin's explicit rollback.
/// Anything refused stays stored; an admin may still activate it explicitly.
public struct ActivationGate: Sendable, Equatable {
    /// The lowest reference accuracy that may go live by itself.
    public let floor: Double

    public init(floor: Double) { self.floor = floor }

    /// How far below the bootstrap model's accuracy the default floor sits.
    public static let bootstrapMargin = 0.02

    /// The gate whose floor is the bootstrap model's reference accuracy less ``bootstrapMargin``:
    /// the model every deployment starts from, trained deterministically on the shipped data set.
    public static func fromBootstrapModel() throws -> ActivationGate {
        ActivationGate(floor: try LogisticRegression.bootstrapModel().metrics.referenceAccuracy - bootstrapMargin)
    }

    public enum Verdict: Sendable, Equatable {
        case activate(reason: String)
        case keep(reason: String)

        public var activates: Bool { if case .activate = self { true } else { false } }

        public var reason: String {
            switch self {
            case .activate(let reason), .keep(let reason): reason
            }
        }
    }

    /// The verdict on a candidate with reference accuracy `candidate`, against the active model's
    /// (nil when none is active). Accuracies are fractions of the same reference rows, so equal
    /// models compare equal; the 1e-9 only absorbs floating-point noise.
    public func verdict(candidate: Double, active: Double?) -> Verdict {
        let epsilon = 1e-9
        if candidate + epsilon < floor {
            return .keep(reason: "not activated: reference accuracy \(candidate) is below the floor \(floor); an admin may activate it explicitly")
        }
        if let active, candidate + epsilon < active {
            return .keep(
                reason: "not activated: reference accuracy \(candidate) is below the active model's \(active); an admin may activate it explicitly")
        }
        return .activate(reason: "reference accuracy \(candidate) is at least the active model's \(active.map { "\($0)" } ?? "(none)") and the floor \(floor)")
    }
}
