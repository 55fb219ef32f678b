//! The requests themselves: a pooled keep-alive HTTP client on world's Unix socket (or a TCP
//! address), with timeouts, and how world's answers are read.

use std::time::Duration;

use actix_web::http::StatusCode;
use hello_common::{
    Problem,
    observability::{REQUEST_ID_HEADER, RequestId},
    problem::PROBLEM_JSON,
    telemetry,
    wire::{Acknowledgements, Batch, Outcomes},
};
use reqwest::Method;
use serde::{Serialize, de::DeserializeOwned};

use crate::{batching::BatchOutcomes, world_error::WorldError};

/// How `HELLO_WORLD_URL` names a Unix socket: `unix:/run/world/world.sock`.
pub const UNIX_SCHEME: &str = "unix:";

/// Idle connections to world-service kept for reuse, per HTTP worker (each has its own client):
/// as many as each of the pod's Nginx workers keeps to hello-service (`keepalive 256`), so that
/// every request Nginx can have in flight finds one.
/// With fewer, each request beyond them opened a connection, and the pool closed it again after
/// (`bench/compare.py` at 256 connections, 3 rounds, 64 against 256: GET 126%, POST 111% of the
/// requests per second, both services' peak RSS about 2.5 MiB lower; no change at 64).
const IDLE_CONNECTIONS_TO_WORLD: usize = 256;

/// How many times an acknowledgement is tried before it gives up.
const ACKNOWLEDGEMENT_ATTEMPTS: u32 = 5;

/// world-service over HTTP. Cheap to clone; clones share the connections.
#[derive(Debug, Clone)]
pub struct WorldHttp {
    http: reqwest::Client,
    base_url: String,
}

impl WorldHttp {
    /// A client for `world_url` with a per-request `timeout`: `unix:<path>` for world's Unix
    /// socket (the pod's way), or an HTTP URL such as `http://127.0.0.1:8082`.
    pub fn new(world_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(IDLE_CONNECTIONS_TO_WORLD)
            .no_proxy();
        let (http, base_url) = match world_url.strip_prefix(UNIX_SCHEME) {
            // Every request goes to the socket; the URL's host only fills the Host header.
            Some(socket) => (
                builder.unix_socket(socket).build()?,
                "http://world-service".to_owned(),
            ),
            None => (
                builder.tcp_nodelay(true).build()?,
                world_url.trim_end_matches('/').to_owned(),
            ),
        };
        Ok(Self { http, base_url })
    }

    /// A request to `path` carrying the request id and, when traces are on, the W3C trace
    /// context of the current span.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        request_id: &RequestId,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .header(REQUEST_ID_HEADER, &request_id.0);
        for (name, value) in telemetry::outgoing_headers() {
            request = request.header(name, value);
        }
        request
    }

    /// A GET of `path` with no request id (probes and metrics).
    pub async fn get(&self, path: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
    }

    /// One batch of `calls` to `path`: world's outcome for each, in their order, made into what
    /// the caller gets by `outcome`.
    pub async fn batch<T: Serialize, O: DeserializeOwned, R>(
        &self,
        path: &str,
        calls: Vec<T>,
        outcome: fn(O) -> Result<R, WorldError>,
    ) -> BatchOutcomes<R> {
        let count = calls.len();
        let request = self
            .request(Method::POST, path, &RequestId::generate())
            .json(&Batch { calls });
        // A batch refused as a whole carried nothing out, and its calls are not at fault: the
        // client's own terms are judged call by call. So no caller gets world's refusal (a 413 of
        // a batch made too large by other clients' calls would be theirs); each gets a 503.
        let answer: Outcomes<O> =
            decode(request.send().await)
                .await
                .map_err(|error| match error {
                    WorldError::Answered(problem) => {
                        tracing::error!(path, status = problem.status, detail = %problem.detail, "world refused a whole batch");
                        WorldError::Unreachable(format!(
                            "world refused the batch: {} {}",
                            problem.status, problem.detail
                        ))
                    }
                    other => other,
                })?;
        if answer.outcomes.len() != count {
            return Err(WorldError::NoAnswer(format!(
                "world-service answered {} outcomes for {count} calls",
                answer.outcomes.len()
            )));
        }
        Ok(answer.outcomes.into_iter().map(outcome).collect())
    }

    /// Acknowledges leases whose answers settled, trying a few times. Giving up costs
    /// duplicates, not losses: the leases run out and their hellos are delivered again.
    pub async fn acknowledge(&self, path: &str, lease_ids: Vec<String>) -> BatchOutcomes<()> {
        let leases = lease_ids.len();
        let body = Acknowledgements { leases: lease_ids };
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=ACKNOWLEDGEMENT_ATTEMPTS {
            let request = self
                .request(Method::POST, path, &RequestId::generate())
                .json(&body);
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return Ok(vec![Ok(()); leases]);
                }
                Ok(response) => {
                    tracing::warn!(attempt, status = %response.status(), leases, "acknowledgement refused");
                }
                Err(error) => {
                    tracing::warn!(attempt, %error, leases, "acknowledgement failed");
                }
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        tracing::error!(
            leases,
            "acknowledgement gave up: these hellos will be delivered again when their leases end"
        );
        Err(WorldError::NoAnswer("acknowledgement gave up".to_owned()))
    }
}

