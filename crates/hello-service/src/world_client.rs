//! The pod's world-service, over localhost: a pooled keep-alive client with timeouts.
//!
//! Nothing here retries a lease: a retried lease could take a second page of hellos while the
//! first is still leased. Acknowledgements are retried: acknowledging a lease twice is harmless.

use std::time::Duration;

use actix_web::http::StatusCode;
use hello_common::{
    Name, Problem,
    observability::{REQUEST_ID_HEADER, RequestId},
    problem::PROBLEM_JSON,
    wire::{Acknowledgements, Lease, SendHello, StoredHello, paths},
};

/// How long a client should wait before retrying when world-service is unreachable.
pub const RETRY_AFTER_UNREACHABLE: Duration = Duration::from_secs(1);

/// A handle on world-service; cheap to clone.
#[derive(Debug, Clone)]
pub struct WorldClient {
    http: reqwest::Client,
    base_url: String,
}

/// Why a call to world-service did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// world-service answered with a problem: pass it on to the client as it is.
    #[error("{0}")]
    Answered(Problem),
    /// world-service could not be reached or answered nonsense.
    #[error("world-service is unreachable: {0}")]
    Unreachable(String),
}

impl From<WorldError> for Problem {
    fn from(error: WorldError) -> Self {
        match error {
            WorldError::Answered(problem) => problem,
            WorldError::Unreachable(cause) => {
                tracing::warn!(%cause, "world-service unreachable");
                Problem::unavailable(
                    "the inbox service of this pod is not answering; nothing was changed. Retry shortly",
                    RETRY_AFTER_UNREACHABLE,
                )
            }
        }
    }
}

impl WorldClient {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8082`) with a per-request `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(1)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Stores a hello; answers once it is durable.
    pub async fn send(
        &self,
        to: &Name,
        hello: &SendHello,
        request_id: &RequestId,
    ) -> Result<StoredHello, WorldError> {
        let url = format!("{}{}", self.base_url, paths::send(&encode(to.as_str())));
        let request = self.http.post(url).header(REQUEST_ID_HEADER, &request_id.0);
        decode(request.json(hello).send().await).await
    }

    /// Leases up to `limit` of the oldest hellos of `name`. Never retried.
    pub async fn lease(
        &self,
        name: &Name,
        limit: u32,
        request_id: &RequestId,
    ) -> Result<Lease, WorldError> {
        let url = format!(
            "{}{}?limit={limit}",
            self.base_url,
            paths::lease(&encode(name.as_str()))
        );
        let request = self.http.post(url).header(REQUEST_ID_HEADER, &request_id.0);
        decode(request.send().await).await
    }

    /// Acknowledges leases whose answers settled (at most `MAX_ACKNOWLEDGEMENTS`), retrying a
    /// few times. Giving up costs duplicates, not losses: the leases run out and their hellos are
    /// delivered again.
    pub async fn acknowledge(&self, lease_ids: Vec<String>, request_id: &RequestId) {
        let url = format!("{}{}", self.base_url, paths::ACKNOWLEDGE);
        let leases = lease_ids.len();
        let body = Acknowledgements { leases: lease_ids };
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            let request = self
                .http
                .post(&url)
                .header(REQUEST_ID_HEADER, &request_id.0)
                .json(&body);
            match request.send().await {
                Ok(response) if response.status().is_success() => return,
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
    }

    /// world-service's `/v1/info`.
    pub async fn info(&self, request_id: &RequestId) -> Result<serde_json::Value, WorldError> {
        let url = format!("{}{}", self.base_url, paths::INFO);
        decode(
            self.http
                .get(url)
                .header(REQUEST_ID_HEADER, &request_id.0)
                .send()
                .await,
        )
        .await
    }

    /// world-service's `/metrics` text.
    pub async fn metrics(&self) -> Result<String, WorldError> {
        let url = format!("{}/metrics", self.base_url);
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|error| WorldError::Unreachable(error.to_string()))?;
        if !response.status().is_success() {
            return Err(WorldError::Unreachable(format!(
                "metrics answered {}",
                response.status()
            )));
        }
        response
            .text()
            .await
            .map_err(|error| WorldError::Unreachable(error.to_string()))
    }

    /// Whether world-service is ready (and so its store answers).
    pub async fn ready(&self) -> Result<(), WorldError> {
        let url = format!("{}/readyz", self.base_url);
        decode::<serde_json::Value>(self.http.get(url).send().await)
            .await
            .map(|_| ())
    }
}

/// Percent-encodes a path segment.
fn encode(segment: &str) -> String {
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

async fn decode<T: serde::de::DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, WorldError> {
    let response = response.map_err(|error| WorldError::Unreachable(error.to_string()))?;
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|error| WorldError::Unreachable(format!("unreadable answer: {error}")));
    }
    let is_problem = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let body = response.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<Problem>(&body) {
        Ok(problem) if is_problem && status.is_client_error() => Err(WorldError::Answered(problem)),
        Ok(problem) if is_problem && status == StatusCode::SERVICE_UNAVAILABLE.as_u16() => {
            Err(WorldError::Answered(problem))
        }
        _ => Err(WorldError::Unreachable(format!(
            "world-service answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn encodes_every_byte_outside_the_unreserved_set() {
        assert_eq!(encode("bob"), "bob");
        assert_eq!(encode("Zoë"), "Zo%C3%AB");
        assert_eq!(encode("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
    }
}
