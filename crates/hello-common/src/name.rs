//! A person's name, parsed once at the edge.
//!
//! Rules (from the product contract): 1 to 64 characters after Unicode NFC normalisation; letters
//! and digits of any script, combining marks, `.`, `_` and `-`; the first character a letter or a
//! digit. Two names that differ only in case are the same inbox, so every name also has a
//! [`Name::key`]: the lower-cased NFC form that stores index by.
//!
//! One more rule against impersonation: the letters of a name come from one script (Unicode
//! UTS #39's "highly restrictive" level), so "pаypal" with a Cyrillic "а" is refused rather than
//! becoming a second inbox that looks like "paypal". Japanese, Chinese and Korean writing mix
//! Han with their own scripts and with Latin; those mixes are allowed.
//!
//! Names that look alike still exist as separate inboxes (`ｂｏｂ` in fullwidth letters, `𝐛𝐨𝐛` in
//! mathematical bold, `bob1` and `bobl`): the inbox key does not merge them, so that every stored
//! inbox stays readable. For ownership each name has a second key, [`Name::lookalike_key`]: the
//! UTS #39 skeleton of its NFKC case-folded form. A claim on a name covers every name with the
//! same look-alike key. The skeleton comes from the `unicode-security` crate (UTS #39 data of
//! Unicode [`LOOKALIKE_UNICODE_VERSION`]), the case folding from `caseless` (Unicode
//! [`CASE_FOLDING_UNICODE_VERSION`]).

use std::fmt;

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};
use unicode_script::{Script, UnicodeScript};

/// The longest name, in characters (Unicode scalar values) after NFC normalisation.
pub const MAX_NAME_CHARS: usize = 64;

/// The Unicode version of the UTS #39 confusables data behind [`Name::lookalike_key`].
pub const LOOKALIKE_UNICODE_VERSION: (u64, u64, u64) = unicode_security::UNICODE_VERSION;
/// The Unicode version of the case folding behind [`Name::lookalike_key`].
pub const CASE_FOLDING_UNICODE_VERSION: (u64, u64, u64) = caseless::UNICODE_VERSION;

/// A valid name, in NFC, with the spelling its author gave.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name {
    spelling: String,
    key: String,
    lookalike: String,
}

/// Why a string is not a name. Each message tells the person what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong { chars: usize },
    BadFirstCharacter { found: char },
    BadCharacter { found: char, position: usize },
    MixedScripts { scripts: Vec<&'static str> },
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
            Self::MixedScripts { scripts } => write!(
                f,
                "a name must use the letters of one script, so that it cannot imitate another \
                 name; this one mixes {}",
                scripts.join(" and ")
            ),
        }
    }
}

/// Script mixes that real writing uses (UTS #39, "highly restrictive").
const ALLOWED_MIXES: [&[Script]; 3] = [
    &[
        Script::Latin,
        Script::Han,
        Script::Hiragana,
        Script::Katakana,
    ],
    &[Script::Latin, Script::Han, Script::Bopomofo],
    &[Script::Latin, Script::Han, Script::Hangul],
];

fn check_one_script(name: &str) -> Result<(), NameError> {
    // In order of first appearance, so that the message reads like the name.
    let mut scripts: Vec<Script> = Vec::new();
    for script in name.chars().map(|c| c.script()) {
        if !matches!(script, Script::Common | Script::Inherited | Script::Unknown)
            && !scripts.contains(&script)
        {
            scripts.push(script);
        }
    }
    if scripts.len() <= 1
        || ALLOWED_MIXES
            .iter()
            .any(|mix| scripts.iter().all(|script| mix.contains(script)))
    {
        return Ok(());
    }
    Err(NameError::MixedScripts {
        scripts: scripts.iter().map(|script| script.full_name()).collect(),
    })
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
        // Most names are ASCII, which normalisation leaves as it is: skip it for them (with the
        // rest of the Unicode work below, parsing took a tenth of hello-service's CPU per send).
        // A name that NFC turns into ASCII (the Kelvin sign into K) takes the full path, whose
        // keys are the same.
        let ascii = raw.is_ascii();
        let spelling: String = if ascii {
            raw.to_owned()
        } else {
            raw.nfc().collect()
        };
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
        // ASCII letters are all Latin: one script.
        let (key, lookalike) = if ascii {
            ascii_keys(&spelling)
        } else {
            check_one_script(&spelling)?;
            keys(&spelling)
        };
        Ok(Self {
            spelling,
            key,
            lookalike,
        })
    }

    /// The name as its author spelled it (NFC).
    pub fn as_str(&self) -> &str {
        &self.spelling
    }

    /// The case-insensitive identity of the inbox: what stores index by.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What every name that looks like this one shares, for ownership only: a claim covers
    /// every name with its look-alike key. Not for display (skeletons are not readable names).
    pub fn lookalike_key(&self) -> &str {
        &self.lookalike
    }

    /// Whether `other` looks like this name (the same name in any case included).
    pub fn looks_like(&self, other: &Name) -> bool {
        self.lookalike == other.lookalike
    }
}

/// The inbox key and the look-alike key of a name's (NFC) spelling.
fn keys(spelling: &str) -> (String, String) {
    // Lower-casing can leave a string that is no longer NFC (and can lengthen it): normalise
    // again so that every spelling of one name maps to exactly one key.
    let key = spelling.to_lowercase().nfc().collect();
    (key, lookalike_key(spelling))
}

