//! Moving stored claims to the look-alike keys of today's name rules, on open.
//!
//! Both backends key a claim by its look-alike key ([`hello_common::lookalike_key_of_inbox`]). When
//! the function behind that key changes (it is now computed from the inbox key, where earlier
//! builds used the raw spelling; a library's Unicode update may change it again), a stored claim can sit under a
//! key that no name computes any more: its name would be unowned. So each backend, on open, asks
//! [`plan`] what to do with its claims and does it: a claim whose key changed moves to its new
//! key; two claims that now share a key (the case variants the old keys told apart, which an
//! attacker could claim twice) keep the earlier claim, and the later one is released without
//! touching any hello (both claims covered the same inbox; its hellos stay, owned by the earlier
//! claim), with a warning line for the operator. No hello changes inbox: inbox keys never change.

use hello_common::lookalike_key_of_inbox;

/// A claim as stored, with what [`plan`] needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredClaim {
    /// The key it is stored under.
    pub key: String,
    /// The name as spelled when claimed (for the operator's warning).
    pub name: String,
    /// Its inbox key, from which its look-alike key is computed.
    pub inbox: String,
    /// When it was claimed (ms); the earlier of two colliding claims keeps the name.
    pub claimed_at: i64,
    /// The SHA-256 of its token (hex) as stored: on MongoDB a copy left by a move interrupted half
    /// way holds it parked (`moving:<hex>`). Used to delete exactly this record.
    pub token: String,
}

/// What to do with one stored claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rekey {
    /// Store the claim under `to` instead of its current key.
    Move { claim: StoredClaim, to: String },
    /// Release the claim (its record only): `kept`, claimed earlier, covers the same names.
    Release { claim: StoredClaim, kept: String },
}

/// What to do so that every claim sits under its look-alike key and no two share one: releases
/// first, then moves. Empty when every key is right (the usual case, and after a first open).
pub fn plan(claims: Vec<StoredClaim>) -> Vec<Rekey> {
    let mut by_key: std::collections::BTreeMap<String, Vec<StoredClaim>> = Default::default();
    for claim in claims {
        by_key
            .entry(lookalike_key_of_inbox(&claim.inbox))
            .or_default()
            .push(claim);
    }
    let (mut releases, mut moves) = (Vec::new(), Vec::new());
    for (key, mut group) in by_key {
        // The earliest claim keeps the name; of two copies of one claim, the one at its key.
        group.sort_by(|a, b| {
            (a.claimed_at, a.key != key, &a.key).cmp(&(b.claimed_at, b.key != key, &b.key))
        });
        let mut group = group.into_iter();
        let Some(kept) = group.next() else { continue };
        for claim in group {
            releases.push(Rekey::Release {
                claim,
                kept: kept.name.clone(),
            });
        }
        if kept.key != key {
            moves.push(Rekey::Move {
                claim: kept,
                to: key,
            });
        }
    }
    releases.extend(moves);
    releases
}

/// The operator's line for a claim released by [`plan`].
pub fn warn_released(claim: &StoredClaim, kept: &str) {
    tracing::warn!(
        released = %claim.name,
        kept = %kept,
        "a claim was released on open: names are now compared by one case mapping, under which \
         it is the same name as an earlier claim, which keeps it; no hello changed inbox, and \
         the hellos of that inbox belong to the earlier claim"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(key: &str, inbox: &str, claimed_at: i64, token: &str) -> StoredClaim {
        StoredClaim {
            key: key.to_owned(),
            name: format!("name-of-{key}"),
            inbox: inbox.to_owned(),
            claimed_at,
            token: token.to_owned(),
        }
    }

    #[test]
    fn claims_at_their_keys_stay_where_they_are() {
        let bob = claim(&lookalike_key_of_inbox("bob"), "bob", 1, "a");
        let zoe = claim(&lookalike_key_of_inbox("zoë"), "zoë", 2, "b");
        assert_eq!(plan(vec![bob, zoe]), vec![]);
    }

    #[test]
    fn a_claim_under_an_old_key_moves_to_its_new_one() {
        let stale = claim("OLD", "bob", 1, "a");
        assert_eq!(
            plan(vec![stale.clone()]),
            vec![Rekey::Move {
                claim: stale,
                to: lookalike_key_of_inbox("bob")
            }]
        );
    }

    #[test]
    fn of_two_claims_on_one_name_the_earlier_keeps_it_wherever_either_sits() {
        let key = lookalike_key_of_inbox("bob");
        // The later claim sits at the right key, the earlier under an old one.
        let later = claim(&key, "bob", 20, "b");
        let earlier = claim("OLD", "bob", 10, "a");
        assert_eq!(
            plan(vec![later.clone(), earlier.clone()]),
            vec![
                Rekey::Release {
                    claim: later,
                    kept: earlier.name.clone()
                },
                Rekey::Move {
                    claim: earlier,
                    to: key
                },
            ]
        );
    }

    #[test]
    fn a_copy_left_by_an_interrupted_move_is_released_and_the_copy_at_its_key_kept() {
        let key = lookalike_key_of_inbox("bob");
        let moved = claim(&key, "bob", 10, "a");
        let left = claim("OLD", "bob", 10, "a");
        assert_eq!(
            plan(vec![left.clone(), moved.clone()]),
            vec![Rekey::Release {
                claim: left,
                kept: moved.name
            }]
        );
    }
}
