//! The Unicode versions of the libraries that decide whether two spellings are one name, and the
//! characters all of them know.
//!
//! Each library carries the data of one Unicode version: `std` (lower-casing, letters and digits),
//! `unicode-normalization` (NFC, NFKC, combining marks), `unicode-script` (the one-script rule),
//! `unicode-security` (UTS #39 skeletons) and `caseless` (full case folding). A character newer
//! than one of them is one that library does not know: `caseless` at Unicode 16 leaves Beria Erfe
//! capitals (new in 17) unfolded while `std` lower-cases them, so the two cases of one name once
//! reached one inbox with two look-alike keys. Names therefore use only characters assigned by
//! the oldest of those versions ([`JUDGED_UP_TO`]); the test below fails when any library's version
//! moves, so that a dependency update cannot change how names compare unnoticed.

use super::assigned::ASSIGNED_BY_UNICODE_16;

/// The Unicode version whose characters every library here knows: the oldest of theirs.
pub const JUDGED_UP_TO: (u8, u8) = (16, 0);

/// Whether every library that compares names knows `c` (it was assigned by [`JUDGED_UP_TO`]).
pub fn is_judged(c: char) -> bool {
    let c = u32::from(c);
    ASSIGNED_BY_UNICODE_16
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Each library's Unicode version, as it says itself, for the test and for a message.
pub fn library_versions() -> [(&'static str, (u64, u64)); 5] {
    let major_minor = |(major, minor, _): (u64, u64, u64)| (major, minor);
    let (std_major, std_minor, _) = char::UNICODE_VERSION;
    let (nfc_major, nfc_minor, _) = unicode_normalization::UNICODE_VERSION;
    [
        ("std", (u64::from(std_major), u64::from(std_minor))),
        (
            "unicode-normalization",
            (u64::from(nfc_major), u64::from(nfc_minor)),
        ),
        (
            "unicode-script",
            major_minor(unicode_script::UNICODE_VERSION),
        ),
        (
            "unicode-security",
            major_minor(unicode_security::UNICODE_VERSION),
        ),
        ("caseless", major_minor(caseless::UNICODE_VERSION)),
    ]
}

/// What the look-alike keys stores keep depend on: the rule (the key of the inbox key) and each
/// library's Unicode version, as one number (FNV-1a). A store that kept look-alike keys under
/// another number recomputes them when it opens (world-service's store backends).
pub fn lookalike_keys_version() -> u64 {
    let described = format!(
        "skeleton of the NFKC case fold of the inbox key; {:?}",
        library_versions()
    );
    described.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_library_that_compares_names_is_at_the_unicode_version_reviewed() {
        // A change here is a change in how names compare. Before updating a pin: run the name
        // tests (the property test over every code point must pass), and if the oldest version
        // moved, regenerate `assigned.rs` for it (see its header) and update JUDGED_UP_TO. Stores
        // recompute their look-alike keys on open (claims: store/rekey.rs; the keys kept beside
        // hellos: lookalike_keys_version), and the CHANGELOG says which characters became valid.
        let reviewed = [
            ("std", (17, 0)),
            ("unicode-normalization", (18, 0)),
            ("unicode-script", (18, 0)),
            ("unicode-security", (18, 0)),
            ("caseless", (16, 0)),
        ];
        assert_eq!(library_versions(), reviewed);
    }

    #[test]
    fn names_use_only_characters_of_the_oldest_library_version() {
        let oldest = library_versions()
            .into_iter()
            .map(|(_, version)| version)
            .min();
        let judged = (u64::from(JUDGED_UP_TO.0), u64::from(JUDGED_UP_TO.1));
        assert_eq!(oldest, Some(judged));
    }

    #[test]
    fn the_table_of_judged_characters_is_unicode_s_derived_age() {
        use regex_syntax::hir::{Class, HirKind};
        let pattern = format!(r"\p{{Age={}.{}}}", JUDGED_UP_TO.0, JUDGED_UP_TO.1);
        let hir = regex_syntax::parse(&pattern).expect("regex-syntax knows the age property");
        let HirKind::Class(Class::Unicode(class)) = hir.kind() else {
            panic!("{pattern} is not a class of characters");
        };
        let expected: Vec<(u32, u32)> = class
            .ranges()
            .iter()
            .map(|range| (u32::from(range.start()), u32::from(range.end())))
            .collect();
        if expected != ASSIGNED_BY_UNICODE_16 {
            let table: Vec<String> = expected
                .iter()
                .map(|(first, last)| format!("({first:#07X}, {last:#07X})"))
                .collect();
            panic!(
                "assigned.rs differs from {pattern} of regex-syntax; the table it should hold \
                 ({} ranges):\n{}",
                table.len(),
                table.join(", ")
            );
        }
    }

    #[test]
    fn beria_erfe_new_in_unicode_17_is_not_judged_and_latin_is() {
        assert!(!is_judged('\u{16EA0}'));
        assert!(!is_judged('\u{16ED3}'));
        for c in ['a', 'Z', 'ß', 'ẞ', '李', 'Ꭰ', 'ꭰ', '\u{10FFFD}', '\0'] {
            assert!(is_judged(c), "{c:?}");
        }
    }
}
