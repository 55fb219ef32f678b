//! Leasing hellos out of MongoDB, a batch at a time. Whatever the number of leases in it, a batch
//! costs the same commands: one `aggregate` picking every lease's candidates (one `$unionWith`
//! branch per inbox, each walking the `{to, order}` index), one `update` with a statement per
//! lease that wins what is still free (each document is updated atomically, so each hello is won
//! by exactly one lease, whichever replica asked), one `find` reading back what each won, one
//! `insert` of the records of reliable reads' leases (a GET's lease is acknowledged at once and
//! needs none) and one `aggregate` counting what remains; and, when it took hellos sent with
//! idempotency keys, one `update` of their keys' records (see [`super::retries`]). A lease that
//! lost every candidate to another replica tries again, with the others that did.
//! Acknowledgements and confirmations are in [`super::confirmations`].

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use hello_common::{
    Name,
    timestamp::Millis,
    wire::{DeliveredHello, Lease},
};
use mongodb::bson::{Bson, DateTime, Document, doc};

use super::{
    MongoStore, ONE_BATCH, RACE_ATTEMPTS,
    batch::{CallOutcomes, Inserted, inserted},
    documents::{HelloDocument, LEASE_FIELD, LeaseDocument},
};
use crate::store::{LeaseRequest, Operation, StoreError, new_lease_id, ttl_millis};

/// The hellos of `inbox` a lease may take at `now`: not leased, and sent while no claim covered
/// the inbox or while the claim that covers it now did (see `HelloDocument::covered_by`).
/// `covered_by` is matched with `$in` (a missing field matches `null` there): the form every
/// server we test against evaluates alike inside an `$or`.
fn leasable(inbox: &str, covering_claim: Option<i64>, now: i64) -> Document {
    let claims = match covering_claim {
        Some(claim) => vec![Bson::Null, Bson::Int64(claim)],
        None => vec![Bson::Null],
    };
    doc! { "to": inbox, "lease_until": { "$lt": now }, "covered_by": { "$in": claims } }
}

/// One lease of a batch.
struct Taking {
    name: Name,
    request: LeaseRequest,
    id: String,
    until: i64,
    /// What it won, oldest first, and how many of those an earlier lease had taken.
    won: Vec<HelloDocument>,
    redelivered: u64,
    /// Whether it was given candidates when it last looked (if not, none was free: nothing
    /// remains either).
    assigned_any: bool,
}

impl Taking {
    fn inbox(&self) -> &str {
        self.name.key()
    }
}

impl MongoStore {
    /// See [`crate::store::Store::lease_batch`].
    pub(super) async fn lease_batch_here(
        &self,
        leases: Vec<(Name, LeaseRequest)>,
    ) -> Vec<Result<Lease, StoreError>> {
        let mut outcomes = CallOutcomes::new(leases.len());
        let mut takings: Vec<Taking> = leases
            .into_iter()
            .map(|(name, request)| Taking {
                name,
                request,
                id: new_lease_id(),
                until: 0,
                won: Vec::new(),
                redelivered: 0,
                assigned_any: false,
            })
            .collect();
        let mut open: Vec<usize> = (0..takings.len()).collect();
        for _ in 0..RACE_ATTEMPTS {
            if open.is_empty() {
                break;
            }
            match self.lease_round(&mut takings, &open, &mut outcomes).await {
                // Retry only the leases that saw candidates and won none (others took them).
                Ok(lost) => open = lost,
                Err(error) => {
                    outcomes.fail(open.iter().copied(), &error);
                    open.clear();
                }
            }
        }
        // Before any lease is answered: a retry of a send whose hello it won must not store
        // the hello again (see `super::retries`).
        let won: Vec<&HelloDocument> = (0..takings.len())
            .filter(|&at| !outcomes.is_set(at))
            .flat_map(|at| &takings[at].won)
            .collect();
        if let Err(error) = self.mark_delivered_records(&won).await {
            // Those that took hellos sent with keys fail; their hellos come back when the leases
            // run out, as after any lost answer. The others are answered.
            let keyed = (0..takings.len())
                .filter(|&at| !outcomes.is_set(at))
                .filter(|&at| takings[at].won.iter().any(|hello| hello.record.is_some()))
                .collect::<Vec<_>>();
            outcomes.fail(keyed, &error);
        }
        self.record_leases(&takings, &mut outcomes).await;
        let remaining = self.remaining(&takings).await;
        for (index, taking) in takings.into_iter().enumerate() {
            if outcomes.is_set(index) {
                continue;
            }
            let remaining = match &remaining {
                Ok(remaining) => remaining.get(taking.inbox()).copied().unwrap_or_default(),
                Err(error) => {
                    outcomes.fail([index], error);
                    continue;
                }
            };
            outcomes.set(index, Ok(answer(taking, remaining)));
        }
        outcomes.into_vec()
    }

