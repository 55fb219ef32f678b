//! Claimed names in the embedded store: claiming, rotating a token, and releasing a name with
//! every hello its claim covered. Each runs inside the writer's transaction.

use hello_common::{Name, timestamp::Millis, token::TokenHash};
use redb::{ReadableTable, WriteTransaction};

use super::live::AfterCommit;
use super::tables::{
    CLAIMED_NAMES, ClaimRecord, HELLOS, LEASES_BY_INBOX, LOOKALIKE_INBOXES, META, NAMES,
    NAMES_BY_TOKEN, STORED_HELLOS, Storage, counter, hellos_of, set_inbox_size,
};
use crate::store::{ClaimChange, StoreError, StoreLimits};

/// Claims `name` for `token`, unless it or a look-alike is claimed, or the cap is reached.
pub(super) fn claim_name(
    transaction: &WriteTransaction,
    name: &Name,
    token: TokenHash,
    limits: &StoreLimits,
) -> Storage<Result<(), StoreError>> {
    let mut names = transaction.open_table(NAMES)?;
    if names.get(name.lookalike_key())?.is_some() {
        return Ok(Err(StoreError::NameTaken {
            name: name.to_string(),
        }));
    }
    let mut meta = transaction.open_table(META)?;
    let claimed = counter(&meta, CLAIMED_NAMES)?;
    if claimed >= limits.claim_cap {
        return Ok(Err(StoreError::StoreFull {
            what: "claimed names",
            cap: limits.claim_cap,
        }));
    }
    let record = ClaimRecord {
        name: name.to_string(),
        inbox: name.key().to_owned(),
        token: token.to_hex(),
        claimed_at: Millis::now().0,
    };
    names.insert(
        name.lookalike_key(),
        serde_json::to_vec(&record)?.as_slice(),
    )?;
    transaction
        .open_table(NAMES_BY_TOKEN)?
        .insert(record.token.as_str(), name.lookalike_key())?;
    meta.insert(CLAIMED_NAMES, claimed + 1)?;
    Ok(Ok(()))
}

/// The claim on `name` itself (its inbox, in any case), if `token` is its token.
fn own_claim(
    transaction: &WriteTransaction,
    name: &Name,
    token: &TokenHash,
) -> Storage<Result<ClaimRecord, ClaimChange>> {
    let record = transaction
        .open_table(NAMES)?
        .get(name.lookalike_key())?
        .map(|record| serde_json::from_slice::<ClaimRecord>(record.value()))
        .transpose()?;
    let Some(record) = record.filter(|record| record.inbox == name.key()) else {
        return Ok(Err(ClaimChange::NotClaimed));
    };
    let stored = TokenHash::from_hex(&record.token);
    if !stored.is_some_and(|stored| stored.matches(token)) {
        return Ok(Err(ClaimChange::WrongToken));
    }
    Ok(Ok(record))
}

/// Replaces the token of the claim on `name`, if `current` is its token.
pub(super) fn rotate_token(
    transaction: &WriteTransaction,
    name: &Name,
    current: &TokenHash,
    new: TokenHash,
) -> Storage<ClaimChange> {
    let mut record = match own_claim(transaction, name, current)? {
        Ok(record) => record,
        Err(change) => return Ok(change),
    };
    let mut by_token = transaction.open_table(NAMES_BY_TOKEN)?;
    by_token.remove(record.token.as_str())?;
    record.token = new.to_hex();
    by_token.insert(record.token.as_str(), name.lookalike_key())?;
    transaction.open_table(NAMES)?.insert(
        name.lookalike_key(),
        serde_json::to_vec(&record)?.as_slice(),
    )?;
    Ok(ClaimChange::Done)
}

/// Frees `name`, if `token` is its token, and deletes the hellos waiting (leased or not) in its
/// inbox and in every look-alike inbox the claim covered ([`LOOKALIKE_INBOXES`]), all in this one
/// transaction: a send is either before it (and deleted) or after it (to an unclaimed name).
pub(super) fn release_name(
    transaction: &WriteTransaction,
    after: &mut Vec<AfterCommit>,
    name: &Name,
    token: &TokenHash,
) -> Storage<ClaimChange> {
    let record = match own_claim(transaction, name, token)? {
        Ok(record) => record,
        Err(change) => return Ok(change),
    };
    transaction
        .open_table(NAMES)?
        .remove(name.lookalike_key())?;
    transaction
        .open_table(NAMES_BY_TOKEN)?
        .remove(record.token.as_str())?;
    let mut meta = transaction.open_table(META)?;
    let claimed = counter(&meta, CLAIMED_NAMES)?;
    meta.insert(CLAIMED_NAMES, claimed.saturating_sub(1))?;

    let mut lookalike_inboxes = transaction.open_table(LOOKALIKE_INBOXES)?;
    let mut inboxes: Vec<String> = covered_inboxes(&lookalike_inboxes, name.lookalike_key())?;
    if !inboxes.contains(&record.inbox) {
        inboxes.push(record.inbox.clone());
    }
    let mut hellos = transaction.open_table(HELLOS)?;
    let mut by_inbox = transaction.open_table(LEASES_BY_INBOX)?;
    let mut deleted = 0u64;
    for inbox in &inboxes {
        let inbox = inbox.as_str();
        let waiting: Vec<u64> = hellos
            .range(hellos_of(inbox))?
            .map(|entry| entry.map(|(key, _)| key.value().1))
            .collect::<Result<_, _>>()?;
        for &sequence in &waiting {
            hellos.remove((inbox, sequence))?;
        }
        deleted += waiting.len() as u64;
        set_inbox_size(&mut hellos, Some(&mut lookalike_inboxes), inbox, 0)?;
        // Its live leases hold nothing now: drop them from the inbox's lease index, so that the
        // next read of this inbox counts nothing as leased. Their records stay, to answer a
        // confirmation (which then deletes nothing).
        let leases: Vec<String> = by_inbox
            .range((inbox, "")..(inbox, "~"))?
            .map(|entry| entry.map(|(key, _)| key.value().1.to_owned()))
            .collect::<Result<_, _>>()?;
        for lease_id in &leases {
            by_inbox.remove((inbox, lease_id.as_str()))?;
        }
        after.push(AfterCommit::ReleaseInbox(inbox.to_owned()));
    }
    let stored_hellos = counter(&meta, STORED_HELLOS)?;
    meta.insert(STORED_HELLOS, stored_hellos.saturating_sub(deleted))?;
    Ok(ClaimChange::Done)
}

/// The inboxes with hellos whose look-alike key is `lookalike`.
fn covered_inboxes(
    lookalike_inboxes: &impl ReadableTable<(&'static str, &'static str), ()>,
    lookalike: &str,
) -> Storage<Vec<String>> {
    let mut inboxes = Vec::new();
    for entry in lookalike_inboxes.range((lookalike, "")..)? {
        let (key, _) = entry?;
        let (key_lookalike, inbox) = key.value();
        if key_lookalike != lookalike {
            break;
        }
        inboxes.push(inbox.to_owned());
    }
    Ok(inboxes)
}
