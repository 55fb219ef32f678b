//! `/names/{name}`: claiming a name, replacing its token, and releasing it. The token is made
//! here (256 bits from the OS's CSPRNG), shown once in the answer, and never stored or logged:
//! world-service keeps its SHA-256.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use hello_common::{Name, Problem, observability::RequestId, token::Token};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::hellos::schema::PersonName;
use crate::{
    auth::Credential, routes::openapi::OwnerRefusals, startup::AppState, world_client::Call,
};

/// A claimed name and its token, shown this once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimedName {
    /// The name, as spelled in the claim.
    #[schema(value_type = PersonName, example = "bob")]
    pub name: String,
    /// The token: `hw_` and 43 URL-safe characters. Shown only in this answer: keep it; send it
    /// as `Authorization: Bearer <token>`.
    #[schema(example = "hw_3q2-7wEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    pub token: String,
}

fn parse_name(raw: &str) -> Result<Name, Problem> {
    Name::parse(raw).map_err(|error| Problem::invalid_name("name", &error))
}

/// What rotating and releasing check first: the client's rate, the name, and that a token came
/// (its absence is a failed attempt too). The name is read as an existing claim's: the holder of a
/// claim made before today's name rules refused its name can still replace a leaked token or
/// release it.
fn owner_request(
    request: &HttpRequest,
    state: &AppState,
    raw_name: &str,
    credential: Credential,
) -> Result<(Name, Credential), Problem> {
    state.rate_limit.check(request)?;
    let name = Name::parse_existing_claim(raw_name)
        .map_err(|error| Problem::invalid_name("name", &error))?;
    if credential.0.is_none() {
        return Err(state.charge_failures(
            request,
            Problem::token_required(format!(
                "changing the claim on {name} needs its token, in 'Authorization: Bearer <token>'"
            )),
        ));
    }
    Ok((name, credential))
}

/// The answer that shows a token: never cached, never stored by a browser.
fn shows_token(name: String, token: &Token) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(ClaimedName {
            name,
            token: token.reveal().to_owned(),
        })
}

/// Claim a name: from now on only the holder of its token reads its inbox or sends as it (or
/// as any name that looks like it).
#[utoipa::path(
    post,
    path = "/names/{name}",
    tag = "names",
    params(("name" = PersonName, Path, description = "The name to claim")),
    responses(
        (status = 201, description = "Claimed; the token is shown this once", body = ClaimedName),
        (status = 400, description = "Invalid name; a token in the query string"),
        (status = 409, description = "The name, or a name that looks like it, is claimed already"),
        (status = 429, description = "Too many claims from this client (stricter than other calls); see Retry-After"),
        (status = 503, description = "Store unavailable, or as many names claimed as the store may hold; nothing claimed; see Retry-After"),
        (status = 504, description = "Outcome unknown: claim again; 409 means the first claim went through"),
    )
)]
pub async fn claim(
    request: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    request_id: RequestId,
) -> Result<HttpResponse, Problem> {
    state.rate_limit.check(&request)?;
    state.claim_rate_limit.check(&request)?;
    let name = parse_name(&name)?;
    let token = Token::generate();
    let claimed = state
        .world
        .claim(&name, &token.hash(), &request_id)
        .await
        .map_err(|error| error.into_problem(Call::Claim))?;
    tracing::info!(name = %claimed.name, "name claimed");
    Ok(shows_token(claimed.name, &token))
}

/// Replace the token of a claimed name: the old token stops working at once.
#[utoipa::path(
    post,
    path = "/names/{name}/token",
    tag = "names",
    params(("name" = PersonName, Path, description = "The claimed name")),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new token, shown this once; the old one no longer works", body = ClaimedName),
        OwnerRefusals,
        (status = 504, description = "Outcome unknown: try the old token; 401 means the new one took effect"),
    )
)]
pub async fn rotate(
    request: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    credential: Credential,
    request_id: RequestId,
) -> Result<HttpResponse, Problem> {
    let (name, credential) = owner_request(&request, &state, &name, credential)?;
    let token = Token::generate();
    state
        .world
        .rotate(&name, &state.caller(credential), &token.hash(), &request_id)
        .await
        .map_err(|error| state.charge_failures(&request, error.into_problem(Call::Rotate)))?;
    tracing::info!(%name, "token replaced");
    Ok(shows_token(name.to_string(), &token))
}

/// Release a claimed name: it is free again, and the hellos waiting in its inbox are deleted
/// with it, so that a later owner never reads them.
#[utoipa::path(
    delete,
    path = "/names/{name}",
    tag = "names",
    params(("name" = PersonName, Path, description = "The claimed name")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Released; its waiting hellos are deleted"),
        OwnerRefusals,
        (status = 504, description = "Outcome unknown: repeat the DELETE with the same token"),
    )
)]
pub async fn release(
    request: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
    credential: Credential,
    request_id: RequestId,
) -> Result<HttpResponse, Problem> {
    let (name, credential) = owner_request(&request, &state, &name, credential)?;
    state
        .world
        .release(&name, &state.caller(credential), &request_id)
        .await
        .map_err(|error| state.charge_failures(&request, error.into_problem(Call::Release)))?;
    tracing::info!(%name, "name released");
    Ok(HttpResponse::NoContent().finish())
}
