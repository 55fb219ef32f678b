//! A store whose every operation is a span of the request's trace ("store send", "store lease",
//! ...), with the backend named: used only when traces are on (see `open_store`), so a service
//! without traces pays nothing for it.

use async_trait::async_trait;
use hello_common::{
    Name,
    token::TokenHash,
    wire::{Lease, StoredHello},
};
use tracing::Instrument;

use super::{
    Claim, ClaimChange, Confirmation, LeaseRequest, NewHello, Store, StoreError,
    claims::{Claims, ClaimsWanted},
};

/// Wraps another store; answers exactly as it does.
#[derive(Debug)]
pub struct TracedStore<S: Store>(pub S);

impl<S: Store> TracedStore<S> {
    fn span(&self, operation: &'static str) -> tracing::Span {
        tracing::info_span!(
            "store",
            otel.name = %format!("store {operation}"),
            otel.kind = "client",
            operation,
            db.system = self.0.backend(),
        )
    }
}

#[async_trait]
impl<S: Store> Store for TracedStore<S> {
    async fn send(&self, hello: NewHello) -> Result<StoredHello, StoreError> {
        self.0.send(hello).instrument(self.span("send")).await
    }

    async fn lease(&self, name: &Name, request: LeaseRequest) -> Result<Lease, StoreError> {
        self.0
            .lease(name, request)
            .instrument(self.span("lease"))
            .await
    }

    async fn acknowledge(&self, lease_ids: &[String]) -> Result<u64, StoreError> {
        self.0
            .acknowledge(lease_ids)
            .instrument(self.span("acknowledge"))
            .await
    }

    async fn confirm(&self, name: &Name, lease_id: &str) -> Result<Confirmation, StoreError> {
        self.0
            .confirm(name, lease_id)
            .instrument(self.span("confirm"))
            .await
    }

    async fn claims(&self, wanted: &ClaimsWanted) -> Result<Claims, StoreError> {
        self.0
            .claims(wanted)
            .instrument(self.span("find claims"))
            .await
    }

    async fn send_batch(
        &self,
        hellos: Vec<NewHello>,
        claims: &Claims,
    ) -> Vec<Result<StoredHello, StoreError>> {
        self.0
            .send_batch(hellos, claims)
            .instrument(self.span("send"))
            .await
    }

    async fn lease_batch(
        &self,
        leases: Vec<(Name, LeaseRequest)>,
    ) -> Vec<Result<Lease, StoreError>> {
        self.0
            .lease_batch(leases)
            .instrument(self.span("lease"))
            .await
    }

    async fn confirm_batch(
        &self,
        confirmations: Vec<(Name, String)>,
    ) -> Vec<Result<Confirmation, StoreError>> {
        self.0
            .confirm_batch(confirmations)
            .instrument(self.span("confirm"))
            .await
    }

    async fn claim_name(&self, name: &Name, token: TokenHash) -> Result<(), StoreError> {
        self.0
            .claim_name(name, token)
            .instrument(self.span("claim"))
            .await
    }

    async fn claim_covering(&self, name: &Name) -> Result<Option<Claim>, StoreError> {
        self.0
            .claim_covering(name)
            .instrument(self.span("find claim"))
            .await
    }

    async fn claim_by_token(&self, token: &TokenHash) -> Result<Option<Claim>, StoreError> {
        self.0
            .claim_by_token(token)
            .instrument(self.span("find claim by token"))
            .await
    }

    async fn rotate_token(
        &self,
        name: &Name,
        current: &TokenHash,
        new: TokenHash,
    ) -> Result<ClaimChange, StoreError> {
        self.0
            .rotate_token(name, current, new)
            .instrument(self.span("rotate"))
            .await
    }

    async fn release_name(
        &self,
        name: &Name,
        token: &TokenHash,
    ) -> Result<ClaimChange, StoreError> {
        self.0
            .release_name(name, token)
            .instrument(self.span("release"))
            .await
    }

    async fn wakeable(
        &self,
        watched: std::sync::Arc<[super::WatchedRead]>,
    ) -> Result<super::Wakeable, StoreError> {
        // Asked every interval, outside any request: not worth a trace of its own.
        self.0.wakeable(watched).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().instrument(self.span("ping")).await
    }

    async fn stored_hellos(&self) -> Result<u64, StoreError> {
        // Read at each scrape, outside any request: not worth a trace of its own.
        self.0.stored_hellos().await
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.0.close().await
    }

    fn backend(&self) -> &'static str {
        self.0.backend()
    }

    fn commands(&self) -> &super::commands::StoreCommands {
        self.0.commands()
    }
}
