import ArgumentParser
import OTel
import ServiceLifecycle
import Tracing

/// OpenTelemetry tracing for `serve` and `worker`, configured the standard way: off unless the
/// `OTEL_*` variables ask for it, as every OpenTelemetry SDK reads them.
///
/// On when `OTEL_TRACES_EXPORTER=otlp` or an endpoint is given (`OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); off with `OTEL_SDK_DISABLED=true` or
/// `OTEL_TRACES_EXPORTER=none`. swift-otel reads the rest (`OTEL_SERVICE_NAME`,
/// `OTEL_TRACES_SAMPLER`/`_ARG`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_PROPAGATORS`, `OTEL_BSP_*`,
/// `OTEL_EXPORTER_OTLP_*`). Only traces: logs and metrics keep their own paths (stderr and
/// Prometheus). This build exports OTLP over HTTP (protobuf or JSON), not gRPC.
enum OpenTelemetryTracing {
    /// Bootstraps the tracer and returns the exporter's service, or `nil` when tracing is off.
    static func start(serviceName: String, environment: [String: String]) throws -> (any Service)? {
        guard try isRequested(environment) else { return nil }
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let value = environment[name], value != "http/protobuf", value != "http/json" {
                throw ValidationError("\(name)=\(value) is not supported: this build exports OTLP over HTTP (http/protobuf or http/json)")
            }
        }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName  // OTEL_SERVICE_NAME overrides it
        configuration.diagnosticLogLevel = .warning  // not a line per variable read; OTEL_LOG_LEVEL overrides it
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.traces.enabled = true
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        return backend.service
    }

    static func isRequested(_ environment: [String: String]) throws -> Bool {
        if environment["OTEL_SDK_DISABLED"]?.lowercased() == "true" { return false }
        switch environment["OTEL_TRACES_EXPORTER"]?.lowercased() {
        case "none": return false
        case "otlp": return true
        case nil: return environment["OTEL_EXPORTER_OTLP_ENDPOINT"] != nil || environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != nil
        case let other?: throw ValidationError("OTEL_TRACES_EXPORTER=\(other) is not supported: otlp or none")
        }
    }
}