/// Percent-encodes a path segment.
pub fn encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// A 204, or world's problem.
pub async fn no_content(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<(), WorldError> {
    match response {
        Ok(response) if response.status() == StatusCode::NO_CONTENT.as_u16() => Ok(()),
        other => decode::<serde_json::Value>(other).await.map(|_| ()),
    }
}

/// A success's JSON body, or world's problem.
pub async fn decode<T: DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, WorldError> {
    let response = response.map_err(request_failed)?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|error| WorldError::NoAnswer(format!("unreadable answer: {error}")));
    }
    let is_problem = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<Problem>(&body) {
        Ok(problem) if is_problem => Err(refused(problem)),
        _ => Err(WorldError::NoAnswer(format!(
            "world-service answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

/// Sorts a failed request: refused before it was sent, or maybe carried out.
fn request_failed(error: reqwest::Error) -> WorldError {
    if error.is_connect() {
        WorldError::Unreachable(error.to_string())
    } else {
        WorldError::NoAnswer(error.to_string())
    }
}

/// world's problem (answering a request, or one call of a batch): passed on as it is when the
/// client can act on it (a 4xx; a 503, nothing was done, or a 504, the store's outcome is
/// unknown, each with world's own account of what is safe); any other is an answer nobody
/// understood.
pub fn refused(problem: Problem) -> WorldError {
    let status = problem.status;
    let passed_on = (400..500).contains(&status)
        || status == StatusCode::SERVICE_UNAVAILABLE.as_u16()
        || status == StatusCode::GATEWAY_TIMEOUT.as_u16();
    if passed_on {
        WorldError::Answered(problem)
    } else {
        WorldError::NoAnswer(format!(
            "world-service answered {status}: {}",
            problem.detail
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, content_type: &str, body: &str) -> reqwest::Response {
        http::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(body.to_owned())
            .unwrap()
            .into()
    }

    #[tokio::test]
    async fn worlds_own_account_of_an_unknown_outcome_is_passed_on() {
        let problem = Problem::outcome_unknown(
            "send it again with the same Idempotency-Key",
            Duration::from_secs(1),
        );
        let body = serde_json::to_string(&problem).unwrap();
        let decoded = decode::<serde_json::Value>(Ok(answer(504, PROBLEM_JSON, &body))).await;
        assert!(
            matches!(&decoded, Err(WorldError::Answered(passed)) if *passed == problem),
            "{decoded:?}"
        );
        // A 504 that is not world's problem (a proxy's page) is an answer nobody understood.
        let decoded =
            decode::<serde_json::Value>(Ok(answer(504, "text/html", "<h1>504</h1>"))).await;
        assert!(
            matches!(decoded, Err(WorldError::NoAnswer(_))),
            "{decoded:?}"
        );
    }

    #[test]
    fn encodes_every_byte_outside_the_unreserved_set() {
        assert_eq!(encode("bob"), "bob");
        assert_eq!(encode("Zoë"), "Zo%C3%AB");
        assert_eq!(encode("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
    }
}
