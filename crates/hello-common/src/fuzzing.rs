//! The properties the fuzz targets check (`crates/hello-common/fuzz`), kept here so that every
//! input a fuzzer ever found is replayed by `cargo test` on stable Rust
//! (`tests/fuzz_regressions.rs` runs the files in `fuzz/regressions/`).
//!
//! Each function panics when a property fails; for any other input it returns quietly.

use unicode_normalization::UnicodeNormalization;

use serde::Deserialize;

use crate::{IdempotencyKey, Name, name::MAX_NAME_CHARS};

/// The fields of a send's JSON body that the checks look at.
#[derive(Deserialize)]
struct SendBody {
    from: Option<String>,
    idempotency_key: Option<String>,
}

/// Name parsing on arbitrary bytes (as a percent-decoded path would give them): never panics;
/// a name that parses is NFC, 1..=64 characters, free of operators, paths and markup, parses
/// again to itself, and its key is its own key.
pub fn check_name(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(name) = Name::parse(raw) else {
        return;
    };
    let spelling = name.as_str();
    assert!(spelling.nfc().eq(spelling.chars()), "not NFC: {spelling:?}");
    let chars = spelling.chars().count();
    assert!((1..=MAX_NAME_CHARS).contains(&chars), "{chars} characters");
    assert!(
        !spelling.contains(['$', '/', '\\', '<', '>', '"', '\'', '{', '}', '\0', ' ']),
        "a name that could be read as an operator, a path or markup: {spelling:?}"
    );
    assert!(!spelling.starts_with(['.', '_', '-']), "{spelling:?}");
    let again = Name::parse(spelling).expect("a parsed name parses again");
    assert_eq!(again, name);
    // The key is a fixed point: the inbox of the key's spelling is the same inbox, and one inbox
    // has one look-alike key, whichever of its spellings is parsed.
    if let Ok(lower) = Name::parse(name.key()) {
        assert_eq!(lower.key(), name.key(), "{spelling:?}");
        assert_eq!(lower.lookalike_key(), name.lookalike_key(), "{spelling:?}");
    }
    let upper = spelling.to_uppercase();
    if let Ok(upper) = Name::parse(&upper)
        && upper.key() == name.key()
    {
        assert_eq!(upper.lookalike_key(), name.lookalike_key(), "{spelling:?}");
    }
}

/// Request parsing on arbitrary bytes, split as a request is: the first line is the
/// `Idempotency-Key` header, the rest the JSON body of a send. Never panics; whatever parses
/// obeys the rules of the contract.
pub fn check_request(data: &[u8]) {
    let (key, body) = match data.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(key) = std::str::from_utf8(key)
        && let Ok(parsed) = IdempotencyKey::parse(key)
    {
        let text = parsed.as_str();
        assert!(
            (1..=128).contains(&text.len()),
            "key of {} bytes",
            text.len()
        );
        assert!(
            text.bytes().all(|byte| (b'!'..=b'~').contains(&byte)),
            "{text:?}"
        );
    }
    if let Ok(send) = serde_json::from_slice::<SendBody>(body) {
        if let Some(from) = &send.from {
            check_name(from.as_bytes());
        }
        if let Some(key) = send.idempotency_key {
            let _ = IdempotencyKey::parse(&key);
        }
    }
}
