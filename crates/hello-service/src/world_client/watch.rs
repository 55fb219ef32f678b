//! The two calls of this process's watch session with world-service ([`crate::waiting`]; the
//! protocol: [`hello_common::wire::watches`]). Neither goes through the batches: one process
//! makes one change at a time and holds one wakes call.

use std::time::Duration;

use hello_common::{
    observability::RequestId,
    problem::PROBLEM_JSON,
    wire::{Wakes, WatchChange, paths},
};
use reqwest::Method;

use super::WorldClient;

/// The problem type world answers for a session it does not know.
const UNKNOWN_WATCH: &str = "/problems/unknown-watch";

/// Why a call of the watch session failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchCallError {
    /// world does not know the session (it restarted, or forgot an idle one): send the whole
    /// set again.
    #[error("world-service does not know this watch session")]
    UnknownSession,
    /// Anything else: world unreachable, stopping, at its cap, or an answer that never came
    /// (the change may or may not have been applied).
    #[error("{0}")]
    Failed(String),
}

/// A watch call's answer when it succeeded.
async fn answer(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, WatchCallError> {
    let response = sent.map_err(|error| WatchCallError::Failed(error.to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let is_problem = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let body = response.text().await.unwrap_or_default();
    let problem_type = is_problem
        .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|problem| problem.get("type")?.as_str().map(str::to_owned));
    if problem_type.as_deref() == Some(UNKNOWN_WATCH) {
        return Err(WatchCallError::UnknownSession);
    }
    Err(WatchCallError::Failed(format!(
        "world-service answered {status}: {body}"
    )))
}

impl WorldClient {
    /// Changes what this process's watch session watches.
    pub async fn change_watch(
        &self,
        session: &str,
        change: &WatchChange,
    ) -> Result<(), WatchCallError> {
        let request = self
            .http
            .request(Method::PUT, &paths::watch(session), &RequestId::generate())
            .json(change);
        answer(request.send().await).await.map(drop)
    }

    /// The inboxes of this process's watch session woken since the last answer, held by world
    /// until there are some or `wait` has passed.
    pub async fn wakes(&self, session: &str, wait: Duration) -> Result<Wakes, WatchCallError> {
        let path = format!("{}?wait_ms={}", paths::wakes(session), wait.as_millis());
        let request = self
            .http
            .request(Method::GET, &path, &RequestId::generate())
            // Held for `wait` by design; the usual timeout applies to what comes after.
            .timeout(wait + self.timeout);
        answer(request.send().await)
            .await?
            .json::<Wakes>()
            .await
            .map_err(|error| WatchCallError::Failed(format!("an unreadable wakes answer: {error}")))
    }
}
