//! What the archiver does with a batch: decode, insert unordered, and map every outcome to an
//! ack decision. Duplicate keys are successes (the event is already archived).

use beacon_jetstream::{BatchHandler, Decision, Delivery};
use beacon_store::Archive;
use beacon_store::archive::event_document;
use mongodb::bson::RawDocumentBuf;
use mongodb::error::{ErrorKind, InsertManyError};

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

pub struct ArchiveHandler {
    archive: Archive,
}

impl ArchiveHandler {
    pub fn new(archive: Archive) -> Self {
        Self { archive }
    }
}

impl BatchHandler for ArchiveHandler {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Decision> {
        let mut decisions = vec![Decision::Ack; batch.len()];
        let mut documents = Vec::with_capacity(batch.len());
        let mut positions = Vec::with_capacity(batch.len());
        for (i, delivery) in batch.iter().enumerate() {
            match beacon_schemas::decode(delivery.payload()) {
                Ok(event) => match event.validate() {
                    // Encoded here, one by one, so that a document BSON cannot hold is set
                    // aside alone instead of failing the whole insert.
                    Ok(()) => match RawDocumentBuf::from_document(&event_document(&event)) {
                        Ok(document) => {
                            documents.push(document);
                            positions.push(i);
                        }
                        Err(e) => {
                            decisions[i] = Decision::DeadLetter {
                                reason: format!("cannot be encoded as BSON: {e}"),
                            }
                        }
                    },
                    Err(e) => {
                        decisions[i] = Decision::DeadLetter {
                            reason: e.to_string(),
                        }
                    }
                },
                Err(e) => {
                    decisions[i] = Decision::DeadLetter {
                        reason: e.to_string(),
                    }
                }
            }
        }
        if documents.is_empty() {
            return decisions;
        }
        let attempted = documents.len();
        let mut failed = 0usize;
        let mut duplicates = 0usize;
        if let Err(error) = self
            .archive
            .raw_events()
            .insert_many(documents)
            .ordered(false)
            .await
        {
            match *error.kind {
                ErrorKind::InsertMany(InsertManyError {
                    write_errors: Some(ref errors),
                    write_concern_error: None,
                    ..
                }) => {
                    for write_error in errors {
                        let Some(&position) = positions.get(write_error.index) else {
                            continue;
                        };
                        if write_error.code == DUPLICATE_KEY {
                            duplicates += 1;
                        } else {
                            failed += 1;
                            decisions[position] = Decision::Retry {
                                reason: format!(
                                    "MongoDB error {}: {}",
                                    write_error.code, write_error.message
                                ),
                            };
                        }
                    }
                }
                // Connection, timeout or write-concern failure: nothing is known to be stored.
                // Retrying is safe; what did get stored comes back as a duplicate key.
                _ => {
                    failed = attempted;
                    for &position in &positions {
                        decisions[position] = Decision::Retry {
                            reason: error.to_string(),
                        };
                    }
                }
            }
        }
        metrics::counter!(beacon_metrics::ARCHIVER_INSERTED.name)
            .increment((attempted - failed - duplicates) as u64);
        metrics::counter!(beacon_metrics::ARCHIVER_DUPLICATES.name).increment(duplicates as u64);
        decisions
    }
}
