/// How much of a prediction a key receives (a key's `output`), from most to least revealing.
///
/// Full class probabilities to six decimals are exactly what a model-extraction attack feeds
/// on: enough answers and a copy of the model can be fitted to them. Coarser answers make each
/// query worth less to an attacker and cost an honest client little.
public enum PredictionOutput: String, Sendable, Codable, CaseIterable {
    /// `{"label": …, "probabilities": {class: p}}` with six decimals (the default).
    case probabilities
    /// The same with probabilities rounded to two decimals.
    case rounded
    /// `{"label": …}` only.
    case label
}
