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

/// The spellings Unicode's case data relates to `c`: its lower-case and upper-case mappings
/// (UnicodeData and SpecialCasing, as `std` has them) and its full case folding (CaseFolding, as
/// `caseless` has it), each alone and after a letter (the context of a final sigma).
fn case_variants(c: char) -> Vec<String> {
    let alone = c.to_string();
    let mut variants = vec![
        alone.to_lowercase(),
        alone.to_uppercase(),
        caseless::default_case_fold_str(&alone),
    ];
    variants.retain(|variant| *variant != alone);
    variants.dedup();
    let mut spellings = Vec::new();
    for variant in variants {
        spellings.push((alone.clone(), variant.clone()));
        spellings.push((format!("a{alone}"), format!("a{variant}")));
        spellings.push((format!("Σ{alone}"), format!("σ{variant}")));
    }
    spellings
        .into_iter()
        .flat_map(|(one, other)| [one, other])
        .collect()
}

#[test]
fn spellings_that_reach_one_inbox_share_one_lookalike_key_for_every_code_point() {
    // Every code point that has case data, with every spelling its case data relates to it (the
    // rest have no other case to compare with). Checked on the keys themselves, before the rules
    // of a valid name, so that no rule hides a disagreement: computing the look-alike key from
    // the raw spelling again makes this fail (Beria Erfe, new in Unicode 17, which `std`
    // lower-cases and `caseless` at Unicode 16 does not fold), as it must.
    let mut compared = 0;
    let mut failures = Vec::new();
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        let spellings = case_variants(c);
        for pair in spellings.chunks(2) {
            let nfc = |s: &str| -> String { s.nfc().collect() };
            let (one, other) = (keys(&nfc(&pair[0])), keys(&nfc(&pair[1])));
            compared += 1;
            if one.0 == other.0 && one.1 != other.1 {
                failures.push(format!(
                    "U+{:04X}: {:?} and {:?} reach inbox {:?} with look-alike keys {:?} and {:?}",
                    u32::from(c),
                    pair[0],
                    pair[1],
                    one.0,
                    one.1,
                    other.1
                ));
            }
        }
    }
    // About 9,600 pairs with the case data of Unicode 16-17: a floor that notices an empty loop.
    assert!(compared > 5_000, "only {compared} pairs compared");
    assert!(
        failures.is_empty(),
        "{} of {compared} pairs disagree:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

#[test]
fn valid_names_that_reach_one_inbox_share_one_lookalike_key() {
    // The same through Name::parse, for the spellings that are valid names.
    let mut compared = 0;
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        for pair in case_variants(c).chunks(2) {
            if let (Ok(one), Ok(other)) = (Name::parse(&pair[0]), Name::parse(&pair[1]))
                && one.key() == other.key()
            {
                compared += 1;
                assert!(one.looks_like(&other), "{one} and {other}");
            }
        }
    }
    assert!(compared > 1_000, "only {compared} valid pairs compared");
}

#[test]
fn lower_casing_a_judged_character_gives_judged_characters() {
    // So that checking the spelling's characters is enough: its inbox key has no character a
    // library does not know either.
    for c in (0..=0x10FFFF)
        .filter_map(char::from_u32)
        .filter(|c| unicode::is_judged(*c))
    {
        for lower in c.to_lowercase() {
            assert!(
                unicode::is_judged(lower),
                "U+{:04X} lower-cases to U+{:04X}",
                u32::from(c),
                u32::from(lower)
            );
        }
    }
}

#[test]
fn beria_erfe_names_are_refused_but_a_claim_on_one_can_still_be_released() {
    // The capitals (U+16EA0...) and small letters (U+16EBB...) of Beria Erfe, new in Unicode 17:
    // `std` lower-cases the capitals, `caseless` at Unicode 16 does not fold them.
    let (capitals, small) = ("\u{16EA6}\u{16EA7}\u{16EA8}", "\u{16EC1}\u{16EC2}\u{16EC3}");
    for spelling in [capitals, small] {
        assert_eq!(
            Name::parse(spelling).map(|_| ()),
            Err(NameError::TooNew {
                found: spelling.chars().next().unwrap_or_default()
            })
        );
    }
    let (capitals, small) = (
        Name::parse_existing_claim(capitals).unwrap(),
        Name::parse_existing_claim(small).unwrap(),
    );
    assert_eq!(capitals.key(), small.key(), "one inbox");
    assert!(capitals.looks_like(&small), "one look-alike key");
    let message = NameError::TooNew { found: '\u{16EA6}' }.to_string();
    assert!(
        message.contains("Unicode 16.0 or earlier") && message.contains("U+16EA6"),
        "{message}"
    );
}

#[test]
fn the_lookalike_key_of_an_inbox_key_is_the_names_lookalike_key() {
    for spelling in [
        "bob",
        "BOB",
        "ｂｏｂ",
        "Straße",
        "ΟΔΟΣ",
        "Ꮳ",
        "Zoë",
        "李小龍",
    ] {
        let name = Name::parse(spelling).unwrap();
        assert_eq!(
            lookalike_key_of_inbox(name.key()),
            name.lookalike_key(),
            "{spelling}"
        );
    }
}

#[test]
fn names_shaped_like_a_token_are_refused_but_a_claim_on_one_can_still_be_released() {
    let token = crate::token::Token::generate();
    let inside = format!("bob.{}", token.reveal());
    for spelling in [
        token.reveal(),
        "hw_bob",
        "HW_bob",
        "Hw_x",
        "bob_hw_",
        inside.as_str(),
    ] {
        assert_eq!(
            Name::parse(spelling),
            Err(NameError::TokenShaped),
            "{spelling}"
        );
    }
    assert!(Name::parse_existing_claim("hw_bob").is_ok());
    for fine in ["hw", "hwbob", "hw-bob", "h_w", "ｈｗ_x"] {
        assert!(Name::parse(fine).is_ok(), "{fine}");
    }
    let message = NameError::TokenShaped.to_string();
    assert!(!message.contains(token.reveal()), "{message}");
}
