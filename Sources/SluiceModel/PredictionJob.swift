import Foundation
import SluiceCore

/// A queued prediction as it travels from the replica that accepted it to the worker that runs
/// it: the validated feature rows and how much of the answer the key receives. The one codec
/// both sides use.
public struct PredictionJob: Sendable, Equatable, Codable {
    public var rows: [[Double]]
    public var output: PredictionOutput
    /// The trace the request that queued it belongs to, as W3C Trace Context headers
    /// (`traceparent`, `tracestate`), so the worker's run of the job joins that trace. Absent
    /// when tracing is off.
    public var trace: [String: String]?

    public init(rows: [[Double]], output: PredictionOutput, trace: [String: String]? = nil) {
        self.rows = rows
        self.output = output
        self.trace = trace
    }

    /// `{"output":"label","rows":[[5.1,3.5,1.4,0.2]]}`.
    public func encoded() -> String {
        String(decoding: (try? Self.encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The job, if `input` is one for a model with `width` features: rows of `width` finite
    /// numbers. A bare array of rows (as queued before keys had an `output`) is read as full
    /// probabilities, so jobs queued across an upgrade still run.
    public static func decode(_ input: String, width: Int) -> PredictionJob? {
        let data = Data(input.utf8)
        let job = (try? JSONDecoder().decode(PredictionJob.self, from: data))
            ?? (try? JSONDecoder().decode([[Double]].self, from: data)).map { PredictionJob(rows: $0, output: .probabilities) }
        guard let job, !job.rows.isEmpty, job.rows.allSatisfy({ row in row.count == width && row.allSatisfy(\.isFinite) }) else { return nil }
        return job
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}
