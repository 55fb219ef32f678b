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
//! UTS #39 skeleton of the NFKC case-folded form of its **inbox key** ([`lookalike_key_of_inbox`]).
//! Because it is computed from the inbox key, two spellings that reach one inbox always share one
//! look-alike key: one case mapping (the inbox key's) decides both. A claim on a name covers every
//! name with the same look-alike key.
//!
//! The libraries that take part carry different Unicode versions (see [`unicode`]); a name may
//! only use characters all of them know, or a library that does not know a character would judge
//! it differently from one that does.

mod assigned;
pub mod unicode;

use std::fmt;

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};
use unicode_script::{Script, UnicodeScript};

use crate::token::TOKEN_PREFIX;

/// The longest name, in characters (Unicode scalar values) after NFC normalisation.
pub const MAX_NAME_CHARS: usize = 64;

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
    TooLong {
        chars: usize,
    },
    BadFirstCharacter {
        found: char,
    },
    BadCharacter {
        found: char,
        position: usize,
    },
    MixedScripts {
        scripts: Vec<&'static str>,
    },
    /// A character newer than the oldest Unicode version of the libraries that compare names.
    TooNew {
        found: char,
    },
    /// Holds the token prefix, as a token pasted into a path would.
    TokenShaped,
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
            Self::TooNew { found } => write!(
                f,
                "a name may only use characters of Unicode {}.{} or earlier, which every part \
                 of this service compares alike; {} is newer",
                unicode::JUDGED_UP_TO.0,
                unicode::JUDGED_UP_TO.1,
                describe(*found)
            ),
            Self::TokenShaped => write!(
                f,
                "a name may not hold '{TOKEN_PREFIX}', the prefix of tokens: a token never \
                 belongs in an address. If this was a token, treat it as exposed and rotate it \
                 (POST /names/{{name}}/token)"
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
        Self::parse_checking(raw, true)
    }

    /// Parses a name that may have been claimed before today's rules refused it (a character
    /// too new, [`NameError::TooNew`]; the token prefix, [`NameError::TokenShaped`]): every other
    /// rule holds. Only for what a claim's holder may still do with such a name (release it), so
    /// that no claim is stranded; its keys are computed as for any name.
    pub fn parse_existing_claim(raw: &str) -> Result<Self, NameError> {
        Self::parse_checking(raw, false)
    }

    fn parse_checking(raw: &str, newest_rules: bool) -> Result<Self, NameError> {
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
        // ASCII is in every Unicode version, and its letters are all Latin: one script.
        let (key, lookalike) = if ascii {
            ascii_keys(&spelling)
        } else {
            if newest_rules && let Some(found) = spelling.chars().find(|c| !unicode::is_judged(*c))
            {
                return Err(NameError::TooNew { found });
            }
            check_one_script(&spelling)?;
            keys(&spelling)
        };
        if newest_rules && key.contains(TOKEN_PREFIX) {
            return Err(NameError::TokenShaped);
        }
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
    let key: String = spelling.to_lowercase().nfc().collect();
    let lookalike = lookalike_key_of_inbox(&key);
    (key, lookalike)
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

/// The look-alike key of an inbox: the UTS #39 skeleton of the NFKC case-folded inbox key. NFKC
/// folds compatibility forms (fullwidth, mathematical letters), full case folding merges what
/// lower-casing keeps apart (ß with ss), and the skeleton maps confusable characters across
/// scripts onto one prototype (Cyrillic а onto Latin a). A function of the inbox key alone, so
/// that a store can compute it from an inbox key it holds (moving stored keys, finding the
/// look-alike inboxes of a claim).
pub fn lookalike_key_of_inbox(inbox_key: &str) -> String {
    if inbox_key.is_ascii() {
        return unicode_security::skeleton(inbox_key).collect();
    }
    let compatible: String = inbox_key.nfkc().collect();
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
mod tests;
