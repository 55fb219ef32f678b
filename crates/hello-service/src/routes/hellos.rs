//! `POST /hello/{name}` and `GET /hello/{name}`.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use actix_web::{
    HttpRequest, HttpResponse,
    body::{BodySize, MessageBody},
    http::header,
    web::{self, Bytes},
};
use futures::StreamExt;
use hello_common::{
    IdempotencyKey, Name, Problem,
    observability::RequestId,
    wire::{DeliveredHello, SendHello, StoredHello},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    config::MAX_LIMIT,
    error::{conflicting_sender, invalid_limit, missing_sender},
    receipts::{Delivery, Receipts},
    startup::AppState,
};

/// A name, as the OpenAPI document describes it: a string of the format `hello-name`, which
/// stands for the rules JSON Schema cannot state (NFC, one script; see [`hello_common::Name`]).
#[derive(Debug)]
pub struct PersonName;

impl utoipa::PartialSchema for PersonName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("hello-name".to_owned())))
            .min_length(Some(1))
            .max_length(Some(64))
            .description(Some(
                "1-64 characters after NFC normalisation: letters and digits of one script (Han \
                 may mix with Hiragana, Katakana, Bopomofo, Hangul and Latin), combining marks, \
                 '.', '_' and '-'; the first a letter or digit. Case-insensitive.",
            ))
            .examples(["bob"])
            .into()
    }
}

impl ToSchema for PersonName {}

/// The `Idempotency-Key` header, as the OpenAPI document describes it.
#[derive(Debug)]
pub struct IdempotencyKeyHeader;

impl utoipa::PartialSchema for IdempotencyKeyHeader {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[!-~]{1,128}$"))
            .examples(["0f8fad5b-d9cb-469f-a165-70867728950e"])
            .into()
    }
}

impl ToSchema for IdempotencyKeyHeader {}

/// The body of `POST /hello/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HelloBody {
    /// Who says hello: a valid name.
    #[schema(value_type = PersonName, example = "alice")]
    pub from: String,
}

/// The answer to `GET /hello/{name}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Inbox {
    /// The name asked about, as spelled in the request.
    #[schema(example = "bob")]
    pub name: String,
    /// The hellos since the last read, oldest first. They are now gone from the inbox.
    pub hellos: Vec<DeliveredHello>,
    /// Hellos still waiting after this answer (read again to get them).
    #[schema(example = 0)]
    pub remaining: u64,
}

/// Query of `POST /hello/{name}`. Unknown parameters are refused rather than ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SendQuery {
    /// Shorthand for the body's `from`, for curl users. If both are given they must be equal.
    #[param(value_type = PersonName, required = false)]
    pub from: Option<String>,
}

/// Query of `GET /hello/{name}`. Unknown parameters are refused rather than ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    /// How many hellos to return at most, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Say hello to `name`.
#[utoipa::path(
    post,
    path = "/hello/{name}",
    tag = "hello",
    params(
        ("name" = PersonName, Path, description = "Who the hello is for: 1-64 characters (after NFC): letters and digits of one script (Han may mix with Hiragana, Katakana, Bopomofo, Hangul and Latin), combining marks, '.', '_', '-'; starts with a letter or digit; case-insensitive"),
        SendQuery,
        ("Idempotency-Key" = Option<IdempotencyKeyHeader>, Header, description = "1-128 visible ASCII characters; repeating a POST with the same key stores nothing new and returns the first answer"),
    ),
    request_body(content = Option<HelloBody>, content_type = "application/json", description = "Optional when `from` is in the query"),
    responses(
        (status = 201, description = "Stored durably", body = StoredHello),
        (status = 400, description = "Invalid name, body, or header", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The recipient's inbox is full", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Idempotency-Key already used for a different hello", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; nothing stored; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn send(
    request: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<SendQuery>,
    request_id: RequestId,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    state.rate_limit.check(&request)?;
    let to = Name::parse(&name).map_err(|error| Problem::invalid_name("to", &error))?;
    let body = read_body(&request, payload, state.max_body_bytes).await?;
    let from = sender(body.as_ref(), &request, query.into_inner().from)?;
    let from = Name::parse(&from).map_err(|error| Problem::invalid_name("from", &error))?;
    let idempotency_key = request
        .headers()
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| {
                    Problem::invalid_idempotency_key(
                        "an Idempotency-Key may only contain visible ASCII characters".to_owned(),
                    )
                })
                .and_then(|raw| {
                    IdempotencyKey::parse(raw).map_err(Problem::invalid_idempotency_key)
                })
        })
        .transpose()?;

    let hello = SendHello {
        from: from.as_str().to_owned(),
        idempotency_key: idempotency_key.map(|key| key.as_str().to_owned()),
    };
    let stored = state.world.send(&to, &hello, &request_id).await?;
    state.hellos_sent.inc();
    Ok(HttpResponse::Created().json(stored))
}

