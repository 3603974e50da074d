//! `beacon replay`: for each site asked for, gather the range's events, rebuild, swap in, and say
//! per day what changed.

use std::time::Duration;

use beacon_jetstream::{Topology, async_nats::jetstream};
use beacon_store::{Archive, LiveKeys, Pool, StoreError, sites};
use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;

use std::sync::Arc;

use crate::gather::{DayOrigin, GatherDeps, GatherError, Gathered, Source, gather};
use crate::progress::Progress;
use crate::range::{DayRange, RangeError, parse_day};
use crate::rebuild::Cutoffs;
use crate::runs::Tracked;
use crate::swap::{DayNumbers, SwapError, SwapSettings, Swapped, swap};

/// Everything a replay talks to, and the pipeline settings it must agree with.
pub struct ReplayDeps {
    pub pool: Pool,
    pub js: jetstream::Context,
    pub topology: Topology,
    pub archive: Archive,
    /// For raising the sites' data versions (cached API answers); best effort.
    pub redis: Option<(fred::prelude::Client, LiveKeys)>,
    pub dedup_window: Duration,
    pub session_close_after: Duration,
    pub rollup_fine_retention: Duration,
}

/// What to replay.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    /// `None`: every site.
    pub site: Option<String>,
    pub since: String,
    /// `None`: the site's today.
    pub until: Option<String>,
    pub source: Source,
    pub dry_run: bool,
    /// Show progress on stderr.
    pub progress: bool,
}

/// Why a replay failed. Sites replayed before the failure stay replayed (each is its own
/// transaction); the failing one is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("--site: no site {0}; `beacon site list` shows the registered ones")]
    UnknownSite(String),
    #[error("no site is registered: nothing to replay")]
    NoSites,
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error("{site}: {source}")]
    Gather {
        site: String,
        #[source]
        source: GatherError,
    },
    #[error("{site}: {source}")]
    Swap {
        site: String,
        #[source]
        source: SwapError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One site's replay.
#[derive(Debug, serde::Serialize)]
pub struct SiteReplay {
    pub site: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub days: Vec<DayReport>,
    pub events_read: u64,
    pub from_stream: u64,
    pub from_archive: u64,
    pub invalid: u64,
    #[serde(flatten)]
    pub swapped: Swapped,
    pub seconds: f64,
}

/// One day of a site's replay.
#[derive(Debug, serde::Serialize)]
pub struct DayReport {
    pub day: NaiveDate,
    pub source: DayOrigin,
    pub before: DayNumbers,
    pub after: DayNumbers,
}

/// What a replay did.
#[derive(Debug, serde::Serialize)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub sites: Vec<SiteReplay>,
}

