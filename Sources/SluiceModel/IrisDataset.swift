/// The Iris data shipped in `data/iris.csv` (embedded at build time; see `data/README.md`).
public enum IrisDataset {
    public static var csv: String { String(decoding: PackageResources.iris_csv, as: UTF8.self) }

    /// The parsed data set; it is validated like any upload.
    public static func load() throws(DataValidationError) -> TrainingData {
        try TrainingData.csv(csv, schema: .iris)
    }
}