/// Reads the body up to the limit: 413 as soon as it is known to be larger.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Option<Bytes>, Problem> {
    let too_large = |length: String| {
        Problem::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the body has {length} bytes; send at most {limit}"),
        )
        .with_field("body")
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let reading = async {
        if let Some(length) = declared.filter(|length| *length > limit) {
            drain(&mut payload, length).await;
            return Err(too_large(length.to_string()));
        }
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| {
                Problem::malformed_body(format!("the body could not be read: {error}"))
            })?;
            if body.len() + chunk.len() > limit {
                drain(&mut payload, usize::MAX).await;
                return Err(too_large(format!("more than {limit}")));
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
            Err(Problem::new(
                actix_web::http::StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request timeout",
                format!(
                    "the body did not arrive within {} seconds; send it again in one go",
                    BODY_DEADLINE.as_secs()
                ),
            ))
        })
}

/// The longest time a request body may take to arrive.
const BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Bodies over the limit are still read (up to [`DRAIN_LIMIT`]) before the 413 is sent: a
/// server that answers and closes while the client (nginx) is still sending makes the client see
/// a reset connection instead of the answer (nginx then turns it into a 5xx).
const DRAIN_LIMIT: usize = 64 * 1024;

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

/// The sender, from the JSON body or the `from` query parameter (both only if they agree).
fn sender(
    body: Option<&Bytes>,
    request: &HttpRequest,
    query_from: Option<String>,
) -> Result<String, Problem> {
    let body_from = match body {
        None => None,
        Some(body) => {
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
                return Err(Problem::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                    format!(
                        "send the body as JSON with the header Content-Type: application/json \
                         (it was {:?})",
                        content_type
                    ),
                )
                .with_field("body"));
            }
            let parsed: HelloBody = serde_json::from_slice(body).map_err(|error| {
                Problem::malformed_body(format!(
                    "the body must be a JSON object {{\"from\": \"<name>\"}}: {error}"
                ))
            })?;
            Some(parsed.from)
        }
    };
    match (body_from, query_from) {
        (Some(body), Some(query)) if body != query => Err(conflicting_sender(&body, &query)),
        (Some(from), _) | (None, Some(from)) => Ok(from),
        (None, None) => Err(missing_sender()),
    }
}

/// Who said hello to `name` since the last read.
#[utoipa::path(
    get,
    path = "/hello/{name}",
    tag = "hello",
    params(
        ("name" = PersonName, Path, description = "Whose inbox to read: a name, as for POST (case-insensitive)"),
        ReadQuery,
    ),
    responses(
        (status = 200, description = "The hellos since the last read, oldest first; they are removed from the inbox", body = Inbox),
        (status = 400, description = "Invalid name or limit", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Store unavailable; nothing taken; see Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn read(
    request: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<ReadQuery>,
    request_id: RequestId,
) -> Result<HttpResponse, Problem> {
    state.rate_limit.check(&request)?;
    let name = Name::parse(&name).map_err(|error| Problem::invalid_name("name", &error))?;
    let limit = match query.limit.as_deref() {
        None => state.default_limit,
        Some(raw) => raw
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| invalid_limit(raw))?,
    };
    let claim = state.world.claim(&name, limit, &request_id).await?;
    state.hellos_delivered.inc_by(claim.hellos.len() as u64);
    let inbox = Inbox {
        name: name.as_str().to_owned(),
        hellos: claim.hellos,
        remaining: claim.remaining,
    };
    // Serialising plain strings and numbers cannot fail; if it ever did, the claim is not
    // acknowledged and its hellos come back when the lease ends.
    let body = Bytes::from(
        serde_json::to_vec(&inbox)
            .map_err(|error| Problem::internal(format!("cannot encode the answer: {error}")))?,
    );
    let mut response = HttpResponse::Ok();
    response.content_type("application/json");
    Ok(match claim.claim_id {
        None => response.body(body),
        Some(claim_id) => response.body(AcknowledgeWhenSent {
            size: body.len() as u64,
            body: Some(body),
            acknowledgement: Some((
                state.receipts.clone(),
                Delivery::of(&request),
                claim_id,
                request_id,
            )),
        }),
    })
}

/// A response body that hands its claim to [`Receipts`] once it has been written out in full;
/// they acknowledge it when the connection shows the answer was received.
///
/// If the client goes away first, the body is dropped unfinished, nothing is acknowledged, and
/// the hellos come back when the lease ends: delivered at least once, never lost.
struct AcknowledgeWhenSent {
    body: Option<Bytes>,
    size: u64,
    acknowledgement: Option<(Receipts, Delivery, String, RequestId)>,
}

impl MessageBody for AcknowledgeWhenSent {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if let Some(body) = this.body.take() {
            return Poll::Ready(Some(Ok(body)));
        }
        if let Some((receipts, delivery, claim_id, request_id)) = this.acknowledgement.take() {
            receipts.answer_written(delivery, claim_id, request_id);
        }
        Poll::Ready(None)
    }
}
