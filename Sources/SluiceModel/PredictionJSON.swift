import Foundation

extension ModelArtifact {
    /// `{"model_version": 1, "predictions": [{"label": …, "probabilities": {…}}]}` for rows of
    /// features in ``features`` order: the body of `POST /v1/predict` and of a finished job.
    ///
    /// Written directly rather than through `JSONEncoder`: this is the hottest response. The class
    /// names are validated training labels, escaped here all the same.
    public func predictionJSON(for instances: [[Double]]) -> String {
        var json = "{\"model_version\":\(version),\"predictions\":["
        for (index, row) in instances.enumerated() {
            let p = probabilities(row)
            let best = p.indices.max { p[$0] < p[$1] }!
            if index > 0 { json += "," }
            json += "{\"label\":\(Self.jsonString(classes[best])),\"probabilities\":{"
            for (k, name) in classes.enumerated() {
                if k > 0 { json += "," }
                json += "\(Self.jsonString(name)):\((p[k] * 1e6).rounded() / 1e6)"
            }
            json += "}}"
        }
        return json + "]}"
    }

    private static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
