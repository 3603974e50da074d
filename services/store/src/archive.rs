//! The raw-event archive in MongoDB: database = namespace, collection `events`, `_id` = event id.

use beacon_schemas::Event;
use mongodb::bson::{self, Document, RawDocumentBuf, doc};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use std::time::Duration;

/// Name of the TTL index that enforces `BEACON_ARCHIVE_RETENTION`.
const TTL_INDEX: &str = "ts_ttl";

/// Handle on the archive collection.
#[derive(Clone)]
pub struct Archive {
    client: Client,
    events: Collection<Document>,
}

impl Archive {
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, mongodb::error::Error> {
        Self::connect_with(url, namespace, Duration::from_secs(10)).await
    }

    /// [`Archive::connect`] failing a connect or a server selection after `timeout` (unless
    /// the URL sets its own `connectTimeoutMS` / `serverSelectionTimeoutMS`), so a write fails
    /// well inside the consumers' ack wait rather than after the driver's 30 s.
    pub async fn connect_with(
        url: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Result<Self, mongodb::error::Error> {
        let mut options = ClientOptions::parse(url).await?;
        options.app_name = Some("beacon".into());
        options.server_selection_timeout.get_or_insert(timeout);
        options.connect_timeout.get_or_insert(timeout);
        let client = Client::with_options(options)?;
        let events = client.database(namespace).collection("events");
        Ok(Self { client, events })
    }

    pub fn events(&self) -> &Collection<Document> {
        &self.events
    }

    /// The same collection, for documents already encoded (the archiver encodes each event
    /// alone, so one that BSON cannot hold fails alone).
    pub fn raw_events(&self) -> Collection<RawDocumentBuf> {
        self.events.clone_with_type()
    }

    /// Round trip for `/healthz`.
    pub async fn ping(&self) -> Result<(), mongodb::error::Error> {
        self.events
            .client()
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
    }

    /// Indexes the archive needs: `_id` is the event id (unique by definition); (site, time)
    /// serves per-site range reads and replays; with a retention, a TTL index on the event time
    /// deletes older raw events (changing the retention replaces that index).
    pub async fn ensure_indexes(
        &self,
        retention: Option<Duration>,
    ) -> Result<(), mongodb::error::Error> {
        let by_site_time = IndexModel::builder()
            .keys(doc! { "site": 1, "ts": 1 })
            .options(IndexOptions::builder().name("site_ts".to_string()).build())
            .build();
        self.events.create_index(by_site_time).await?;

        let existing = self.events.list_index_names().await.unwrap_or_default();
        let has_ttl = existing.iter().any(|n| n == TTL_INDEX);
        match retention {
            None if has_ttl => self.events.drop_index(TTL_INDEX).await?,
            None => {}
            Some(retention) => {
                let ttl = IndexModel::builder()
                    .keys(doc! { "ts": 1 })
                    .options(
                        IndexOptions::builder()
                            .name(TTL_INDEX.to_string())
                            .expire_after(retention)
                            .build(),
                    )
                    .build();
                match self.events.create_index(ttl.clone()).await {
                    Ok(_) => {}
                    // Same name, other expiry: replace it.
                    Err(_) if has_ttl => {
                        self.events.drop_index(TTL_INDEX).await?;
                        self.events.create_index(ttl).await?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Drops the namespace's database (tests only).
    pub async fn drop_namespace(&self) -> Result<(), mongodb::error::Error> {
        self.client
            .database(&self.events.namespace().db)
            .drop()
            .await
    }
}

/// The archived form of an event: every field, `_id` = event id, times as BSON dates.
pub fn event_document(event: &Event) -> Document {
    let props: Document = event
        .props
        .iter()
        .map(|(k, v)| (k.clone(), bson::Bson::String(v.clone())))
        .collect();
    let e = &event.enrichment;
    doc! {
        "_id": event.id.to_string(),
        "v": i32::from(event.v),
        "site": &event.site,
        "name": &event.name,
        "ts": bson::DateTime::from_millis(event.timestamp_ms),
        "received_at": bson::DateTime::from_millis(event.received_at_ms),
        "url": &event.url,
        "hostname": &event.hostname,
        "pathname": &event.pathname,
        "referrer": event.referrer.as_deref(),
        "props": props,
        // BSON has no unsigned 64-bit integer; the bits are kept as a signed one.
        "visitor_id": event.visitor_id as i64,
        "interactive": event.interactive,
        "source": e.source.as_deref(),
        "utm_source": e.utm_source.as_deref(),
        "utm_medium": e.utm_medium.as_deref(),
        "utm_campaign": e.utm_campaign.as_deref(),
        "utm_content": e.utm_content.as_deref(),
        "utm_term": e.utm_term.as_deref(),
        "browser": e.browser.as_deref(),
        "browser_version": e.browser_version.as_deref(),
        "os": e.os.as_deref(),
        "os_version": e.os_version.as_deref(),
        "device": e.device.as_deref(),
        "country": e.country.as_deref(),
    }
}