/// Runs the replay of every site asked for, one after the other.
pub async fn replay(
    deps: &ReplayDeps,
    request: &ReplayRequest,
) -> Result<ReplayReport, ReplayError> {
    let since = parse_day("--since", &request.since)?;
    let until = request
        .until
        .as_deref()
        .map(|u| parse_day("--until", u))
        .transpose()?;
    let all = sites::list(&deps.pool).await?;
    let chosen: Vec<(String, Tz)> = match &request.site {
        Some(domain) => {
            let wanted = beacon_pipeline::domain::normalize_domain(domain)
                .map_err(|_| ReplayError::UnknownSite(printable(domain)))?;
            let site = all
                .iter()
                .find(|s| s.domain == wanted)
                .ok_or_else(|| ReplayError::UnknownSite(printable(domain)))?;
            vec![(site.domain.clone(), site.timezone)]
        }
        None if all.is_empty() => return Err(ReplayError::NoSites),
        None => all.iter().map(|s| (s.domain.clone(), s.timezone)).collect(),
    };
    // Every range is checked before any site is replayed.
    let ranges = chosen
        .iter()
        .map(|(site, tz)| {
            let today = Utc::now().with_timezone(tz).date_naive();
            DayRange::new(site, *tz, since, until.unwrap_or(today))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = ReplayReport {
        dry_run: request.dry_run,
        sites: Vec::with_capacity(ranges.len()),
    };
    for range in &ranges {
        report.sites.push(replay_site(deps, request, range).await?);
    }
    Ok(report)
}

async fn replay_site(
    deps: &ReplayDeps,
    request: &ReplayRequest,
    range: &DayRange,
) -> Result<SiteReplay, ReplayError> {
    let started = std::time::Instant::now();
    let site = range.site.clone();
    let progress = Arc::new(Progress::new(
        &format!("replay {site}: events read"),
        None,
        !request.progress,
    ));
    let tracked = Tracked::start(&deps.pool, "replay", &site, "events", progress.clone()).await;
    let outcome = gather_and_swap(deps, request, range, &progress).await;
    tracked.finish().await;
    let (gathered, swapped) = outcome?;
    let days = gathered
        .day_origins(range)
        .into_iter()
        .map(|(day, source)| DayReport {
            day,
            source,
            before: swapped.before.get(&day).copied().unwrap_or_default(),
            after: swapped.after.get(&day).copied().unwrap_or_default(),
        })
        .collect();
    Ok(SiteReplay {
        site,
        first_day: range.first_day,
        last_day: range.last_day,
        days,
        events_read: progress.done(),
        from_stream: gathered.from_stream,
        from_archive: gathered.from_archive,
        invalid: gathered.invalid + gathered.undecodable,
        swapped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Gathers one site's range and swaps it in.
async fn gather_and_swap(
    deps: &ReplayDeps,
    request: &ReplayRequest,
    range: &DayRange,
    progress: &Progress,
) -> Result<(Gathered, Swapped), ReplayError> {
    let site = range.site.clone();
    let gather_deps = GatherDeps {
        js: &deps.js,
        topology: &deps.topology,
        archive: &deps.archive,
    };
    let mut gathered = gather(&gather_deps, range, request.source, progress)
        .await
        .map_err(|source| ReplayError::Gather {
            site: site.clone(),
            source,
        })?;
    progress.finish();
    let now_ms = Utc::now().timestamp_millis();
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4);
    let settings = SwapSettings {
        cutoffs: Cutoffs {
            quiet_before_ms: now_ms - ms(deps.session_close_after),
            fine_from_ms: fine_from_ms(range.zone, now_ms - ms(deps.rollup_fine_retention)),
        },
        // An hour of slack for clocks: the collector stamps `received_at`, PostgreSQL `applied_at`.
        check_applied_from_ms: now_ms - ms(deps.dedup_window) + 3_600_000,
        dry_run: request.dry_run,
    };
    let swapped = swap(
        &deps.pool,
        &deps.js,
        &deps.topology,
        range,
        &mut gathered,
        settings,
    )
    .await
    .map_err(|source| ReplayError::Swap {
        site: site.clone(),
        source,
    })?;
    if !request.dry_run {
        raise_data_version(deps.redis.as_ref(), &site).await;
    }
    Ok((gathered, swapped))
}

/// Compaction drops the 15-minute rows of local days that ended before `cutoff_ms`; a replay does
/// not write them back. Returns the start of the first local day that ends after the cutoff.
fn fine_from_ms(zone: Tz, cutoff_ms: i64) -> i64 {
    let day = chrono::DateTime::from_timestamp_millis(cutoff_ms)
        .unwrap_or_default()
        .with_timezone(&zone)
        .date_naive();
    beacon_store::zones::local_date_start(zone, day)
}

/// Cached API answers of the site are keyed by its data version: raising it retires them.
pub(crate) async fn raise_data_version(
    redis: Option<&(fred::prelude::Client, LiveKeys)>,
    site: &str,
) {
    use fred::interfaces::KeysInterface as _;
    if let Some((redis, keys)) = redis {
        let raised: Result<i64, _> = redis.incr(keys.data_version(site)).await;
        if let Err(e) = raised {
            tracing::warn!(site, error = %e, "cannot raise the data version: cached answers may be up to 60 s old");
        }
    }
}

fn printable(text: &str) -> String {
    beacon_schemas::text::without_controls(text)
        .chars()
        .take(100)
        .collect()
}
