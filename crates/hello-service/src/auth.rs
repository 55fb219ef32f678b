//! Tokens at the edge: the `Authorization: Bearer <token>` header parsed once (a malformed one
//! is a 400), tokens in query strings refused (400), and failed attempts charged to the
//! client's rate limit. Only the token's SHA-256 goes further (to world-service, which decides
//! what it may do); the token itself is never logged nor stored.

use std::future::{Ready, ready};

use actix_web::{
    Error, FromRequest, HttpRequest,
    body::{EitherBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::header::AUTHORIZATION,
    middleware::Next,
};
use hello_common::{
    Problem,
    token::{TokenHash, parse_authorization, query_carries_token},
};

/// The token a request presented, as its hash; `None` without an `Authorization` header.
#[derive(Debug, Clone, Copy)]
pub struct Credential(pub Option<TokenHash>);

impl FromRequest for Credential {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let headers = request
            .headers()
            .get_all(AUTHORIZATION)
            .map(|value| value.as_bytes());
        ready(
            parse_authorization(headers)
                .map(Credential)
                .map_err(|error| Problem::bad_authorization(error.to_string())),
        )
    }
}

/// Middleware: refuses any request whose query string carries a token (an `access_token`
/// parameter, or a value with the token prefix), before a handler or a query extractor sees it.
/// Logs record route patterns, never query strings, so the token is not kept here either.
pub async fn refuse_tokens_in_queries(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if query_carries_token(request.query_string()) {
        let refusal = Problem::token_in_query().to_response();
        return Ok(request.into_response(refusal).map_into_right_body());
    }
    Ok(next.call(request).await?.map_into_left_body())
}

/// Whether a problem is a failed attempt to use a name: a wrong or missing token (401), or
/// acting as a name that is not the caller's (403). Such answers cost the client extra on its
/// rate limit, so that guessing tokens is slow.
pub fn is_failed_attempt(problem: &Problem) -> bool {
    matches!(problem.status, 401 | 403)
}
