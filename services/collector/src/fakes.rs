//! Fakes of the collector's seams for its own tests: records held in memory (that can be made
//! slow or unreachable) and a sink that keeps what it is given (or is down).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use beacon_jetstream::{Confirmations, PublishError};
use beacon_pipeline::visitor::Salt;
use beacon_schemas::Event;
use beacon_store::StoreError;
use chrono::NaiveDate;
use futures::future::BoxFuture;

use crate::seams::{EventSink, Records};

#[derive(Default)]
pub struct FakeRecords {
    pub sites: Mutex<Vec<String>>,
    /// Ingest token → its site.
    pub tokens: HashMap<String, String>,
    /// While written to (held), reads of the site list wait: a database that cannot answer.
    pub gate: tokio::sync::RwLock<()>,
    /// Every read fails: a database that is down.
    pub down: AtomicBool,
}

impl FakeRecords {
    pub fn with_sites(sites: &[&str]) -> Self {
        Self {
            sites: Mutex::new(sites.iter().map(|s| s.to_string()).collect()),
            ..Self::default()
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Invalid("the fake database is down".into()));
        }
        Ok(())
    }
}

impl Records for FakeRecords {
    fn site_domains(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let _open = self.gate.read().await;
            self.check()?;
            Ok(self.sites.lock().expect("sites").clone())
        })
    }

    fn salt_for(&self, _day: NaiveDate) -> BoxFuture<'_, Result<Salt, StoreError>> {
        Box::pin(async move { self.check().map(|()| Salt([7; 16])) })
    }

    fn existing_salt(&self, _day: NaiveDate) -> BoxFuture<'_, Result<Option<Salt>, StoreError>> {
        Box::pin(async move { self.check().map(|()| None) })
    }

    fn site_for_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(async move { self.check().map(|()| self.tokens.get(token).cloned()) })
    }
}

/// Keeps every event it is asked to publish.
#[derive(Default)]
pub struct FakeSink {
    pub published: Mutex<Vec<Event>>,
    pub disconnected: AtomicBool,
}

impl EventSink for FakeSink {
    fn is_connected(&self) -> bool {
        !self.disconnected.load(Ordering::SeqCst)
    }

    fn confirm<'a>(
        &'a self,
        batch: &'a Confirmations<'a>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(async move {
            if !self.is_connected() {
                return Err(PublishError::Disconnected);
            }
            let mut published = self.published.lock().expect("published");
            published.extend(batch.events().iter().cloned());
            Ok(())
        })
    }
}