    /// One attempt of the `open` leases: picks their candidates (one `aggregate`), wins what is
    /// still free (one `update`) and reads back what each won (one `find`). Answers the leases
    /// that saw candidates and won none.
    async fn lease_round(
        &self,
        takings: &mut [Taking],
        open: &[usize],
        outcomes: &mut CallOutcomes<Lease>,
    ) -> Result<Vec<usize>, StoreError> {
        let now = Millis::now();
        for &at in open {
            let lease = u64::try_from(takings[at].request.lease.as_millis()).unwrap_or(u64::MAX);
            takings[at].until = now.plus_millis(lease).0;
        }
        let candidates = self.candidates(takings, open, now.0).await?;
        let mut assigned = assign(takings, open, &candidates, &HashSet::new());
        // A reliable read's lease that would take hellos is kept, so refused at the cap first;
        // the candidates go to the batch's other leases.
        if assigned.keys().any(|&at| takings[at].request.confirmable)
            && let Err(error) = self.check_lease_cap().await
        {
            // Those that would take hellos are refused; none of them takes any.
            for (&at, _) in assigned
                .iter()
                .filter(|(at, _)| takings[**at].request.confirmable)
            {
                outcomes.fail([at], &error);
            }
            let kept: HashSet<usize> = open
                .iter()
                .copied()
                .filter(|&at| takings[at].request.confirmable)
                .collect();
            assigned = assign(takings, open, &candidates, &kept);
        }
        for &at in open {
            takings[at].assigned_any = assigned.contains_key(&at);
        }
        if assigned.is_empty() {
            return Ok(Vec::new());
        }
        let order: Vec<usize> = assigned.keys().copied().collect();
        let statements: Vec<Document> = order
            .iter()
            .map(|at| {
                let taking = &takings[*at];
                let ids: Vec<&str> = assigned[at].iter().map(|hello| hello.id.as_str()).collect();
                let mut win = leasable(taking.inbox(), taking.request.covering_claim, now.0);
                win.insert("_id", doc! { "$in": ids });
                doc! {
                    "q": win,
                    "u": { "$set": { "lease_until": taking.until, LEASE_FIELD: &taking.id } },
                    "multi": true,
                }
            })
            .collect();
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let refused = self
            .update_each("hellos", statements, Operation::Lease)
            .await?;
        for statement in refused {
            let Some(&at) = order.get(statement) else {
                continue;
            };
            assigned.remove(&at);
            // It may have taken some of its hellos before it was refused: they come back when
            // the lease runs out, as after any lease whose answer was lost.
            let error = StoreError::OutcomeUnknown {
                operation: Operation::Lease,
                cause: anyhow::anyhow!("the store refused this lease part-way"),
            };
            outcomes.fail([at], &error);
        }
        let ids: Vec<&str> = assigned.keys().map(|&at| takings[at].id.as_str()).collect();
        let won: Vec<HelloDocument> = self
            .hellos
            .find(doc! { LEASE_FIELD: { "$in": ids } })
            .sort(doc! { "order": 1 })
            .batch_size(ONE_BATCH)
            .await
            .map_err(StoreError::unavailable)?
            .try_collect()
            .await
            .map_err(StoreError::unavailable)?;
        let mut lost = Vec::new();
        let leased_before: HashSet<String> = assigned
            .values()
            .flatten()
            .filter(|hello| hello.lease_until != 0)
            .map(|hello| hello.id.clone())
            .collect();
        let at_of: HashMap<String, usize> = assigned
            .keys()
            .map(|&at| (takings[at].id.clone(), at))
            .collect();
        for hello in won {
            if let Some(&at) = hello.lease.as_ref().and_then(|lease| at_of.get(lease)) {
                takings[at].redelivered += u64::from(leased_before.contains(&hello.id));
                takings[at].won.push(hello);
            }
        }
        for &at in at_of.values() {
            if takings[at].won.is_empty() {
                lost.push(at);
            }
        }
        lost.sort_unstable();
        Ok(lost)
    }

    /// The oldest leasable hellos of every open lease's inbox, as many as its leases may take
    /// together: one `aggregate`, one `$unionWith` branch per inbox after the first, each
    /// walking the `{to, order}` index and stopping at its limit.
    async fn candidates(
        &self,
        takings: &[Taking],
        open: &[usize],
        now: i64,
    ) -> Result<Vec<HelloDocument>, StoreError> {
        let mut branches: Vec<(&str, Option<i64>, i64)> = Vec::new();
        for &at in open {
            let taking = &takings[at];
            let key = (taking.inbox(), taking.request.covering_claim);
            match branches
                .iter_mut()
                .find(|(inbox, claim, _)| (*inbox, *claim) == key)
            {
                Some(branch) => branch.2 += i64::from(taking.request.limit),
                None => branches.push((key.0, key.1, i64::from(taking.request.limit))),
            }
        }
        let branch = |(inbox, claim, limit): &(&str, Option<i64>, i64)| {
            vec![
                doc! { "$match": leasable(inbox, *claim, now) },
                doc! { "$sort": { "order": 1 } },
                doc! { "$limit": *limit },
            ]
        };
        let mut pipeline = branch(&branches[0]);
        for other in &branches[1..] {
            pipeline.push(doc! { "$unionWith": { "coll": "hellos", "pipeline": branch(other) } });
        }
        let documents: Vec<Document> = self
            .hellos
            .clone_with_type::<Document>()
            .aggregate(pipeline)
            .batch_size(ONE_BATCH)
            .await
            .map_err(StoreError::unavailable)?
            .try_collect()
            .await
            .map_err(StoreError::unavailable)?;
        documents
            .into_iter()
            .map(|document| mongodb::bson::from_document(document).map_err(StoreError::unavailable))
            .collect()
    }

