//! The `Idempotency-Key` a client may send with a POST.

use std::fmt;

/// The longest key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// 1 to 128 visible ASCII characters (`!` to `~`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key; the error says what to change.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(format!(
                "an Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters; this one has {}",
                raw.chars().count()
            ));
        }
        if let Some(bad) = raw.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "an Idempotency-Key may only contain visible ASCII characters ('!' to '~'); it contains U+{:04X}",
                bad as u32
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_visible_ascii_up_to_128() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(128)).is_ok());
        assert!(IdempotencyKey::parse("order-42:retry/1").is_ok());
    }

    #[test]
    fn rejects_empty_long_spaces_and_non_ascii() {
        for bad in ["", " ", "a b", "é", "a\tb", &"k".repeat(129)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
