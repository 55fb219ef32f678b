//! Extractor settings that answer every malformed request with a [`Problem`] instead of
//! actix-web's plain-text errors, and the 404 and 405 answers of both services.

use actix_web::{
    HttpRequest, HttpResponse,
    error::{JsonPayloadError, PathError, QueryPayloadError},
    web,
};

use super::Problem;

/// JSON bodies up to `limit` bytes, `application/json` only.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(true)
        .error_handler(move |error, _request| json_problem(&error, limit).into())
}

fn json_problem(error: &JsonPayloadError, limit: usize) -> Problem {
    match error {
        JsonPayloadError::OverflowKnownLength { length, .. } => {
            Problem::body_too_large(length, limit)
        }
        JsonPayloadError::Overflow { .. } => {
            Problem::body_too_large(format!("more than {limit}"), limit)
        }
        JsonPayloadError::ContentType => Problem::unsupported_media_type(
            "send the body as JSON with the header Content-Type: application/json",
        ),
        JsonPayloadError::Deserialize(error) => Problem::malformed_body(format!(
            "the body is not the JSON this endpoint takes: {error}"
        )),
        other => Problem::malformed_body(format!("the body could not be read: {other}")),
    }
}

/// Query strings that do not parse become a 400 naming the parameter.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error: QueryPayloadError, _: &HttpRequest| {
        Problem::invalid_query(format!("the query string is not valid: {error}")).into()
    })
}

/// Path segments that do not parse become a 400.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error: PathError, _: &HttpRequest| {
        Problem::invalid_path(format!("the path is not valid: {error}")).into()
    })
}

/// Default service: 404 for unknown paths as problem+json.
pub async fn not_found(request: HttpRequest) -> HttpResponse {
    Problem::not_found(request.path()).to_response()
}

/// A resource at `path` answering `methods` (e.g. `"GET, POST"`), whose other methods get a
/// 405 problem with the `Allow` header RFC 9110 requires.
pub fn resource(path: &str, methods: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |request: HttpRequest| async move {
        let mut response =
            Problem::method_not_allowed(request.method().as_str(), request.path()).to_response();
        response.headers_mut().insert(
            actix_web::http::header::ALLOW,
            actix_web::http::header::HeaderValue::from_static(methods),
        );
        response
    }))
}
