//! Request ids, access logs and Prometheus metrics, the same in both services.
//!
//! Every request gets an id: the `X-Request-Id` Nginx set (or a client sent, if it is 1 to 128
//! visible ASCII characters), else a new UUIDv7. The id is on the request's tracing span, so it
//! appears in every log line of that request; it is echoed in the response and forwarded by
//! hello-service to world-service, so one id follows a request through the pod.

use std::{
    future::{Ready, ready},
    time::Instant,
};

use actix_web::{
    Error, FromRequest, HttpMessage, HttpRequest, HttpResponse,
    body::MessageBody,
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use tracing::Instrument;

/// The header that carries the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A new id, for work that no incoming request started (unique, time-ordered).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

impl FromRequest for RequestId {
    type Error = Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = request
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(RequestId::generate);
        ready(Ok(id))
    }
}

/// A service's metrics registry with the HTTP and process metrics every service has; each service
/// registers its own metrics on [`Metrics::registry`]. Names are prefixed with the service (`hello_`,
/// `world_`) so that both can be served from one scrape.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl Metrics {
    /// A registry whose metric names start with `prefix_`.
    pub fn new(prefix: &str, version: &str) -> Self {
        let registry =
            Registry::new_custom(Some(prefix.to_owned()), None).unwrap_or_else(|_| Registry::new());
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}"));
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer HTTP requests",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route", "method"],
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}"));
        let build_info = IntGauge::with_opts(
            Opts::new(
                "build_info",
                "Always 1; the labels say which build is running",
            )
            .const_label("version", version),
        )
        .unwrap_or_else(|error| unreachable!("static metric definition: {error}"));
        build_info.set(1);
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(build_info),
        ] {
            let _ = registry.register(collector);
        }
        // Memory, CPU, open files and threads of this process (Linux: read from /proc). Under the
        // registry's prefix, so hello's /metrics, which carries world's too, holds one family per
        // process: hello_process_resident_memory_bytes beside world_process_resident_memory_bytes.
        #[cfg(target_os = "linux")]
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Self {
            registry,
            requests,
            latency,
        }
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Counts an answer, and its time unless `seconds` is `None` (see [`Waited`]).
    fn observe(&self, route: &str, method: &str, status: u16, seconds: Option<f64>) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        if let Some(seconds) = seconds {
            self.latency
                .with_label_values(&[route, method])
                .observe(seconds);
        }
    }
}

/// Set in an answer's extensions by a read that waited for a hello (`wait`): its time is mostly
/// the wait, up to 20 s, so it is counted but left out of the latency histogram (whose alert and
/// panel would otherwise read the waits); `hello_wait_wake_seconds` measures those reads.
#[derive(Debug, Clone, Copy)]
pub struct Waited;

/// Middleware (`from_fn(observe)`): request id, span, access log line and HTTP metrics.
/// Needs `web::Data<Metrics>` in the app data.
pub async fn observe(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|value| {
            !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    // The route pattern, not the path, keeps label cardinality bounded.
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let metrics = request.app_data::<web::Data<Metrics>>().cloned();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        %route,
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    if crate::telemetry::tracing_enabled() {
        // The span's name in the trace, and the caller's trace continued (W3C traceparent).
        span.record("otel.name", format!("{method} {route}"));
        span.record("otel.kind", "server");
        crate::telemetry::continue_incoming_trace(&span, request.headers());
    }

    let mut response = next.call(request).instrument(span.clone()).await?;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    if let Some(metrics) = metrics {
        let waited = response.response().extensions().get::<Waited>().is_some();
        metrics.observe(
            &route,
            method,
            status,
            (!waited).then_some(elapsed.as_secs_f64()),
        );
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "answered"
        );
    });
    Ok(response)
}

/// The methods the API, the operations endpoints and world's internal API (`PUT` of a watch)
/// use; every other method is `other` in labels and logs, so that no request can add a metric
/// series (a method is any token a client sends).
pub const METHOD_LABELS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "other"];

/// A request's method as a label: one of [`METHOD_LABELS`].
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    METHOD_LABELS
        .iter()
        .find(|label| **label == method.as_str())
        .copied()
        .unwrap_or("other")
}

/// `GET /metrics` of a service with nothing to add.
pub async fn metrics_endpoint(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}
