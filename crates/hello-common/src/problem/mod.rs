//! RFC 9457 problem details: every error either service answers is one of these, served as
//! `application/problem+json`, with a `detail` that tells a person what to change.

use std::time::Duration;

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The kind of a 401 for a token that is not the name's token (RFC 6750 `invalid_token`).
const INVALID_TOKEN: &str = "/problems/invalid-token";

/// An error as the client sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Problem {
    /// Identifies the kind of problem, e.g. `/problems/invalid-name`.
    #[serde(rename = "type")]
    #[schema(example = "/problems/invalid-name")]
    pub kind: String,
    /// Short summary of the kind of problem.
    #[schema(example = "Invalid name")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong with this request and how to fix it.
    #[schema(example = "a name must start with a letter or a digit, not '$' (U+0024)")]
    pub detail: String,
    /// The request field at fault (`to`, `from`, `limit`, `Idempotency-Key`, `body`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Seconds to wait before retrying (also sent as the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl Problem {
    /// A problem of kind `/problems/{slug}`. Private: every kind either service answers has its
    /// named constructor in [`kinds`], so each kind's status, slug, title and field are written once.
    fn new(status: StatusCode, slug: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Names the request field at fault, so a form can show the message next to it.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    /// Asks the client to retry after `delay` (rounded up to whole seconds, at least 1).
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The HTTP status, falling back to 500 for a malformed one.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response: problem+json body, `Retry-After` when set.
    pub fn to_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        // RFC 6750 §3: a 401 says which scheme to use, and whether the token sent was wrong.
        if self.status == StatusCode::UNAUTHORIZED.as_u16() {
            let challenge = if self.kind == INVALID_TOKEN {
                r#"Bearer realm="hello", error="invalid_token""#
            } else {
                r#"Bearer realm="hello""#
            };
            response.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        response.body(serde_json::to_string(self).unwrap_or_default())
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl actix_web::ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        Problem::status_code(self)
    }

    fn error_response(&self) -> HttpResponse {
        self.to_response()
    }
}

/// Extractor settings that answer every malformed request with a [`Problem`] instead of
/// actix-web's plain-text errors.
pub mod extractors;
mod kinds;

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(problem: &Problem) -> Option<String> {
        problem
            .to_response()
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|value| value.to_str().unwrap_or_default().to_owned())
    }

    #[test]
    fn a_401_names_the_bearer_scheme_and_says_when_the_token_was_wrong() {
        assert_eq!(
            challenge(&Problem::token_required("bob is claimed")).as_deref(),
            Some(r#"Bearer realm="hello""#)
        );
        assert_eq!(
            challenge(&Problem::invalid_token("not bob's token")).as_deref(),
            Some(r#"Bearer realm="hello", error="invalid_token""#)
        );
        assert_eq!(challenge(&Problem::not_your_name("bob is claimed")), None);
    }
}
