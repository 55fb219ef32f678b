//! What world answered for each call of a batch, as the caller gets it.

use hello_common::{
    Problem,
    wire::{ConfirmOutcome, SendOutcome, StoredHello},
};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::value::RawValue;

use super::http::refused;
use crate::world_error::WorldError;

/// world-service's answer to a lease, with its hellos as world wrote them. They already have the
/// shape of the public answers' hellos ([`hello_common::wire::DeliveredHello`], the one type
/// both services use), so they are passed on as they are, not parsed and written again: on a
/// read of 100 hellos that was most of hello-service's own work.
#[derive(Debug, Deserialize)]
pub struct RawLease {
    /// Acknowledge with this id; `None` when nothing was taken.
    pub lease_id: Option<String>,
    /// A JSON array of hellos, oldest first.
    pub hellos: Box<RawValue>,
    /// Hellos still waiting (not taken by this or any live lease).
    pub remaining: u64,
    /// When the lease runs out (RFC 3339); `None` when nothing was taken.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// How many hellos `hellos` holds: counted (and checked to be an array) on arrival.
    #[serde(skip)]
    pub count: usize,
}

impl RawLease {
    /// Counts its hellos (and so checks that they are an array).
    fn counted(mut self) -> Result<Self, WorldError> {
        self.count = serde_json::from_str::<Vec<IgnoredAny>>(self.hellos.get())
            .map_err(|error| WorldError::NoAnswer(format!("unreadable hellos: {error}")))?
            .len();
        Ok(self)
    }
}

/// One outcome of a batch of leases ([`hello_common::wire::LeaseOutcome`]), with its hellos
/// passed on as they came.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawLeaseOutcome {
    Leased(RawLease),
    Refused(Problem),
}

pub fn stored(outcome: SendOutcome) -> Result<StoredHello, WorldError> {
    match outcome {
        SendOutcome::Stored(stored) => Ok(stored),
        SendOutcome::Refused(problem) => Err(refused(problem)),
    }
}

pub fn leased(outcome: RawLeaseOutcome) -> Result<RawLease, WorldError> {
    match outcome {
        RawLeaseOutcome::Leased(lease) => lease.counted(),
        RawLeaseOutcome::Refused(problem) => Err(refused(problem)),
    }
}

pub fn confirmed(outcome: ConfirmOutcome) -> Result<(), WorldError> {
    match outcome {
        ConfirmOutcome::Confirmed => Ok(()),
        ConfirmOutcome::Refused(problem) => Err(refused(problem)),
    }
}
