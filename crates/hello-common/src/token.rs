//! Bearer tokens that own a name (RFC 6750), and the only thing the store keeps of them.
//!
//! A token is `hw_` followed by 43 URL-safe base64 characters: 256 bits from the operating
//! system's CSPRNG. The fixed prefix lets secret scanners recognise a leaked token. The store keeps
//! only its SHA-256 ([`TokenHash`]): a slow password hash adds nothing for 256 random bits and
//! would cost every request. Hashes are compared in constant time.
//!
//! Neither type prints its value: `Debug` shows a placeholder, so a token cannot reach a log line
//! by accident. [`Token::reveal`] is the one way to the value, for the answer that shows it once.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every token starts with.
pub const TOKEN_PREFIX: &str = "hw_";
/// Random bytes in a token.
const TOKEN_BYTES: usize = 32;
/// The longest credential an `Authorization` header may carry; longer is a malformed header.
pub const MAX_CREDENTIAL_LENGTH: usize = 256;
/// The query parameter RFC 6750 §2.3 defines for tokens, refused here.
pub const ACCESS_TOKEN_PARAMETER: &str = "access_token";

/// A new token, to be shown once to whoever claimed the name.
pub struct Token(String);

impl Token {
    /// A fresh token from the OS's CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot supply random bytes: no token may be made without them.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
        Self(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The token's value: only for the answer that shows it to its owner.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// What the store keeps.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The SHA-256 of a token: what the store keeps, and what a presented token is compared by.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// The hash of a presented credential (any string; a wrong one simply matches nothing).
    pub fn of(credential: &str) -> Self {
        Self(Sha256::digest(credential.as_bytes()).into())
    }

    /// Whether two hashes are equal, in time that does not depend on where they differ.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Whether two optional hashes are the same: both absent, or both present and equal (in
    /// constant time). A waiting read is keyed by the token its reader presented, or none.
    pub fn same(a: Option<&TokenHash>, b: Option<&TokenHash>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => a.matches(b),
            (None, None) => true,
            _ => false,
        }
    }

    /// Lower-case hex, as stored.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Parses what [`TokenHash::to_hex`] made; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

/// Why an `Authorization` header is malformed (400). Messages never repeat the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationError {
    /// More than one `Authorization` header.
    Repeated,
    /// Not `Bearer <token>` (another scheme, or no credential after it).
    NotBearer,
    /// `Bearer` with an empty credential.
    Empty,
    /// Longer than [`MAX_CREDENTIAL_LENGTH`].
    TooLong { length: usize },
    /// Characters a bearer credential cannot have (RFC 6750's `b64token`).
    BadCharacters,
}

impl fmt::Display for AuthorizationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Repeated => f.write_str("send one Authorization header, not several"),
            Self::NotBearer => f.write_str(
                "the Authorization header must be 'Bearer <token>', with the token its name's claim answered",
            ),
            Self::Empty => f.write_str("the Authorization header has 'Bearer' but no token after it"),
            Self::TooLong { length } => write!(
                f,
                "the token in the Authorization header has {length} characters; a token has at most {MAX_CREDENTIAL_LENGTH}"
            ),
            Self::BadCharacters => f.write_str(
                "the token in the Authorization header has characters no token has; send it exactly as the claim answered it",
            ),
        }
    }
}

impl std::error::Error for AuthorizationError {}

/// Reads the `Authorization` headers of a request (all of them, raw): `Ok(None)` when there is
/// none, the presented token's hash for a well-formed `Bearer` credential (right or wrong: that is
/// for the store to say), an error for a malformed header.
pub fn parse_authorization<'a>(
    mut headers: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<TokenHash>, AuthorizationError> {
    let Some(header) = headers.next() else {
        return Ok(None);
    };
    if headers.next().is_some() {
        return Err(AuthorizationError::Repeated);
    }
    let header = header.trim_ascii();
    let (scheme, credential) = match header.iter().position(|&b| b == b' ') {
        Some(space) => (&header[..space], header[space + 1..].trim_ascii()),
        None => (header, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(AuthorizationError::NotBearer);
    }
    if credential.is_empty() {
        return Err(AuthorizationError::Empty);
    }
    if credential.len() > MAX_CREDENTIAL_LENGTH {
        return Err(AuthorizationError::TooLong {
            length: credential.len(),
        });
    }
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body_end = credential
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |last| last + 1);
    let well_formed = body_end > 0
        && credential[..body_end].iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if !well_formed {
        return Err(AuthorizationError::BadCharacters);
    }
    // Checked above: ASCII only.
    let credential =
        std::str::from_utf8(credential).map_err(|_| AuthorizationError::BadCharacters)?;
    Ok(Some(TokenHash::of(credential)))
}

