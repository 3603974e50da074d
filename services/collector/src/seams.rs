//! What the collector needs from the outside world, as two traits: the records it reads from
//! PostgreSQL (sites, salts, ingest tokens) and the stream it publishes to. Production passes
//! PostgreSQL and JetStream; the crate's own tests pass fakes, so the whole HTTP edge is tested in
//! milliseconds without a server.

use beacon_jetstream::{Confirmations, PublishError, Publisher};
use beacon_pipeline::visitor::Salt;
use beacon_store::{Pool, StoreError, salts, sites};
use chrono::NaiveDate;
use futures::future::BoxFuture;

/// The records the collector reads.
pub trait Records: Send + Sync + 'static {
    /// Domains of every registered site.
    fn site_domains(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    /// The visitor-hash salt of `day`, created on first use.
    fn salt_for(&self, day: NaiveDate) -> BoxFuture<'_, Result<Salt, StoreError>>;
    /// The salt of `day` if it exists (yesterday's, to join visits across midnight).
    fn existing_salt(&self, day: NaiveDate) -> BoxFuture<'_, Result<Option<Salt>, StoreError>>;
    /// The site an ingest token is for; `None` for an unknown token.
    fn site_for_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>>;
}

/// Where accepted events go.
pub trait EventSink: Send + Sync + 'static {
    /// False while the stream cannot be reached: the collector refuses at once.
    fn is_connected(&self) -> bool;
    /// One round of publishing `batch`; see [`Publisher::confirm`].
    fn confirm<'a>(
        &'a self,
        batch: &'a Confirmations<'a>,
    ) -> BoxFuture<'a, Result<(), PublishError>>;
}

/// The records in PostgreSQL.
pub struct PostgresRecords(pub Pool);

impl Records for PostgresRecords {
    fn site_domains(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let list = sites::list(&self.0).await?;
            Ok(list.into_iter().map(|site| site.domain).collect())
        })
    }

    fn salt_for(&self, day: NaiveDate) -> BoxFuture<'_, Result<Salt, StoreError>> {
        Box::pin(salts::salt_for(&self.0, day))
    }

    fn existing_salt(&self, day: NaiveDate) -> BoxFuture<'_, Result<Option<Salt>, StoreError>> {
        Box::pin(salts::existing_salt(&self.0, day))
    }

    fn site_for_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, StoreError>> {
        Box::pin(beacon_store::ingest_tokens::site_for_token(&self.0, token))
    }
}

impl EventSink for Publisher {
    fn is_connected(&self) -> bool {
        Publisher::is_connected(self)
    }

    fn confirm<'a>(
        &'a self,
        batch: &'a Confirmations<'a>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        Box::pin(Publisher::confirm(self, batch))
    }
}
