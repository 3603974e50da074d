//! `beacon export`: a site's raw events from the archive as NDJSON import lines — what `beacon
//! import` reads back (into this Beacon or another) to the same numbers. The visitor is written as
//! its hashed id (never an address), with the previous day's id that links a visit across
//! midnight, and the enrichment an import could not recompute without the user agent and address
//! (browser, OS, device, country, source).

use std::io::Write;

use beacon_schemas::Event;
use beacon_store::{Archive, Pool, sites};
use chrono::Utc;

use crate::import::line::Line;
use std::sync::Arc;

use crate::progress::Progress;
use crate::range::{DayRange, RangeError, parse_day};
use crate::runs::Tracked;

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub site: String,
    pub since: String,
    /// `None`: the site's today.
    pub until: Option<String>,
    pub progress: bool,
}

/// What an export wrote.
#[derive(Debug, Default, serde::Serialize)]
pub struct ExportSummary {
    pub site: String,
    pub first_day: String,
    pub last_day: String,
    pub events: u64,
    pub seconds: f64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("--site: no site {0}; `beacon site list` shows the registered ones")]
    UnknownSite(String),
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error(transparent)]
    Store(#[from] beacon_store::StoreError),
    #[error("archive: {0}")]
    Archive(#[from] beacon_store::archive::ArchiveReadError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes the range's archived events to `out`, one line each, in time order.
pub async fn export(
    pool: &Pool,
    archive: &Archive,
    request: &ExportRequest,
    out: &mut impl Write,
) -> Result<ExportSummary, ExportError> {
    let started = std::time::Instant::now();
    let range = resolve(pool, request).await?;
    let (domain, since, until) = (range.site.clone(), range.first_day, range.last_day);
    let progress = Arc::new(Progress::new(
        &format!("export {domain}: events"),
        None,
        !request.progress,
    ));
    let tracked = Tracked::start(pool, "export", &domain, "events", progress.clone()).await;
    let written = write_lines(archive, &range, out, &progress).await;
    tracked.finish().await;
    let written = written?;
    progress.finish();
    Ok(ExportSummary {
        site: domain,
        first_day: since.to_string(),
        last_day: until.to_string(),
        events: written,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The request's site (registered) and its whole local days.
pub(crate) async fn resolve(pool: &Pool, request: &ExportRequest) -> Result<DayRange, ExportError> {
    let unknown = || ExportError::UnknownSite(request.site.chars().take(100).collect());
    let domain = beacon_pipeline::domain::normalize_domain(&request.site).map_err(|_| unknown())?;
    let site = sites::find(pool, &domain).await?.ok_or_else(unknown)?;
    let since = parse_day("--since", &request.since)?;
    let today = Utc::now().with_timezone(&site.timezone).date_naive();
    let until = request
        .until
        .as_deref()
        .map(|u| parse_day("--until", u))
        .transpose()?
        .unwrap_or(today);
    Ok(DayRange::new(&domain, site.timezone, since, until)?)
}

/// Writes the range's events, one line each; returns how many.
async fn write_lines(
    archive: &Archive,
    range: &DayRange,
    out: &mut impl Write,
    progress: &Progress,
) -> Result<u64, ExportError> {
    let mut written = 0u64;
    let mut failure = None;
    archive
        .site_events(&range.site, range.from_ms, range.to_ms, |event| {
            if failure.is_some() {
                return;
            }
            let line = line_of(&event);
            let result = serde_json::to_writer(&mut *out, &line)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            match result {
                Ok(()) => {
                    written += 1;
                    progress.inc(1);
                }
                Err(e) => failure = Some(e),
            }
        })
        .await?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    out.flush()?;
    Ok(written)
}

/// The import line of an archived event.
pub fn line_of(event: &Event) -> Line {
    let e = &event.enrichment;
    let props = (!event.props.is_empty()).then(|| {
        event
            .props
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect()
    });
    Line {
        site: Some(event.site.clone()),
        name: Some(event.name.clone()),
        url: event.url.clone(),
        // Stored normalised (host and path); written back as a URL the import can attribute.
        referrer: event.referrer.as_ref().map(|r| {
            if r.contains("://") {
                r.clone()
            } else {
                format!("https://{r}")
            }
        }),
        props,
        interactive: Some(event.interactive),
        id: Some(event.id.to_string()),
        timestamp: serde_json::Value::from(event.timestamp_ms),
        visitor: Some(format!("{:016x}", event.visitor_id)),
        previous_visitor: event.previous_visitor_id.map(|id| format!("{id:016x}")),
        browser: e.browser.clone(),
        browser_version: e.browser_version.clone(),
        os: e.os.clone(),
        os_version: e.os_version.clone(),
        device: e.device.clone(),
        country: e.country.clone(),
        source: e.source.clone(),
        ip: None,
        user_agent: None,
    }
}

#[cfg(test)]
mod tests {
    use beacon_pipeline::test_events::{event, on_page};

    use super::*;
    use crate::import::line::{Identity, parse_line};

    #[test]
    fn an_exported_line_imports_to_the_same_event_attributes() {
        let mut original = on_page(
            event("a.example", "signup", 1_780_000_000_000, 0xabc),
            "/pricing",
        );
        original.url = "https://a.example/pricing?utm_source=news&utm_campaign=spring".into();
        original.referrer = Some("news.ycombinator.com/item".into());
        original.previous_visitor_id = Some(0xdef);
        original.props.insert("plan".into(), "pro".into());
        original.interactive = false;
        original.enrichment.source = Some("news".into());
        original.enrichment.browser = Some("Firefox".into());
        original.enrichment.country = Some("DE".into());
        let text = serde_json::to_string(&line_of(&original)).expect("json");
        assert!(
            !text.contains("\"ip\""),
            "no address is ever written: {text}"
        );
        let parsed = parse_line(&text, "a.example", 1_790_000_000_000).expect("imports");
        assert_eq!(parsed.hit.timestamp_ms, Some(original.timestamp_ms));
        assert_eq!(parsed.hit.id, Some(original.id));
        assert_eq!(parsed.hit.props, original.props);
        assert!(!parsed.hit.interactive);
        assert_eq!(parsed.source.as_deref(), Some("news"));
        assert_eq!(parsed.country.as_deref(), Some("DE"));
        assert_eq!(
            parsed.agent.and_then(|a| a.browser).as_deref(),
            Some("Firefox")
        );
        assert_eq!(
            parsed.identity,
            Identity::Opaque {
                visitor: "0000000000000abc".into(),
                previous: Some("0000000000000def".into()),
            }
        );
        let attributed = beacon_pipeline::referrer::attribute(
            &parsed.hit.url,
            parsed.hit.referrer.as_deref(),
            &parsed.hit.hostname,
        );
        assert_eq!(attributed.referrer, original.referrer);
        assert_eq!(attributed.utm_campaign.as_deref(), Some("spring"));
    }
}
