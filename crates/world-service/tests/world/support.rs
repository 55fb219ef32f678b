//! Opening each backend for a test, and reopening it to check durability.

use std::{sync::Arc, time::Duration};

use hello_common::{IdempotencyKey, Name, testing::MongoTestServer, wire::Lease};
use tempfile::TempDir;
use world_service::store::{
    LeaseRequest, NewHello, Store, StoreLimits, embedded::EmbeddedStore, mongo::MongoStore,
};

/// A lease long enough not to run out during a test, in milliseconds.
pub const LONG_LEASE: u64 = 60_000;

/// Limits used unless a test needs others.
pub fn limits() -> StoreLimits {
    StoreLimits {
        inbox_cap: 10_000,
        store_cap: 1_000_000,
        idempotency_cap: 1_000_000,
        idempotency_ttl: Duration::from_secs(3600),
        claim_cap: 1_000_000,
        lease_record_cap: 1_000_000,
    }
}

/// A store under test, and what it takes to open it again.
#[derive(Debug)]
pub struct TestStore {
    pub store: Arc<dyn Store>,
    reopen: Reopen,
    limits: StoreLimits,
}

#[derive(Debug)]
enum Reopen {
    Embedded(TempDir),
    Mongo { uri: String, database: String },
}

/// A fresh embedded store in a temp dir.
pub async fn open_embedded(limits: StoreLimits) -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path(), limits).expect("open embedded store");
    TestStore {
        store: Arc::new(store),
        reopen: Reopen::Embedded(dir),
        limits,
    }
}

/// A fresh database on the test run's nx-27017.
pub async fn open_mongo(limits: StoreLimits) -> TestStore {
    let server = MongoTestServer::shared();
    let (uri, database) = (server.uri(), server.fresh_database());
    let store = MongoStore::connect(&uri, &database, limits)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "cannot connect to nx-27017 at {uri}: {error:#} (log: {})",
                server.log_file().display()
            )
        });
    TestStore {
        store: Arc::new(store),
        reopen: Reopen::Mongo { uri, database },
        limits,
    }
}

impl TestStore {
    /// Closes the store and opens the same data again, as a restarted process would.
    pub async fn reopen(self) -> Self {
        let Self {
            store,
            reopen,
            limits,
        } = self;
        store.close().await.expect("close the store");
        drop(store);
        let store: Arc<dyn Store> = match &reopen {
            Reopen::Embedded(dir) => Arc::new(
                EmbeddedStore::open(dir.path(), limits).expect("reopen the embedded store"),
            ),
            Reopen::Mongo { uri, database } => Arc::new(
                MongoStore::connect(uri, database, limits)
                    .await
                    .expect("reconnect to nx-27017"),
            ),
        };
        Self {
            store,
            reopen,
            limits,
        }
    }

    /// Acknowledges one lease that took something; returns how many hellos it deleted.
    pub async fn acknowledge(&self, lease: &Lease) -> u64 {
        let id = lease.lease_id.clone().expect("the lease took hellos");
        self.store.acknowledge(&[id]).await.expect("acknowledge")
    }

    /// Leases as world's routes do: under the claim covering `to` now, if any
    /// ([`LeaseRequest::covering_claim`]).
    pub async fn lease_as_checked(&self, to: &str, limit: u32, lease_ms: u64) -> Lease {
        let covering_claim = self
            .store
            .claim_covering(&name(to))
            .await
            .expect("claim lookup")
            .map(|claim| claim.claimed_at);
        self.store
            .lease(
                &name(to),
                LeaseRequest {
                    covering_claim,
                    ..take(limit, lease_ms)
                },
            )
            .await
            .expect("lease")
    }

    /// Leases up to `limit` hellos of `to` for [`LONG_LEASE`] and expects a lease.
    pub async fn leased(&self, to: &str, limit: u32) -> Lease {
        self.store
            .lease(&name(to), take(limit, LONG_LEASE))
            .await
            .unwrap_or_else(|error| panic!("lease of {to} failed: {error}"))
    }

    /// The claim whose token hashes to `token`, if any; expects the lookup to succeed.
    pub async fn claim_by_token(
        &self,
        token: &hello_common::token::TokenHash,
    ) -> Option<world_service::store::Claim> {
        self.store
            .claim_by_token(token)
            .await
            .unwrap_or_else(|error| panic!("claim lookup failed: {error}"))
    }

    /// Claims `name` with a new token and expects success; the token.
    pub async fn claim(&self, name: &str) -> hello_common::token::Token {
        let token = hello_common::token::Token::generate();
        self.store
            .claim_name(&crate::support::name(name), token.hash())
            .await
            .unwrap_or_else(|error| panic!("claim {name} failed: {error}"));
        token
    }

    /// Sends `from` → `to` and expects success.
    pub async fn say(&self, from: &str, to: &str) -> hello_common::wire::StoredHello {
        self.store
            .send(hello(from, to, None))
            .await
            .unwrap_or_else(|error| panic!("send {from} -> {to} failed: {error}"))
    }
}

/// A new hello.
pub fn hello(from: &str, to: &str, key: Option<&str>) -> NewHello {
    NewHello {
        to: name(to),
        from: name(from),
        idempotency_key: key.map(|key| IdempotencyKey::parse(key).expect("valid key")),
        verified: false,
    }
}

/// A valid name.
pub fn name(raw: &str) -> Name {
    Name::parse(raw).expect("valid name")
}

/// A lease of up to `limit` hellos for `lease_ms`.
pub fn take(limit: u32, lease_ms: u64) -> LeaseRequest {
    LeaseRequest {
        limit,
        lease: Duration::from_millis(lease_ms),
        covering_claim: None,
        confirmable: true,
    }
}
