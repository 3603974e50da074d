//! The raw-event archive in MongoDB: database = namespace, collection `events`, `_id` = event id.

use beacon_schemas::{Enrichment, Event, EventId, Revenue};
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

    /// Deletes every archived event of `site`; returns how many.
    pub async fn delete_site(&self, site: &str) -> Result<u64, mongodb::error::Error> {
        Ok(self
            .events
            .delete_many(doc! { "site": site })
            .await?
            .deleted_count)
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
        // What replay from the archive needs to rebuild exactly what the stream gives
        // (documents archived before these fields lack them; see ARCHITECTURE.md).
        "previous_visitor_id": event.previous_visitor_id.map(|id| id as i64),
        "scroll_depth": event.scroll_depth.map(i32::from),
        "engagement_ms": event.engagement_ms.map(|ms| ms as i64),
        "revenue": event.revenue.as_ref().map(|r| doc! { "amount": &r.amount, "currency": &r.currency }),
    }
}

/// Why an archived document cannot be read back as an event.
#[derive(Debug, thiserror::Error)]
#[error("archived event {id}: {problem}")]
pub struct UnreadableDocument {
    pub id: String,
    pub problem: String,
}

/// The event an archived document holds: the inverse of [`event_document`].
pub fn event_from_document(document: &Document) -> Result<Event, UnreadableDocument> {
    let id = document.get_str("_id").unwrap_or_default().to_string();
    let problem = |problem: String| UnreadableDocument {
        id: id.clone(),
        problem,
    };
    let text = |field: &str| -> Result<String, UnreadableDocument> {
        document
            .get_str(field)
            .map(str::to_string)
            .map_err(|e| problem(format!("{field}: {e}")))
    };
    // Absent and null both mean "none".
    let optional = |field: &str| document.get_str(field).ok().map(str::to_string);
    let time = |field: &str| -> Result<i64, UnreadableDocument> {
        document
            .get_datetime(field)
            .map(|t| t.timestamp_millis())
            .map_err(|e| problem(format!("{field}: {e}")))
    };
    let integer = |field: &str| match document.get(field) {
        Some(bson::Bson::Int64(n)) => Some(*n),
        Some(bson::Bson::Int32(n)) => Some(i64::from(*n)),
        _ => None,
    };
    let props = match document.get_document("props") {
        Ok(props) => props
            .iter()
            .map(|(k, v)| match v {
                bson::Bson::String(v) => Ok((k.clone(), v.clone())),
                other => Err(problem(format!("props.{k}: not a string: {other}"))),
            })
            .collect::<Result<_, _>>()?,
        Err(_) => Default::default(),
    };
    let revenue = document
        .get_document("revenue")
        .ok()
        .map(|r| -> Result<Revenue, UnreadableDocument> {
            Ok(Revenue {
                amount: r
                    .get_str("amount")
                    .map_err(|e| problem(format!("revenue.amount: {e}")))?
                    .to_string(),
                currency: r
                    .get_str("currency")
                    .map_err(|e| problem(format!("revenue.currency: {e}")))?
                    .to_string(),
            })
        })
        .transpose()?;
    Ok(Event {
        v: integer("v")
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| problem("v: missing".into()))?,
        id: id
            .parse::<EventId>()
            .map_err(|e| problem(format!("_id: {e}")))?,
        site: text("site")?,
        name: text("name")?,
        timestamp_ms: time("ts")?,
        received_at_ms: time("received_at")?,
        url: text("url")?,
        hostname: text("hostname")?,
        pathname: text("pathname")?,
        referrer: optional("referrer"),
        props,
        visitor_id: integer("visitor_id").ok_or_else(|| problem("visitor_id: missing".into()))?
            as u64,
        interactive: document.get_bool("interactive").unwrap_or(true),
        enrichment: Enrichment {
            source: optional("source"),
            utm_source: optional("utm_source"),
            utm_medium: optional("utm_medium"),
            utm_campaign: optional("utm_campaign"),
            utm_content: optional("utm_content"),
            utm_term: optional("utm_term"),
            browser: optional("browser"),
            browser_version: optional("browser_version"),
            os: optional("os"),
            os_version: optional("os_version"),
            device: optional("device"),
            country: optional("country"),
        },
        previous_visitor_id: integer("previous_visitor_id").map(|id| id as u64),
        scroll_depth: integer("scroll_depth").and_then(|d| u8::try_from(d).ok()),
        engagement_ms: integer("engagement_ms").and_then(|ms| u64::try_from(ms).ok()),
        revenue,
    })
}

impl Archive {
    /// Every archived event of `site` whose time is in `[from_ms, to_ms)`, in time order, handed
    /// to `on_event`; returns how many were read. A document that does not read back as an event
    /// is an error (the archive holds only what the archiver wrote).
    pub async fn site_events(
        &self,
        site: &str,
        from_ms: i64,
        to_ms: i64,
        mut on_event: impl FnMut(Event),
    ) -> Result<u64, ArchiveReadError> {
        use futures::TryStreamExt as _;
        let filter = doc! {
            "site": site,
            "ts": {
                "$gte": bson::DateTime::from_millis(from_ms),
                "$lt": bson::DateTime::from_millis(to_ms),
            },
        };
        let mut cursor = self
            .events
            .find(filter)
            .sort(doc! { "site": 1, "ts": 1 })
            .batch_size(2_000)
            .await?;
        let mut read = 0;
        while let Some(document) = cursor.try_next().await? {
            on_event(event_from_document(&document)?);
            read += 1;
        }
        Ok(read)
    }
}

/// Why reading the archive back failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveReadError {
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    #[error(transparent)]
    Unreadable(#[from] UnreadableDocument),
}

#[cfg(test)]
mod tests {
    use beacon_pipeline::test_events::{event, on_page};

    use super::*;

    #[test]
    fn an_archived_event_reads_back_as_itself() {
        let mut full = on_page(
            event("a.example", "signup", 1_780_000_000_123, u64::MAX - 3),
            "/pricing",
        );
        full.referrer = Some("news.example/today".into());
        full.props.insert("plan".into(), "pro".into());
        full.interactive = false;
        full.previous_visitor_id = Some(u64::MAX - 9);
        full.scroll_depth = Some(80);
        full.engagement_ms = Some(12_345);
        full.revenue = Some(Revenue {
            amount: "12.50".into(),
            currency: "EUR".into(),
        });
        full.enrichment.source = Some("News".into());
        full.enrichment.country = Some("DE".into());
        full.enrichment.os_version = Some("14".into());
        full.received_at_ms += 5;
        let bare = event("b.example", "pageview", 1_780_000_000_000, 7);
        for original in [full, bare] {
            let read = event_from_document(&event_document(&original)).expect("reads back");
            assert_eq!(read, original);
        }
    }

    #[test]
    fn a_document_missing_a_field_is_refused_naming_it() {
        let mut document = event_document(&event("a.example", "pageview", 1_780_000_000_000, 7));
        document.remove("url");
        let err = event_from_document(&document).expect_err("no url");
        assert!(err.to_string().contains("url"), "{err}");
    }
}
