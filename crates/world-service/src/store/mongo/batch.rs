//! What every batched operation on MongoDB shares: outcomes kept per call, one failure told to
//! every call it touched, and the multi-statement write commands MongoDB 7.0 has (`update` with
//! one statement per call; `bulkWrite` is 8.0 only).

use mongodb::{
    bson::{Document, doc},
    error::{ErrorKind, InsertManyError},
};

use super::{DUPLICATE_KEY, MongoStore, write_failed};
use crate::store::{Operation, StoreError};

/// The outcome of each call of a batch, filled in as they are known.
pub(super) struct Outcomes<T>(Vec<Option<Result<T, StoreError>>>);

impl<T> Outcomes<T> {
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
            self.0[index] = Some(Err(error.copy()));
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
    /// durable; a statement the server refused did nothing, and the callers read back what each
    /// statement did (the command answers only totals).
    pub(super) async fn update_each(
        &self,
        collection: &str,
        statements: Vec<Document>,
        operation: Operation,
    ) -> Result<(), StoreError> {
        let command = doc! {
            "update": collection,
            "updates": statements,
            "ordered": false,
            "writeConcern": { "w": "majority", "j": true },
        };
        let answer = self
            .client
            .database(&self.database)
            .run_command(command)
            .await
            .map_err(write_failed(operation))?;
        if answer.contains_key("writeConcernError") {
            return Err(StoreError::OutcomeUnknown {
                operation,
                cause: anyhow::anyhow!("the store did not confirm the {operation} durable"),
            });
        }
        // A statement the server refused did nothing: the callers read back what each did.
        if let Ok(errors) = answer.get_array("writeErrors")
            && !errors.is_empty()
        {
            tracing::warn!(
                refused = errors.len(),
                first = %errors[0],
                "the store refused statements of a batched {operation}"
            );
        }
        Ok(())
    }
}
