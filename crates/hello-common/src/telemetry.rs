//! Logging and traces with `tracing`.
//!
//! Logs: human-readable by default, one JSON object per line with `LOG_FORMAT=json`; the level
//! comes from `RUST_LOG` (default `info`).
//!
//! Traces: OpenTelemetry, exported over OTLP (HTTP, protobuf) when the standard variables ask for
//! it, and off otherwise: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! turns them on; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keeps them off;
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` and the
//! other `OTEL_EXPORTER_OTLP_*` variables work as the specification says. A W3C `traceparent`
//! on an incoming request continues the caller's trace ([`continue_incoming_trace`]); each call
//! in a batch to world-service carries its request's ([`current_traceparent`]), which world
//! continues ([`continue_trace`]); calls that go alone carry it as a header
//! ([`outgoing_headers`]). So one trace follows a request from nginx (or the client) through
//! hello-service and world-service to the store, on the path every request takes.
//!
//! Built without the `traces` feature, none of this exists: no exporter, no propagation, and
//! [`tracing_enabled`] is always false (the benchmark compares that build with the default one).

use tracing_subscriber::{
    EnvFilter, Layer, Registry, fmt, layer::SubscriberExt, util::SubscriberInitExt,
};

/// The layer that exports spans, first on the registry.
type TraceLayer = Box<dyn Layer<Registry> + Send + Sync>;

#[cfg(feature = "traces")]
pub use otel::{
    continue_incoming_trace, continue_trace, current_traceparent, outgoing_headers, tracing_enabled,
};

/// Whether traces are exported: never, in a build without the `traces` feature.
#[cfg(not(feature = "traces"))]
pub fn tracing_enabled() -> bool {
    false
}

/// Nothing to continue without the `traces` feature.
#[cfg(not(feature = "traces"))]
pub fn continue_incoming_trace(_: &tracing::Span, _: &actix_web::http::header::HeaderMap) {}

/// No trace context to send without the `traces` feature.
#[cfg(not(feature = "traces"))]
pub fn outgoing_headers() -> Vec<(String, String)> {
    Vec::new()
}

/// No trace context to pass on without the `traces` feature.
#[cfg(not(feature = "traces"))]
pub fn current_traceparent() -> Option<String> {
    None
}

/// Nothing to continue without the `traces` feature.
#[cfg(not(feature = "traces"))]
pub fn continue_trace(_: &tracing::Span, _: &str) {}

/// Whether the `OTEL_*` variables ask for traces.
fn traces_requested(variable: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| variable(name).is_some_and(|value| !value.trim().is_empty());
    let disabled =
        variable("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true"));
    let no_exporter = variable("OTEL_TRACES_EXPORTER")
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("none"));
    !disabled
        && !no_exporter
        && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Flushes the traces not yet exported when dropped (at the end of `main`).
#[derive(Debug)]
#[must_use = "traces are flushed when this is dropped: keep it until the service stops"]
pub struct TelemetryGuard;

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "traces")]
        otel::shutdown();
    }
}

/// Installs the global subscriber once (later calls, as in tests, do nothing), with the trace
/// exporter when the `OTEL_*` variables ask for it.
pub fn init(service: &'static str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let logs = if json {
        fmt::layer().json().with_current_span(true).boxed()
    } else {
        fmt::layer().boxed()
    };
    let requested = traces_requested(|name| std::env::var(name).ok());
    #[cfg(feature = "traces")]
    let (traces, exporter_error) = if requested {
        match otel::layer(service) {
            Ok(layer) => (Some(layer), None),
            Err(error) => (None, Some(error)),
        }
    } else {
        (None, None)
    };
    #[cfg(not(feature = "traces"))]
    let (traces, exporter_error): (Option<TraceLayer>, Option<anyhow::Error>) = (None, None);
    let installed = tracing_subscriber::registry()
        .with(traces)
        .with(logs.with_filter(filter))
        .try_init();
    if installed.is_ok() {
        tracing::info!(
            service,
            version = env!("CARGO_PKG_VERSION"),
            traces = tracing_enabled(),
            "logging started"
        );
        if let Some(error) = exporter_error {
            tracing::error!(
                "traces are off: the OTLP exporter could not be built from the OTEL_* variables: {error:#}"
            );
        }
        if requested && !cfg!(feature = "traces") {
            tracing::warn!(
                "traces are off: this build has no trace exporter (the `traces` feature)"
            );
        }
    }
    TelemetryGuard
}

/// The exporter, the propagation and the span layer: only in a build with the `traces` feature.
#[cfg(feature = "traces")]
mod otel {
    use std::{collections::HashMap, sync::OnceLock};

    use opentelemetry::{
        propagation::{Extractor, TextMapPropagator},
        trace::TracerProvider as _,
    };
    use opentelemetry_sdk::{
        Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::{Layer, filter::Targets};

    /// The tracer provider, when traces are on.
    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// Whether traces are exported: decided once, at [`super::init`].
    pub fn tracing_enabled() -> bool {
        PROVIDER.get().is_some()
    }

    /// Flushes what is not yet exported.
    pub fn shutdown() {
        if let Some(provider) = PROVIDER.get()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("traces: could not flush the last spans: {error}");
        }
    }

    /// The layer that turns the services' own spans (requests, world calls, store operations)
    /// into OpenTelemetry spans.
    pub fn layer(service: &'static str) -> anyhow::Result<super::TraceLayer> {
        let provider = tracer_provider(service)?;
        let ours = Targets::new()
            .with_target("hello_common", tracing::Level::INFO)
            .with_target("hello_service", tracing::Level::INFO)
            .with_target("world_service", tracing::Level::INFO);
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_filter(ours)
            .boxed();
        let _ = PROVIDER.set(provider);
        Ok(layer)
    }

    fn tracer_provider(service: &'static str) -> anyhow::Result<SdkTracerProvider> {
        if let Ok(protocol) = std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL") {
            anyhow::ensure!(
                protocol.is_empty() || protocol == "http/protobuf",
                "OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: use http/protobuf (port 4318)"
            );
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()?;
        // OTEL_SERVICE_NAME, when set, names the service; OTEL_RESOURCE_ATTRIBUTES add to it.
        let mut resource = Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").map_or(true, |name| name.trim().is_empty()) {
            resource = resource.with_service_name(service);
        }
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build())
    }

    /// Reads W3C trace context from an incoming request's headers.
    struct IncomingHeaders<'a>(&'a actix_web::http::header::HeaderMap);

    impl Extractor for IncomingHeaders<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|value| value.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0
                .keys()
                .map(actix_web::http::header::HeaderName::as_str)
                .collect()
        }
    }

    /// Makes `span` continue the trace named by the request's `traceparent` (and `tracestate`), if
    /// traces are on and it has one; otherwise the span starts a trace of its own.
    pub fn continue_incoming_trace(
        span: &tracing::Span,
        headers: &actix_web::http::header::HeaderMap,
    ) {
        if !tracing_enabled() || !headers.contains_key("traceparent") {
            return;
        }
        let context = TraceContextPropagator::new().extract(&IncomingHeaders(headers));
        let _ = span.set_parent(context);
    }

    /// A `traceparent` alone, as a batched call carries it.
    struct Traceparent<'a>(&'a str);

    impl Extractor for Traceparent<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            (key == "traceparent").then_some(self.0)
        }

        fn keys(&self) -> Vec<&str> {
            vec!["traceparent"]
        }
    }

    /// Makes `span` continue the trace `traceparent` names, if traces are on; an unreadable one
    /// is ignored, as in a header.
    pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
        if !tracing_enabled() {
            return;
        }
        let context = TraceContextPropagator::new().extract(&Traceparent(traceparent));
        let _ = span.set_parent(context);
    }

    /// The `traceparent` naming the current span, for a call in a batch; `None` when traces are
    /// off.
    pub fn current_traceparent() -> Option<String> {
        if !tracing_enabled() {
            return None;
        }
        let mut headers = HashMap::new();
        let context = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&context, &mut headers);
        headers.remove("traceparent")
    }

    /// The W3C trace context headers (`traceparent`, maybe `tracestate`) naming the current span, for
    /// a call to another service; none when traces are off.
    pub fn outgoing_headers() -> Vec<(String, String)> {
        if !tracing_enabled() {
            return Vec::new();
        }
        let mut headers = HashMap::new();
        let context = tracing::Span::current().context();
        TraceContextPropagator::new().inject_context(&context, &mut headers);
        headers.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::traces_requested;

    fn with(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn traces_are_off_unless_an_otlp_endpoint_is_set() {
        assert!(!traces_requested(with(&[])));
        assert!(!traces_requested(with(&[("OTEL_SERVICE_NAME", "x")])));
        assert!(!traces_requested(with(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
        assert!(traces_requested(with(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(traces_requested(with(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces"
        )])));
    }

    #[test]
    fn the_standard_switches_turn_them_off() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(!traces_requested(with(&[
            endpoint,
            ("OTEL_SDK_DISABLED", "true")
        ])));
        assert!(!traces_requested(with(&[
            endpoint,
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
        assert!(traces_requested(with(&[
            endpoint,
            ("OTEL_TRACES_EXPORTER", "otlp")
        ])));
    }
}
