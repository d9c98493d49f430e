/// What a key may do. A key holds only the scopes it needs (least privilege): a `predict` key can
/// never change a model, a `train` key cannot activate one, only `admin` manages keys.
public enum Scope: String, Sendable, Codable, CaseIterable, Comparable {
    /// `POST /v1/predict`, and its deferred jobs.
    case predict
    /// Upload data and train candidate models; read models.
    case train
    /// Manage keys; activate or roll back models; read models.
    case admin
    /// Read `GET /metrics`.
    case metrics

    public static func < (lhs: Scope, rhs: Scope) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