/// Whether a query string carries a token: an `access_token` parameter (RFC 6750 §2.3), or any
/// value (or bare key) that starts with the token prefix. Such requests are refused (400), and
/// their query strings are never logged.
pub fn query_carries_token(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(key, value)| {
        key.eq_ignore_ascii_case(ACCESS_TOKEN_PARAMETER)
            || key.starts_with(TOKEN_PREFIX)
            || value.starts_with(TOKEN_PREFIX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(headers: &[&str]) -> Result<Option<TokenHash>, AuthorizationError> {
        parse_authorization(headers.iter().map(|header| header.as_bytes()))
    }

    #[test]
    fn tokens_are_prefixed_url_safe_and_256_random_bits() {
        let token = Token::generate();
        let value = token.reveal();
        assert!(value.starts_with(TOKEN_PREFIX), "{value}");
        assert_eq!(value.len(), TOKEN_PREFIX.len() + 43);
        assert!(
            value[TOKEN_PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "URL-safe: {value}"
        );
        assert_ne!(value, Token::generate().reveal(), "fresh every time");
    }

    #[test]
    fn neither_a_token_nor_its_hash_prints_its_value() {
        let token = Token::generate();
        let printed = format!("{token:?} {:?}", token.hash());
        assert!(
            !printed.contains(&token.reveal()[TOKEN_PREFIX.len()..]),
            "{printed}"
        );
        assert!(!printed.contains(&token.hash().to_hex()), "{printed}");
    }

    #[test]
    fn a_presented_token_matches_the_stored_hash_of_the_same_token_only() {
        let token = Token::generate();
        let stored = TokenHash::from_hex(&token.hash().to_hex()).unwrap();
        let presented = parse(&[&format!("Bearer {}", token.reveal())])
            .unwrap()
            .unwrap();
        assert!(presented.matches(&stored));
        let other = Token::generate();
        assert!(!other.hash().matches(&stored));
        assert!(TokenHash::from_hex("not hex").is_none());
        assert!(TokenHash::from_hex(&"g".repeat(64)).is_none());
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_no_header_is_no_token() {
        let token = Token::generate();
        for header in [
            format!("bearer {}", token.reveal()),
            format!("BEARER {}", token.reveal()),
        ] {
            assert!(parse(&[&header]).unwrap().unwrap().matches(&token.hash()));
        }
        assert!(parse(&[]).unwrap().is_none());
        // A well-formed credential that is nobody's token is the store's to refuse (401), not 400.
        assert!(parse(&["Bearer not-a-token"]).unwrap().is_some());
    }

    #[test]
    fn malformed_headers_are_refused_with_a_reason() {
        assert_eq!(
            parse(&["Basic YWxhZGRpbjpvcGVuc2VzYW1l"]).err(),
            Some(AuthorizationError::NotBearer)
        );
        assert_eq!(parse(&["Bearer"]).err(), Some(AuthorizationError::Empty));
        assert_eq!(parse(&["Bearer   "]).err(), Some(AuthorizationError::Empty));
        assert_eq!(
            parse(&["hw_abc"]).err(),
            Some(AuthorizationError::NotBearer)
        );
        assert_eq!(
            parse(&[&format!("Bearer {}", "a".repeat(MAX_CREDENTIAL_LENGTH + 1))]).err(),
            Some(AuthorizationError::TooLong {
                length: MAX_CREDENTIAL_LENGTH + 1
            })
        );
        for bad in [
            "Bearer a b",
            "Bearer a\"b",
            "Bearer ===",
            "Bearer a=b",
            "Bearer é",
        ] {
            assert_eq!(
                parse(&[bad]).err(),
                Some(AuthorizationError::BadCharacters),
                "{bad}"
            );
        }
        assert_eq!(
            parse(&["Bearer a", "Bearer b"]).err(),
            Some(AuthorizationError::Repeated)
        );
        // Messages never repeat the credential.
        let message = AuthorizationError::TooLong { length: 300 }.to_string();
        assert!(!message.contains("aaaa"), "{message}");
    }

    #[test]
    fn tokens_in_query_strings_are_recognised() {
        for query in [
            "access_token=abc",
            "ACCESS_TOKEN=abc",
            "limit=5&access_token=",
            "t=hw_abc",
            "limit=1&x=hw%5Fabc",
            "hw_abc",
        ] {
            assert!(query_carries_token(query), "{query}");
        }
        for query in [
            "",
            "limit=5",
            "from=alice",
            "lease_ms=1000&limit=1",
            "x=whw_",
        ] {
            assert!(!query_carries_token(query), "{query}");
        }
    }
}
