//! The public bodies, queries and formats of `/hello/{name}`, as the OpenAPI document shows them.

use hello_common::wire::DeliveredHello;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

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
    /// Who says hello: a valid name. May be left out (`{}`) when the token of a claimed name
    /// comes in Authorization: the sender is then that name.
    #[serde(default)]
    #[schema(value_type = Option<PersonName>, example = "alice")]
    pub from: Option<String>,
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
    /// With an empty inbox, how long to wait for a hello, in seconds: 0 to 20 (default 0,
    /// answer at once). The answer comes as soon as a hello can be taken, or with an empty list
    /// when the time is up.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 20)]
    pub wait: Option<String>,
}

/// Query of `POST /hello/{name}/reads`. Unknown parameters are refused rather than ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ReliableReadQuery {
    /// How many hellos to lease at most, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// How long the hellos stay hidden from other readers without a confirmation, in
    /// milliseconds: 100 to 3600000 (default: the service's lease, 30000).
    #[param(value_type = Option<u64>, minimum = 100, maximum = 3600000)]
    pub lease_ms: Option<String>,
    /// With an empty inbox, how long to wait for a hello, in seconds: 0 to 20 (default 0,
    /// answer at once). The answer comes as soon as a hello can be taken, or with no hellos
    /// and no receipt when the time is up.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 20)]
    pub wait: Option<String>,
}

/// The answer to `POST /hello/{name}/reads`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReliableRead {
    /// Confirm with `DELETE /hello/{name}/reads/{receipt}` once the hellos are safe; `null`
    /// when nothing was taken.
    #[schema(example = "019ab6e0-7c3a-7f21-9d2e-5b8c1a0e4f11")]
    pub receipt: Option<String>,
    /// The name asked about, as spelled in the request.
    #[schema(example = "bob")]
    pub name: String,
    /// The oldest waiting hellos, now hidden from every other reader until the lease runs out.
    pub hellos: Vec<DeliveredHello>,
    /// Hellos still waiting after these (read again to get them).
    #[schema(example = 0)]
    pub remaining: u64,
    /// When the lease runs out (RFC 3339, UTC, milliseconds): unconfirmed hellos then come back,
    /// in their order. `null` when nothing was taken.
    #[schema(example = "2026-11-24T10:00:30.123Z")]
    pub lease_expires_at: Option<String>,
}