/// [`keys`] of an ASCII spelling, without the steps that leave ASCII as it is: NFC and NFKC
/// change no ASCII character, and lower-casing and full case folding both map A-Z to a-z and
/// nothing else. The skeleton is still UTS #39's: ASCII has look-alikes of its own (`rn`, `m`).
fn ascii_keys(spelling: &str) -> (String, String) {
    debug_assert!(spelling.is_ascii());
    let key = spelling.to_ascii_lowercase();
    let lookalike = unicode_security::skeleton(&key).collect();
    (key, lookalike)
}

/// The UTS #39 skeleton of the NFKC case-folded form: NFKC folds compatibility forms (fullwidth,
/// mathematical letters), full case folding merges case (ß with ss), and the skeleton maps
/// confusable characters across scripts onto one prototype (Cyrillic а onto Latin a).
fn lookalike_key(spelling: &str) -> String {
    let compatible: String = spelling.nfkc().collect();
    let folded: String = caseless::default_case_fold_str(&compatible)
        .nfkc()
        .collect();
    unicode_security::skeleton(&folded).collect()
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
    fn the_ascii_shortcut_gives_the_keys_of_the_full_unicode_path() {
        // Every ASCII character, alone, doubled, after a letter and in mixed case; then the
        // spellings whose skeletons differ from their letters. Invalid characters are in too:
        // the shortcut's steps must agree whatever the validity checks before them let through.
        let mut spellings: Vec<String> = (0u8..128)
            .map(char::from)
            .flat_map(|c| {
                [
                    format!("{c}"),
                    format!("{c}{c}"),
                    format!("A{c}z"),
                    format!("{c}Rn1"),
                ]
            })
            .collect();
        spellings.extend(
            [
                "rn", "m", "RN", "Bob", "b0b", "bobl", "bob1", "I1l|", "O0o", "vv", "w", "cl", "d",
            ]
            .map(String::from),
        );
        for spelling in spellings {
            assert!(spelling.is_ascii());
            // The shortcut also skips the one-script check, which no ASCII string fails.
            assert_eq!(check_one_script(&spelling), Ok(()), "{spelling:?}");
            assert_eq!(ascii_keys(&spelling), keys(&spelling), "{spelling:?}");
        }
    }

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
            "山田たろう",
            "東京Tokyo",
            "김민준",
            "Ἀθηνᾶ",
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

    #[test]
    fn refuses_names_that_mix_scripts_to_imitate_another() {
        // Cyrillic "а" (U+0430) and "о" (U+043E) in otherwise Latin names; Greek omicron.
        for confusable in ["p\u{0430}ypal", "b\u{043E}b", "g\u{03BF}ogle"] {
            let error = Name::parse(confusable).unwrap_err();
            assert!(
                matches!(error, NameError::MixedScripts { .. }),
                "{confusable}: {error}"
            );
        }
        let message = Name::parse("p\u{0430}ypal").unwrap_err().to_string();
        assert!(message.contains("Latin and Cyrillic"), "{message}");
    }

    #[test]
    fn lookalikes_share_a_lookalike_key_but_not_an_inbox() {
        let bob = Name::parse("bob").unwrap();
        for lookalike in [
            "BOB",    // case
            "ｂｏｂ", // fullwidth
            "𝐛𝐨𝐛",    // mathematical bold
            "𝖇𝖔𝖇",    // mathematical fraktur bold
            "Ｂｏｂ", // fullwidth, mixed case
        ] {
            let other = Name::parse(lookalike).unwrap();
            assert!(bob.looks_like(&other), "{lookalike} should look like bob");
        }
        assert_ne!(
            Name::parse("ｂｏｂ").unwrap().key(),
            bob.key(),
            "its own inbox"
        );
        assert!(!bob.looks_like(&Name::parse("bobby").unwrap()));
        assert!(!bob.looks_like(&Name::parse("rob").unwrap()));
    }

    #[test]
    fn homoglyphs_of_other_scripts_look_alike() {
        // All-Cyrillic "аре" and all-Greek "ορο" are valid single-script names that read as the
        // Latin "ape" and "opo".
        let cyrillic = Name::parse("\u{0430}\u{0440}\u{0435}").unwrap();
        assert!(cyrillic.looks_like(&Name::parse("ape").unwrap()));
        let greek = Name::parse("\u{03BF}\u{03C1}\u{03BF}").unwrap();
        assert!(greek.looks_like(&Name::parse("opo").unwrap()));
        // Digits and letters that UTS #39 calls confusable: intended.
        assert!(
            Name::parse("bob1")
                .unwrap()
                .looks_like(&Name::parse("bobl").unwrap())
        );
    }

    #[test]
    fn composed_decomposed_and_case_folded_forms_look_alike() {
        let composed = Name::parse("Zo\u{00EB}").unwrap();
        let decomposed = Name::parse("zoe\u{0308}").unwrap();
        assert!(composed.looks_like(&decomposed));
        // Full case folding: ß folds to ss.
        assert!(
            Name::parse("straße")
                .unwrap()
                .looks_like(&Name::parse("STRASSE").unwrap())
        );
    }
}
