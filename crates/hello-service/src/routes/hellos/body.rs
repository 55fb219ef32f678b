//! The request body of `POST /hello/{name}`: read within a size and a time limit, then parsed.

use std::time::Duration;

use actix_web::{
    HttpRequest,
    http::header,
    web::{self, Bytes},
};
use futures::StreamExt;
use hello_common::Problem;

use super::schema::HelloBody;

/// The longest time a request body may take to arrive.
const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Bodies over the limit are still read (up to this many bytes) before the 413 is sent: a server
/// that answers and closes while the client (nginx) is still sending makes the client see a reset
/// connection instead of the answer (nginx then turns it into a 5xx).
const DRAIN_LIMIT: usize = 64 * 1024;

/// Reads the body up to `limit` bytes: 413 as soon as it is known to be larger, 408 when it has
/// not arrived within [`BODY_DEADLINE`]. `None` when there is no body.
pub async fn read(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Option<Bytes>, Problem> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let reading = async {
        if let Some(length) = declared.filter(|length| *length > limit) {
            drain(&mut payload, length).await;
            return Err(Problem::body_too_large(length, limit));
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| {
                Problem::malformed_body(format!("the body could not be read: {error}"))
            })?;
            if body.len() + chunk.len() > limit {
                drain(&mut payload, usize::MAX).await;
                return Err(Problem::body_too_large(format!("more than {limit}"), limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((!body.is_empty()).then(|| body.freeze()))
    };
    // A body trickling in byte by byte (slowloris) must not hold a connection for ever: nginx
    // streams bodies through (proxy_request_buffering off), so the deadline is enforced here.
    tokio::time::timeout(BODY_DEADLINE, reading)
        .await
        .unwrap_or_else(|_| {
            Err(Problem::request_timeout(format!(
                "the body did not arrive within {} seconds; send it again in one go",
                BODY_DEADLINE.as_secs()
            )))
        })
}

/// Reads what is left of an oversized body, unless it is larger than [`DRAIN_LIMIT`].
async fn drain(payload: &mut web::Payload, declared: usize) {
    if declared > DRAIN_LIMIT {
        return;
    }
    let mut drained = 0;
    while let Some(Ok(chunk)) = payload.next().await {
        drained += chunk.len();
        if drained > DRAIN_LIMIT {
            return;
        }
    }
}

/// The sender a body names: it must be `application/json` and exactly `{"from": "<name>"}`, or
/// say nothing (only white space, or `{}`), which leaves the sender to the query or the token.
pub fn sender(request: &HttpRequest, body: &Bytes) -> Result<Option<String>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let is_json = content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(Problem::unsupported_media_type(format!(
            "send the body as JSON with the header Content-Type: application/json (it was {content_type:?})"
        )));
    }
    let parsed: HelloBody = serde_json::from_slice(body).map_err(|error| {
        Problem::malformed_body(format!(
            "the body must be a JSON object {{\"from\": \"<name>\"}}: {error}"
        ))
    })?;
    Ok(parsed.from)
}

/// A body that must say nothing: empty (or only white space), or the JSON object `{}`.
pub fn empty_object(body: &Bytes) -> Result<(), Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body) {
        Ok(object) if object.is_empty() => Ok(()),
        _ => Err(Problem::malformed_body(
            "a read takes no body: send none, or the empty JSON object {}",
        )),
    }
}
