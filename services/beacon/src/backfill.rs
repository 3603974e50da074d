//! The backfill commands: `replay` (and, as they land, `import` and `export`), wired to their
//! dependencies and printed for operators.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use beacon_backfill::import::{ImportDeps, ImportRequest, ImportSummary};
use beacon_backfill::plausible_csv::import::AggregateImportRequest;
use beacon_backfill::replay::SiteReplay;
use beacon_backfill::swap::DayNumbers;
use beacon_backfill::{ReplayDeps, ReplayRequest, Source};
use beacon_runtime::Config;

use crate::cli::{ExportFormat, ReplaySource};
use crate::wiring;

impl From<ReplaySource> for Source {
    fn from(source: ReplaySource) -> Self {
        match source {
            ReplaySource::Stream => Source::Stream,
            ReplaySource::Archive => Source::Archive,
            ReplaySource::Auto => Source::Auto,
        }
    }
}

/// `beacon replay`.
pub async fn replay(config: &Config, request: &ReplayRequest, json: bool) -> anyhow::Result<()> {
    let deps = replay_deps(config).await?;
    let report = beacon_backfill::replay(&deps, request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for site in &report.sites {
        print_site(site);
    }
    if report.dry_run {
        println!("dry run: nothing was changed");
    }
    Ok(())
}

async fn replay_deps(config: &Config) -> anyhow::Result<ReplayDeps> {
    let client = wiring::nats(config).await?;
    let js = async_nats::jetstream::new(client);
    let archive = archive(config).await?;
    let redis = redis_for_versions(config).await;
    Ok(ReplayDeps {
        pool: wiring::postgres(config).await?,
        js,
        topology: wiring::topology(config),
        archive,
        redis,
        dedup_window: config.dedup_window,
        session_close_after: config.session_close_after,
        rollup_fine_retention: config.rollup_fine_retention,
    })
}

/// Redis, for raising the data versions of the sites a tool changed (best effort).
async fn redis_for_versions(
    config: &Config,
) -> Option<(fred::prelude::Client, beacon_store::live::LiveKeys)> {
    match beacon_store::live::connect_with(&config.redis_url, config.redis_timeout).await {
        Ok(redis) => Some((redis, wiring::live_keys(config))),
        Err(e) => {
            eprintln!(
                "beacon: Redis is unreachable ({e}): cached API answers may be up to 60 s old"
            );
            None
        }
    }
}

/// The archive handle; connecting is lazy, so a replay from the stream alone never needs MongoDB.
async fn archive(config: &Config) -> anyhow::Result<beacon_store::Archive> {
    beacon_store::Archive::connect_with(&config.mongo_url, &config.namespace, config.mongo_timeout)
        .await
        .context("BEACON_MONGO_URL")
}

fn print_site(site: &SiteReplay) {
    let s = &site.swapped;
    println!(
        "replay {} {} to {}: {} events read ({} from the stream, {} from the archive, {} invalid), \
         {} counted, {} left to the live aggregator, {} rows and {} sessions written, {:.1} s \
         (the site locked {:.2} s)",
        site.site,
        site.first_day,
        site.last_day,
        site.events_read,
        site.from_stream,
        site.from_archive,
        site.invalid,
        s.events,
        s.left_to_live,
        s.rows_written,
        s.sessions_written,
        site.seconds,
        s.locked_seconds
    );
    println!(
        "  {:<10}  {:<7}  {:>21}  {:>21}  {:>21}",
        "day", "source", "visitors", "visits", "pageviews"
    );
    for day in &site.days {
        let source = serde_json::to_value(day.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let change = |f: fn(&DayNumbers) -> i64| {
            let (before, after) = (f(&day.before), f(&day.after));
            if before == after {
                format!("{after}")
            } else {
                format!("{before} -> {after}")
            }
        };
        println!(
            "  {:<10}  {:<7}  {:>21}  {:>21}  {:>21}",
            day.day.to_string(),
            source,
            change(|d| d.visitors as i64),
            change(|d| d.visits),
            change(|d| d.pageviews)
        );
    }
}

/// `beacon import`: exit code 1 when lines were rejected.
pub async fn import(
    config: &Config,
    request: &ImportRequest,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = wiring::nats(config).await?;
    let country = wiring::geoip(config)?.map(|geo| {
        let geo = Arc::new(geo);
        Arc::new(move |ip| geo.country(ip)) as Arc<dyn Fn(_) -> _ + Send + Sync>
    });
    let deps = ImportDeps {
        pool: wiring::postgres(config).await?,
        publisher: wiring::publisher(config, &client),
        country,
    };
    let summary = beacon_backfill::import::import(&deps, request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_import(&summary);
    }
    Ok(if summary.rejected > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_import(summary: &ImportSummary) {
    println!(
        "import {}: {} lines read, {} events imported, {} imported before (skipped), {} bots skipped, \
         {} rejected, {:.1} s",
        summary.site,
        summary.read,
        summary.imported,
        summary.duplicates_skipped,
        summary.bots_skipped,
        summary.rejected,
        summary.seconds
    );
    print_rejections(&summary.rejections, summary.rejected);
}

fn print_rejections(rejections: &[beacon_backfill::import::Rejection], rejected: u64) {
    for r in rejections {
        println!("  rejected {}:{}: {}", r.file, r.line, r.reason);
    }
    if rejected as usize > rejections.len() {
        println!(
            "  … and {} more rejected lines",
            rejected as usize - rejections.len()
        );
    }
}

/// `beacon import --format plausible-csv`: exit code 1 when rows were rejected.
pub async fn import_aggregates(
    config: &Config,
    request: &AggregateImportRequest,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let pool = wiring::postgres(config).await?;
    let redis = redis_for_versions(config).await;
    let summary =
        beacon_backfill::plausible_csv::import::import(&pool, redis.as_ref(), request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "import {} (Plausible aggregates): {} rows read, {} tables, {} earlier imported rows \
             replaced, {} rejected, {:.1} s",
            summary.site,
            summary.read,
            summary.tables.len(),
            summary.replaced,
            summary.rejected,
            summary.seconds
        );
        for t in &summary.tables {
            println!(
                "  {}: {} {} to {}, {} rows",
                t.file, t.table, t.first_day, t.last_day, t.rows
            );
        }
        print_rejections(&summary.rejections, summary.rejected);
    }
    Ok(if summary.rejected > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `beacon export`: to `output`, or to stdout; the summary goes to stderr.
pub async fn export(
    config: &Config,
    request: &beacon_backfill::export::ExportRequest,
    format: ExportFormat,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    // Written aside and renamed at the end: a failed export leaves no file behind.
    let partial = output.map(|path| path.with_extension("partial"));
    let mut out: Box<dyn std::io::Write> = match &partial {
        Some(partial) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(partial)
                .with_context(|| format!("cannot create {}", partial.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let written = match format {
        ExportFormat::Ndjson => {
            let archive = archive(config).await?;
            beacon_backfill::export::export(&pool, &archive, request, &mut out)
                .await
                .map(|s| {
                    format!(
                        "export {} {} to {}: {} events, {:.1} s",
                        s.site, s.first_day, s.last_day, s.events, s.seconds
                    )
                })
        }
        ExportFormat::PlausibleCsv => {
            beacon_backfill::plausible_csv::export::export(&pool, request, &mut out)
                .await
                .map(|s| {
                    format!(
                        "export {} {} to {} (Plausible CSV): {} rows, {:.1} s",
                        s.site, s.first_day, s.last_day, s.rows, s.seconds
                    )
                })
        }
    };
    drop(out);
    let said = match written {
        Ok(said) => said,
        Err(e) => {
            if let Some(partial) = &partial {
                let _ = std::fs::remove_file(partial);
            }
            return Err(e.into());
        }
    };
    if let (Some(partial), Some(path)) = (&partial, output) {
        std::fs::rename(partial, path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!("{said}");
    Ok(())
}
