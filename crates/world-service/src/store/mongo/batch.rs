//! What every batched operation on MongoDB shares: outcomes kept per call, one failure told to
//! every call it touched, unordered multi-document inserts sorted by document, and the
//! multi-statement `update` command (MongoDB 7.0 has it; `bulkWrite` is 8.0 only), and reading
//! every document a batch names in one `find`.

use futures::TryStreamExt;
use mongodb::{
    Collection,
    bson::{Document, doc},
    error::{ErrorKind, InsertManyError},
};
use serde::de::DeserializeOwned;

use super::{DUPLICATE_KEY, MongoStore, ONE_BATCH, counts, write_failed};
use crate::store::{Operation, StoreError};

/// Every document of `collection` that `filter` matches, in one `find` (one batch, no `getMore`).
pub(super) async fn find_all<T>(
    collection: &Collection<T>,
    filter: Document,
) -> mongodb::error::Result<Vec<T>>
where
    T: DeserializeOwned + Send + Sync,
{
    collection
        .find(filter)
        .batch_size(ONE_BATCH)
        .await?
        .try_collect()
        .await
}

/// The outcome of each call of a batch, filled in as they are known.
pub(super) struct CallOutcomes<T>(Vec<Option<Result<T, StoreError>>>);

impl<T> CallOutcomes<T> {
    pub fn new(calls: usize) -> Self {
        Self((0..calls).map(|_| None).collect())
    }

    pub fn set(&mut self, index: usize, outcome: Result<T, StoreError>) {
        self.0[index] = Some(outcome);
    }

    /// Whether the call at `index` has its outcome already.
    pub fn is_set(&self, index: usize) -> bool {
        self.0[index].is_some()
    }

    /// Fails every call of `indices` with `error` (each with a copy of its own).
    pub fn fail(&mut self, indices: impl IntoIterator<Item = usize>, error: &StoreError) {
        for index in indices {
            self.0[index] = Some(Err(error.for_another_call()));
        }
    }

    /// Every outcome, in the calls' order. A call left without one is world's bug: it fails.
    pub fn into_vec(self) -> Vec<Result<T, StoreError>> {
        self.0
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    Err(StoreError::unavailable(anyhow::anyhow!(
                        "this call of the batch was left without an outcome"
                    )))
                })
            })
            .collect()
    }
}

/// What a multi-document `insert` (unordered) did to each of its documents.
pub(super) enum Inserted {
    /// Every document is stored, except those in `refused`: (index, whether for a duplicate
    /// key). Nothing else is in doubt.
    Each { refused: Vec<(usize, bool)> },
    /// The outcome of every document is unknown, or none was written: the error says which.
    All(StoreError),
}

/// Sorts the outcome of an unordered `insert_many` by document.
pub(super) fn inserted(
    outcome: Result<(), mongodb::error::Error>,
    operation: Operation,
) -> Inserted {
    let Err(error) = outcome else {
        return Inserted::Each {
            refused: Vec::new(),
        };
    };
    match error.kind.as_ref() {
        ErrorKind::InsertMany(InsertManyError {
            write_errors: Some(errors),
            write_concern_error: None,
            ..
        }) => Inserted::Each {
            refused: errors
                .iter()
                .map(|error| (error.index, error.code == DUPLICATE_KEY))
                .collect(),
        },
        // Written but not confirmed durable: unknown, like a broken connection.
        ErrorKind::InsertMany(InsertManyError {
            write_concern_error: Some(_),
            ..
        }) => Inserted::All(StoreError::OutcomeUnknown {
            operation,
            cause: error.into(),
        }),
        _ => Inserted::All(write_failed(operation)(error)),
    }
}

impl MongoStore {
    /// Runs one `update` command of `statements` (each `{q, u, multi}`), unordered and durable
    /// as every write is. Fails, as a write does, when the command failed or was not confirmed
    /// durable. Answers the indexes of the statements the server refused (one that updates many
    /// documents may have updated some before it was refused); the callers read back what the
    /// others did (the command answers only totals).
    pub(super) async fn update_each(
        &self,
        collection: &str,
        statements: Vec<Document>,
        operation: Operation,
    ) -> Result<Vec<usize>, StoreError> {
        let statements_count = statements.len();
        let answer = self
            .write_command("update", collection, "updates", statements, operation)
            .await?;
        if answer.contains_key("writeConcernError") {
            return Err(StoreError::OutcomeUnknown {
                operation,
                cause: anyhow::anyhow!("the store did not confirm the {operation} durable"),
            });
        }
        let statements_sent = statements_count;
        let refused: Vec<usize> = answer
            .get_array("writeErrors")
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|error| {
                        let index = error.as_document()?.get("index")?;
                        usize::try_from(counts::whole(index)).ok()
                    })
                    .filter(|&index| index < statements_sent)
                    .collect()
            })
            .unwrap_or_default();
        if !refused.is_empty() {
            tracing::warn!(
                refused = refused.len(),
                "the store refused statements of a batched {operation}"
            );
        }
        Ok(refused)
    }

    /// Runs one `delete` command of `statements` (each `{q, limit}`), unordered and durable as
    /// every write is; answers how many documents it deleted. Fails, as a write does, when the
    /// command failed, any statement was refused, or it was not confirmed durable.
    pub(super) async fn delete_each(
        &self,
        collection: &str,
        statements: Vec<Document>,
        operation: Operation,
    ) -> Result<u64, StoreError> {
        let answer = self
            .write_command("delete", collection, "deletes", statements, operation)
            .await?;
        let refused = answer
            .get_array("writeErrors")
            .is_ok_and(|errors| !errors.is_empty());
        if refused || answer.contains_key("writeConcernError") {
            return Err(StoreError::OutcomeUnknown {
                operation,
                cause: anyhow::anyhow!("the store did not confirm the {operation}'s deletions"),
            });
        }
        Ok(answer.get("n").map(counts::whole).unwrap_or_default())
    }

    /// Runs one write command (`update` or `delete`) of `statements` on `collection`,
    /// unordered and durable as every write is; answers the server's reply.
    async fn write_command(
        &self,
        command: &str,
        collection: &str,
        statements_field: &str,
        statements: Vec<Document>,
        operation: Operation,
    ) -> Result<Document, StoreError> {
        let mut document = doc! { command: collection };
        document.insert(statements_field, statements);
        document.insert("ordered", false);
        document.insert("writeConcern", doc! { "w": "majority", "j": true });
        self.client
            .database(&self.database)
            .run_command(document)
            .await
            .map_err(write_failed(operation))
    }
}
