//! A person's name, parsed once at the edge.
//!
//! Rules (from the product contract): 1 to 64 characters after Unicode NFC normalisation; letters
//! and digits of any script, combining marks, `.`, `_` and `-`; the first character a letter or a
//! digit. Two names that differ only in case are the same inbox, so every name also has a
//! [`Name::key`]: the lower-cased NFC form that stores index by.

use std::fmt;

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// The longest name, in characters (Unicode scalar values) after NFC normalisation.
pub const MAX_NAME_CHARS: usize = 64;

/// A valid name, in NFC, with the spelling its author gave.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name {
    spelling: String,
    key: String,
}

/// Why a string is not a name. Each message tells the person what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong { chars: usize },
    BadFirstCharacter { found: char },
    BadCharacter { found: char, position: usize },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "a name must have at least 1 character"),
            Self::TooLong { chars } => write!(
                f,
                "a name may have at most {MAX_NAME_CHARS} characters; this one has {chars}"
            ),
            Self::BadFirstCharacter { found } => write!(
                f,
                "a name must start with a letter or a digit, not {}",
                describe(*found)
            ),
            Self::BadCharacter { found, position } => write!(
                f,
                "a name may only contain letters, digits, combining marks, '.', '_' and '-'; \
                 character {position} is {}",
                describe(*found)
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Shows a character so that invisible and control characters are still readable in a message.
fn describe(c: char) -> String {
    if c.is_control() || c.is_whitespace() || !is_visible(c) {
        format!("U+{:04X}", c as u32)
    } else {
        format!("'{c}' (U+{:04X})", c as u32)
    }
}

/// Format characters (bidi overrides, zero-width joiners) print as nothing: show only the code.
fn is_visible(c: char) -> bool {
    !matches!(c as u32, 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF)
}

impl Name {
    /// Parses a name as a person typed it (already percent-decoded).
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let spelling: String = raw.nfc().collect();
        let chars = spelling.chars().count();
        if chars == 0 {
            return Err(NameError::Empty);
        }
        if chars > MAX_NAME_CHARS {
            return Err(NameError::TooLong { chars });
        }
        for (index, c) in spelling.chars().enumerate() {
            if index == 0 {
                if !c.is_alphanumeric() {
                    return Err(NameError::BadFirstCharacter { found: c });
                }
            } else if !(c.is_alphanumeric() || is_combining_mark(c) || matches!(c, '.' | '_' | '-'))
            {
                return Err(NameError::BadCharacter {
                    found: c,
                    position: index + 1,
                });
            }
        }
        // Lower-casing can leave a string that is no longer NFC (and can lengthen it): normalise
        // again so that every spelling of one name maps to exactly one key.
        let key = spelling.to_lowercase().nfc().collect();
        Ok(Self { spelling, key })
    }

    /// The name as its author spelled it (NFC).
    pub fn as_str(&self) -> &str {
        &self.spelling
    }

    /// The case-insensitive identity of the inbox: what stores index by.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spelling)
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.spelling
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_of_any_script() {
        for name in [
            "bob",
            "Zoë",
            "李小龍",
            "Ελένη",
            "محمد",
            "a.b_c-d",
            "7up",
            "x",
        ] {
            assert!(Name::parse(name).is_ok(), "{name} should be a valid name");
        }
    }

    #[test]
    fn keys_are_case_insensitive_and_keep_the_spelling() {
        let upper = Name::parse("BOB").unwrap();
        let lower = Name::parse("bob").unwrap();
        assert_eq!(upper.key(), lower.key());
        assert_eq!(upper.as_str(), "BOB");
    }

    #[test]
    fn decomposed_and_composed_forms_are_one_name() {
        let composed = Name::parse("Zo\u{00EB}").unwrap();
        let decomposed = Name::parse("Zoe\u{0308}").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str().chars().count(), 3);
    }

    #[test]
    fn combining_marks_are_allowed_after_the_first_character() {
        assert!(Name::parse("a\u{0301}\u{0316}").is_ok());
        assert!(matches!(
            Name::parse("\u{0301}a"),
            Err(NameError::BadFirstCharacter { .. })
        ));
    }

    #[test]
    fn length_is_counted_in_characters_after_normalisation() {
        assert!(Name::parse(&"é".repeat(64)).is_ok());
        assert_eq!(
            Name::parse(&"e\u{0301}".repeat(65)),
            Err(NameError::TooLong { chars: 65 })
        );
        assert_eq!(Name::parse(""), Err(NameError::Empty));
    }

    #[test]
    fn rejects_operators_paths_markup_and_invisible_characters() {
        for bad in [
            "$gt",
            "a$b",
            "..",
            ".hidden",
            "a/b",
            "a%2fb",
            "<script>",
            "a b",
            "a\0b",
            "a\u{202E}b",
            "a\u{200B}b",
            "-x",
            "_x",
            "{\"$ne\":null}",
            "a\nb",
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn messages_name_the_offending_character() {
        let message = Name::parse("ab\u{202E}c").unwrap_err().to_string();
        assert!(message.contains("character 3 is U+202E"), "{message}");
        let message = Name::parse("a$").unwrap_err().to_string();
        assert!(message.contains("'$'"), "{message}");
    }
}
