import Tracing

/// A queued job's trace: the W3C Trace Context of the request that queued it, carried in the
/// job itself (``PredictionJob/trace``) because the worker that runs it may start seconds or
/// hours later, on another machine, with no connection to the request.
extension PredictionJob {
    /// This job carrying the current task's trace, if tracing is on and the task is in one.
    public func joiningCurrentTrace() -> PredictionJob {
        guard let context = ServiceContext.current else { return self }
        var carrier: [String: String] = [:]
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: TraceHeaders())
        var job = self
        job.trace = carrier.isEmpty ? nil : carrier
        return job
    }

    /// The context to run this job in: the queuing request's trace, or a fresh top-level one.
    public var traceContext: ServiceContext {
        var context = ServiceContext.topLevel
        if let trace { InstrumentationSystem.instrument.extract(trace, into: &context, using: TraceHeaders()) }
        return context
    }
}

/// Trace Context headers in a `[String: String]`, both ways.
struct TraceHeaders: Injector, Extractor {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}