    /// Records the reliable reads' leases that took something, so that their confirmations can
    /// be answered: one `insert`. Recorded after the hellos are won: a failure in between
    /// leaves a lease no confirmation knows (404), whose hellos come back when it runs out.
    async fn record_leases(&self, takings: &[Taking], outcomes: &mut CallOutcomes<Lease>) {
        let recorded: Vec<usize> = (0..takings.len())
            .filter(|&at| takings[at].request.confirmable && !takings[at].won.is_empty())
            .collect();
        if recorded.is_empty() {
            return;
        }
        let forget_after = ttl_millis(self.limits.idempotency_ttl);
        let records = recorded.iter().map(|&at| LeaseDocument {
            id: takings[at].id.clone(),
            to: takings[at].inbox().to_owned(),
            until: takings[at].until,
            forget_at: DateTime::from_millis(takings[at].until.saturating_add(forget_after)),
            confirmed_at: None,
        });
        let outcome = self.leases.insert_many(records).ordered(false).await;
        match inserted(outcome.map(|_| ()), Operation::Lease) {
            Inserted::Each { refused } => {
                self.count_leases(recorded.len() as i64 - refused.len() as i64);
                for (index, _) in refused {
                    let error = StoreError::unavailable(anyhow::anyhow!(
                        "the store refused this lease's record; its hellos come back when it runs out"
                    ));
                    outcomes.set(recorded[index], Err(error));
                }
            }
            Inserted::All(error) => outcomes.fail(recorded, &error),
        }
    }

    /// How many hellos each lease's reader could still take, by inbox: one `aggregate`, for the
    /// inboxes where a lease saw anything (the others hold nothing leasable).
    async fn remaining(&self, takings: &[Taking]) -> Result<HashMap<String, u64>, StoreError> {
        let now = Millis::now().0;
        let (mut inboxes, mut claims): (Vec<&str>, Vec<Bson>) = (Vec::new(), vec![Bson::Null]);
        for taking in takings.iter().filter(|taking| taking.assigned_any) {
            inboxes.push(taking.inbox());
            claims.extend(taking.request.covering_claim.map(Bson::Int64));
        }
        if inboxes.is_empty() {
            return Ok(HashMap::new());
        }
        // One filter for every inbox (an `$or` of one per inbox is evaluated clause by clause
        // on some servers): a hello of one inbox stamped with the claim of another in the batch
        // would count, which takes two claims made in the same millisecond; the count is
        // advice to the reader, the leases themselves are exact.
        self.count_by_inbox(doc! {
            "to": { "$in": inboxes },
            "lease_until": { "$lt": now },
            "covered_by": { "$in": claims },
        })
        .await
    }
}

/// Each candidate to one of the `open` leases (but those `refused`), in the batch's order, oldest
/// first, as many as each may take.
fn assign<'a>(
    takings: &[Taking],
    open: &[usize],
    candidates: &'a [HelloDocument],
    refused: &HashSet<usize>,
) -> HashMap<usize, Vec<&'a HelloDocument>> {
    let mut assigned = HashMap::new();
    let mut given: HashSet<&str> = HashSet::new();
    for &at in open.iter().filter(|at| !refused.contains(at)) {
        let taking = &takings[at];
        let mine: Vec<&HelloDocument> = candidates
            .iter()
            .filter(|hello| hello.to == taking.inbox() && !given.contains(hello.id.as_str()))
            .filter(|hello| {
                hello.covered_by.is_none() || hello.covered_by == taking.request.covering_claim
            })
            .take(taking.request.limit as usize)
            .collect();
        given.extend(mine.iter().map(|hello| hello.id.as_str()));
        if !mine.is_empty() {
            assigned.insert(at, mine);
        }
    }
    assigned
}

/// A lease's answer.
fn answer(taking: Taking, remaining: u64) -> Lease {
    let took = !taking.won.is_empty();
    Lease {
        lease_id: took.then_some(taking.id),
        expires_at: took.then(|| Millis(taking.until).to_rfc3339()),
        hellos: taking
            .won
            .into_iter()
            .map(|hello| DeliveredHello {
                id: hello.id,
                from: hello.from,
                at: Millis(hello.at).to_rfc3339(),
                verified: hello.verified,
            })
            .collect(),
        remaining,
        redelivered: taking.redelivered,
    }
}
