//! Claiming, rotating and releasing names. hello-service makes the tokens and shows them once;
//! world-service sees and stores only their SHA-256.

use actix_web::{HttpRequest, HttpResponse, web};
use hello_common::{
    Name, Problem,
    token::TokenHash,
    wire::{ClaimName, Claimed, RotateToken},
};

use crate::{ownership::presented_token, startup::AppState, store::ClaimChange};

fn parse_name(raw: &str) -> Result<Name, Problem> {
    Name::parse(raw).map_err(|error| Problem::invalid_name("name", &error))
}

/// A name as an existing claim's, for rotating and releasing: the holder of a claim made before
/// today's name rules refused its name can still replace its token or release it.
fn parse_claimed_name(raw: &str) -> Result<Name, Problem> {
    Name::parse_existing_claim(raw).map_err(|error| Problem::invalid_name("name", &error))
}

fn parse_hash(hex: &str, field: &str) -> Result<TokenHash, Problem> {
    TokenHash::from_hex(hex).ok_or_else(|| {
        Problem::malformed_body(format!("`{field}` must be 64 lower-case hex digits"))
    })
}

/// The current token, which rotating and releasing need.
fn current_token(request: &HttpRequest, name: &Name) -> Result<TokenHash, Problem> {
    presented_token(request)?.ok_or_else(|| {
        Problem::token_required(format!(
            "changing the claim on {name} needs its token, in 'Authorization: Bearer <token>'"
        ))
    })
}

fn answer(change: ClaimChange, name: &Name) -> Result<HttpResponse, Problem> {
    match change {
        ClaimChange::Done => Ok(HttpResponse::NoContent().finish()),
        ClaimChange::NotClaimed => Err(Problem::name_not_claimed(format!(
            "{name} is not claimed (a name that only looks like a claimed one is not that name): \
             nothing to change"
        ))),
        ClaimChange::WrongToken => Err(Problem::invalid_token(format!(
            "this is not the token of {name}"
        ))),
    }
}

/// `POST /v1/names/{name}`: claims the name for the token whose hash the body carries.
pub async fn claim(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<ClaimName>,
) -> Result<HttpResponse, Problem> {
    let name = parse_name(&name)?;
    let token = parse_hash(&body.token_sha256, "token_sha256")?;
    let _timer = state.time_store("claim");
    state.store.claim_name(&name, token).await?;
    // Readers of the inboxes it covers now need its token.
    state.watches.wake_lookalike(name.lookalike_key());
    Ok(HttpResponse::Created().json(Claimed {
        name: name.to_string(),
    }))
}

/// `POST /v1/names/{name}/token`: replaces the name's token (the current one presented).
pub async fn rotate(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
    body: web::Json<RotateToken>,
) -> Result<HttpResponse, Problem> {
    let name = parse_claimed_name(&name)?;
    let current = current_token(&request, &name)?;
    let new = parse_hash(&body.new_token_sha256, "new_token_sha256")?;
    let _timer = state.time_store("rotate");
    let change = state.store.rotate_token(&name, &current, new).await?;
    // Readers waiting with the old token are answered 401 now.
    state.watches.wake_lookalike(name.lookalike_key());
    answer(change, &name)
}

/// `DELETE /v1/names/{name}`: frees the name (its token presented) and deletes its waiting
/// hellos.
pub async fn release(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let name = parse_claimed_name(&name)?;
    let current = current_token(&request, &name)?;
    let _timer = state.time_store("release");
    let change = state.store.release_name(&name, &current).await?;
    // Readers waiting with its token are answered 401 now.
    state.watches.wake_lookalike(name.lookalike_key());
    answer(change, &name)
}
