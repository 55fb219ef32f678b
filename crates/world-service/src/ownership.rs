//! Who may read an inbox, and who may send as a name: decided here, next to the store that
//! keeps the claims, for every replica alike (no cache: each batch looks up its claims afresh, in
//! one lookup, so a rotated or released token stops at once).
//!
//! hello-service parses the `Authorization` header at the edge and passes on only the SHA-256
//! of the token ([`TOKEN_HASH_HEADER`]); the claim's stored hash is compared to it in constant
//! time ([`TokenHash::matches`]).

use actix_web::HttpRequest;
use hello_common::{Name, Problem, token::TokenHash, wire::TOKEN_HASH_HEADER};

use crate::store::claims::{Claims, Found};

/// The presented token's hash, if the request carried one. A malformed value is hello-service's
/// bug, not the client's: it is refused like a wrong token.
pub fn presented_token(request: &HttpRequest) -> Result<Option<TokenHash>, Problem> {
    let Some(value) = request.headers().get(TOKEN_HASH_HEADER) else {
        return Ok(None);
    };
    token_hash(value.to_str().unwrap_or_default()).map(Some)
}

/// A presented token's hash as hello-service passes it (lower-case hex), in
/// [`TOKEN_HASH_HEADER`] or in a batched call.
pub fn token_hash(hex: &str) -> Result<TokenHash, Problem> {
    TokenHash::from_hex(hex)
        .ok_or_else(|| Problem::invalid_token("the token could not be read; send it again"))
}

/// Whether the holder of `presented` may read `name`'s inbox (GET, reliable reads,
/// confirmations): a claimed name (or a look-alike of one) needs the claim's token; an unclaimed
/// one needs none, and takes none, unless `require_claim`. Answers the covering claim's
/// [`Claim::claimed_at`](crate::store::Claim), if any, for [`LeaseRequest::covering_claim`](crate::store::LeaseRequest).
pub fn check_reader(
    claims: &Claims,
    name: &Name,
    presented: Option<TokenHash>,
    require_claim: bool,
) -> Result<Option<i64>, Problem> {
    let claim = claims.covering(name)?.map(|found| &found.claim);
    match (claim, presented) {
        (Some(claim), Some(token)) if claim.token.matches(&token) => Ok(Some(claim.claimed_at)),
        (Some(claim), Some(_)) => Err(Problem::invalid_token(format!(
            "this is not the token of {}; read {name} with the token its claim answered",
            claim.name
        ))),
        (Some(claim), None) if claim.inbox == name.key() => Err(Problem::token_required(format!(
            "{name} is claimed: read it with its token, in 'Authorization: Bearer <token>'"
        ))),
        (Some(claim), None) => Err(Problem::token_required(format!(
            "{name} looks like the claimed name {}, whose claim covers it: read it with that \
             name's token, in 'Authorization: Bearer <token>'",
            claim.name
        ))),
        (None, Some(_)) => Err(Problem::invalid_token(format!(
            "{name} is not claimed, so no token is its token: read it without one, or claim it \
             first (POST /names/{name})"
        ))),
        (None, None) if require_claim => Err(Problem::token_required(format!(
            "on this service an inbox is read only by its owner: claim {name} first \
             (POST /names/{name}), then read it with the token the claim answers"
        ))),
        (None, None) => Ok(None),
    }
}

/// Who a send is from, and whether that is verified: with a token, the token's name (or a
/// look-alike of it, if `from` says so); without one, `from`, unless a claim covers it.
pub fn check_sender(
    claims: &Claims,
    from: Option<Name>,
    presented: Option<TokenHash>,
) -> Result<(Name, bool), Problem> {
    let Some(token) = presented else {
        let from = from.ok_or_else(|| {
            Problem::malformed_body(
                "say who the hello is from: {\"from\": \"<name>\"}, or send the token of your \
                 claimed name in 'Authorization: Bearer <token>'",
            )
        })?;
        if let Some(Found { claim, .. }) = claims.covering(&from)? {
            let which = if claim.inbox == from.key() {
                format!("{from} is claimed")
            } else {
                format!("{from} looks like the claimed name {}", claim.name)
            };
            return Err(Problem::not_your_name(format!(
                "{which}: sending as it needs its token, in 'Authorization: Bearer <token>'"
            )));
        }
        return Ok((from, false));
    };
    let Some(claim) = claims.by_token(&token)? else {
        return Err(Problem::invalid_token(
            "this token is not the token of any claimed name (it may have been rotated, or the \
             name released): send without it, or with your name's current token",
        ));
    };
    let owner = owner_name(&claim.name)?;
    match from {
        None => Ok((owner, true)),
        Some(from) if from.looks_like(&owner) => Ok((from, true)),
        Some(from) => Err(Problem::not_your_name(format!(
            "this token is the token of {owner}; it cannot send as {from}. Leave `from` out, or \
             set it to {owner}"
        ))),
    }
}

/// The name of a stored claim, as a sender. A claim whose name uses characters refused since it
/// was made ([`hello_common::NameError::TooNew`]) can be released but not sent as: a 400 that says
/// why. Any other invalid stored name is the store's fault.
fn owner_name(stored: &str) -> Result<Name, Problem> {
    Name::parse(stored).map_err(|error| match Name::parse_existing_claim(stored) {
        Ok(_) => Problem::invalid_name("from", &error),
        Err(_) => Problem::from(crate::store::StoreError::unavailable(anyhow::anyhow!(
            "a stored claim has an invalid name: {error}"
        ))),
    })
}
