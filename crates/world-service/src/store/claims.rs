//! The claims a batch of calls needs, looked up together ([`super::Store::claims`]): every
//! reader, sender and recipient of a batch is judged against one lookup (MongoDB: one `find`),
//! never one per call.

use hello_common::{Name, token::TokenHash};

use super::Claim;

/// What a batch asks for: the claims covering these names, and the claims of these tokens.
#[derive(Debug, Default)]
pub struct ClaimsWanted {
    /// Names whose covering claim (their own, or a look-alike's) is needed.
    pub covering: Vec<Name>,
    /// Presented tokens (their hashes) whose claim is needed.
    pub tokens: Vec<TokenHash>,
}

impl ClaimsWanted {
    /// Adds a name whose covering claim is needed (once per look-alike key).
    pub fn cover(&mut self, name: &Name) {
        if !self
            .covering
            .iter()
            .any(|wanted| wanted.lookalike_key() == name.lookalike_key())
        {
            self.covering.push(name.clone());
        }
    }

    /// Adds a presented token whose claim is needed.
    pub fn token(&mut self, token: TokenHash) {
        if !self.tokens.iter().any(|wanted| wanted.matches(&token)) {
            self.tokens.push(token);
        }
    }
}

/// The claims found for a [`ClaimsWanted`], as they were when the store was asked.
#[derive(Debug, Default)]
pub struct Claims {
    /// By look-alike key: the claim stored there, if any, and whether it is being released; or
    /// why the stored claim could not be read (which fails only the calls that need it).
    covering: Vec<(String, Result<Option<Found>, String>)>,
    /// By presented token: the claim whose token it is, if any.
    by_token: Vec<(TokenHash, Option<Claim>)>,
}

/// A claim as a batch sees it.
#[derive(Debug, Clone)]
pub struct Found {
    pub claim: Claim,
    /// A release of it began and has not finished: its inboxes are being emptied, so a send
    /// to them is refused until it is done (MongoDB only; the embedded store releases in one
    /// transaction).
    pub releasing: bool,
}

/// A name or token the batch did not ask for: world's bug, answered as a store failure (503)
/// rather than judged without its claim.
fn not_asked(what: &str) -> super::StoreError {
    super::StoreError::unavailable(anyhow::anyhow!(
        "the claims of this batch were looked up without this {what}"
    ))
}

impl Claims {
    /// Records what was found under a look-alike key (`None`: nothing).
    pub fn found_covering(&mut self, lookalike: &str, found: Option<Found>) {
        self.covering.push((lookalike.to_owned(), Ok(found)));
    }

    /// Records that the claim stored under a look-alike key could not be read, and why.
    pub fn unreadable_covering(&mut self, lookalike: &str, why: String) {
        self.covering.push((lookalike.to_owned(), Err(why)));
    }

    /// Records the claim of a presented token (`None`: no claim has it).
    pub fn found_token(&mut self, token: TokenHash, claim: Option<Claim>) {
        self.by_token.push((token, claim));
    }

    /// The claim covering `name`, if any (its own, or a look-alike's).
    pub fn covering(&self, name: &Name) -> Result<Option<&Found>, super::StoreError> {
        self.covering
            .iter()
            .find(|(lookalike, _)| lookalike == name.lookalike_key())
            .ok_or_else(|| not_asked("name"))?
            .1
            .as_ref()
            .map(Option::as_ref)
            .map_err(|why| super::StoreError::unavailable(anyhow::anyhow!("{why}")))
    }

    /// The claim whose token is `token`, if any. Compared in constant time, one by one (a batch
    /// holds a few dozen tokens at most).
    pub fn by_token(&self, token: &TokenHash) -> Result<Option<&Claim>, super::StoreError> {
        self.by_token
            .iter()
            .find(|(presented, _)| presented.matches(token))
            .map(|(_, claim)| claim.as_ref())
            .ok_or_else(|| not_asked("token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(name: &str, token: &TokenHash) -> Claim {
        let name = Name::parse(name).unwrap();
        Claim {
            name: name.to_string(),
            inbox: name.key().to_owned(),
            token: *token,
            claimed_at: 1,
        }
    }

    #[test]
    fn a_batch_asks_once_per_lookalike_group_and_token_and_answers_only_what_it_asked() {
        let (alice, other) = (TokenHash::of("alice's"), TokenHash::of("another"));
        let mut wanted = ClaimsWanted::default();
        for name in ["Alice", "alice", "ALICE", "bob"] {
            wanted.cover(&Name::parse(name).unwrap());
        }
        wanted.token(alice);
        wanted.token(alice);
        assert_eq!(wanted.covering.len(), 2);
        assert_eq!(wanted.tokens.len(), 1);

        let mut claims = Claims::default();
        let found = Found {
            claim: claim("Alice", &alice),
            releasing: false,
        };
        claims.found_covering(Name::parse("alice").unwrap().lookalike_key(), Some(found));
        claims.found_covering(Name::parse("bob").unwrap().lookalike_key(), None);
        claims.found_token(alice, Some(claim("Alice", &alice)));
        let covering = claims.covering(&Name::parse("ALICE").unwrap()).unwrap();
        assert_eq!(covering.unwrap().claim.name, "Alice");
        assert!(
            claims
                .covering(&Name::parse("bob").unwrap())
                .unwrap()
                .is_none()
        );
        assert!(claims.by_token(&alice).unwrap().is_some());
        assert!(claims.covering(&Name::parse("carol").unwrap()).is_err());
        assert!(claims.by_token(&other).is_err());
    }
}
