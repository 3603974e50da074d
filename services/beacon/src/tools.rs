//! The operator's commands: `migrate`, `site add|list`, `lag`, `dlq`, `sessions`.

use anyhow::Context as _;
use beacon_jetstream::{list_dead_letters, pipeline_state, retry_dead_letters};
use beacon_pipeline::domain::normalize_domain;
use beacon_runtime::Config;
use beacon_store::{sites, users};
use chrono_tz::Tz;

use crate::wiring;

/// Creates or upgrades the PostgreSQL schema, the JetStream topology and the MongoDB indexes.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let client = wiring::nats(config).await?;
    wiring::jetstream(config, &client).await?;
    println!(
        "jetstream: streams {} and {} with their consumers are up to date",
        wiring::topology(config).events_stream(),
        wiring::topology(config).dead_letter_stream()
    );
    wiring::postgres(config).await?;
    println!("postgres: schema {} is up to date", config.namespace);
    wiring::archive(config).await?;
    println!("mongodb: database {} has its indexes", config.namespace);
    Ok(())
}

pub async fn site_add(
    config: &Config,
    domain: &str,
    timezone: &str,
    owner: Option<&str>,
) -> anyhow::Result<()> {
    let domain = normalize_domain(domain).map_err(|e| anyhow::anyhow!("DOMAIN '{domain}' {e}"))?;
    let tz: Tz = timezone.parse().map_err(|_| {
        anyhow::anyhow!("--timezone '{timezone}' is not an IANA time zone such as Europe/Berlin")
    })?;
    let pool = wiring::postgres(config).await?;
    let owner = match owner {
        Some(email) => Some(users::find_user(&pool, email).await?.ok_or_else(|| {
            anyhow::anyhow!("--owner: no user {email}; add one with `beacon user add {email}`")
        })?),
        None => None,
    };
    let site = sites::add(&pool, &domain, tz, owner.as_ref())
        .await
        .context("cannot add site")?;
    match &site.owner_email {
        Some(owner) => println!(
            "added site {} (time zone {}, owner {owner})",
            site.domain, site.timezone
        ),
        None => println!(
            "added site {} (time zone {}); without --owner nobody can read its statistics yet",
            site.domain, site.timezone
        ),
    }
    Ok(())
}

/// `beacon user add EMAIL [--password-stdin] [--operator]`.
pub async fn user_add(
    config: &Config,
    email: &str,
    password_stdin: bool,
    operator: bool,
) -> anyhow::Result<()> {
    let password = password_stdin.then(read_password).transpose()?;
    let pool = wiring::postgres(config).await?;
    let user = users::add_user(&pool, email, password.as_deref(), operator)
        .await
        .context("cannot add user")?;
    let role = if user.operator { " (operator)" } else { "" };
    eprintln!("added user {}{role}", user.email);
    Ok(())
}

/// A dashboard password from one line of stdin: at least 10 characters.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(
        password.chars().count() >= 10,
        "the password must have at least 10 characters"
    );
    Ok(password)
}

/// `beacon user passwd EMAIL --password-stdin`.
pub async fn user_passwd(config: &Config, email: &str) -> anyhow::Result<()> {
    let password = read_password()?;
    let pool = wiring::postgres(config).await?;
    anyhow::ensure!(
        users::set_password(&pool, email, &password).await?,
        "no user {email}; add one with `beacon user add {email}`"
    );
    eprintln!("changed the password of {email}; their dashboard sessions are signed out");
    Ok(())
}

/// `beacon key list --user EMAIL [--json]`.
pub async fn key_list(config: &Config, email: &str, json: bool) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    let keys = users::list_keys(&pool, email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("--user: no user {email}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&keys)?);
        return Ok(());
    }
    if keys.is_empty() {
        println!("{email} has no API keys");
    }
    for k in keys {
        let used = k.last_used_at.map_or_else(
            || "never used".to_string(),
            |t| format!("last used {}", t.format("%Y-%m-%d %H:%M UTC")),
        );
        println!(
            "{:>6}  {}…  created {}  {used}",
            k.id,
            k.prefix,
            k.created_at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    Ok(())
}

/// `beacon key revoke --user EMAIL --id N`.
pub async fn key_revoke(config: &Config, email: &str, id: i64) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    anyhow::ensure!(
        users::revoke_key(&pool, email, id).await?,
        "{email} has no API key {id} (`beacon key list --user {email}` shows them)"
    );
    eprintln!("revoked API key {id} of {email}");
    Ok(())
}

/// `beacon user operator EMAIL [--revoke]`.
pub async fn user_operator(config: &Config, email: &str, operator: bool) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    anyhow::ensure!(
        users::set_operator(&pool, email, operator).await?,
        "no user {email}; add one with `beacon user add {email}`"
    );
    let now = if operator {
        "an operator"
    } else {
        "an owner only"
    };
    eprintln!("{email} is now {now}");
    Ok(())
}

/// `beacon key create --user EMAIL`: prints the new key alone on stdout, once.
pub async fn key_create(config: &Config, email: &str) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    let user = users::find_user(&pool, email).await?.ok_or_else(|| {
        anyhow::anyhow!("--user: no user {email}; add one with `beacon user add {email}`")
    })?;
    let key = users::create_key(&pool, &user).await?;
    println!("{key}");
    eprintln!(
        "created an API key for {}; it is shown only now",
        user.email
    );
    Ok(())
}

/// `beacon site delete DOMAIN [--yes]`: the site row first (the collector then refuses its
/// events, and no aggregator commits for it meanwhile: same lock), then its events in the
/// stream, the archive and Redis. Without `--yes` it only says what it would delete (exit 1).
pub async fn site_delete(
    config: &Config,
    domain: &str,
    yes: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let domain = beacon_pipeline::domain::normalize_domain(domain)
        .map_err(|e| anyhow::anyhow!("site '{domain}' {e}"))?;
    let pool = wiring::postgres(config).await?;
    anyhow::ensure!(
        sites::find(&pool, &domain).await?.is_some(),
        "no site {domain} (`beacon site list` shows them)"
    );
    if !yes {
        eprintln!(
            "beacon site delete {domain} would delete the site and all its data: statistics, \
             visits, imported aggregates, archived and streamed events, live counters and ingest \
             tokens. There is no undo; run it again with --yes"
        );
        return Ok(std::process::ExitCode::FAILURE);
    }
    let deleted = sites::delete_with_data(&pool, &domain)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no site {domain}"))?;
    let client = wiring::nats(config).await?;
    let js = wiring::jetstream(config, &client).await?;
    let streamed = beacon_jetstream::purge_site(&js, &wiring::topology(config), &domain)
        .await
        .map_err(|e| anyhow::anyhow!("purging the stream: {e}"))?;
    let archived = wiring::archive(config)
        .await?
        .delete_site(&domain)
        .await
        .context("deleting archived events")?;
    let redis = wiring::redis(config).await?;
    let keys = beacon_store::live::delete_site(&redis, &wiring::live_keys(config), &domain)
        .await
        .context("deleting live counters")?;
    eprintln!(
        "deleted site {domain}: {} rollup rows, {} visits, {} imported rows, {streamed} streamed and \
         {archived} archived events, {keys} Redis keys",
        deleted.rollup_rows, deleted.sessions, deleted.imported_rows
    );
    Ok(std::process::ExitCode::SUCCESS)
}

pub async fn site_list(config: &Config) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    let all = sites::list(&pool).await?;
    if all.is_empty() {
        eprintln!("no sites yet; add one with `beacon site add DOMAIN`");
    }
    for site in all {
        println!(
            "{}\t{}\t{}",
            site.domain,
            site.timezone,
            site.owner_email.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

pub async fn compact(config: &Config, older_than: std::time::Duration) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    let before = chrono::Utc::now() - chrono::Duration::from_std(older_than)?;
    let done = beacon_store::compaction::compact(&pool, before).await?;
    println!(
        "compacted {} site-days: {} 15-minute rows deleted (their day rows stay)",
        done.days, done.rows_deleted
    );
    Ok(())
}

/// A `--site` option's domain, normalised as sites are stored.
pub fn site_option(domain: &str) -> anyhow::Result<String> {
    normalize_domain(domain).map_err(|e| anyhow::anyhow!("--site '{domain}' {e}"))
}

/// Prints a new ingest token for the site, alone on stdout.
pub async fn token_create(config: &Config, domain: &str) -> anyhow::Result<()> {
    let domain = site_option(domain)?;
    let pool = wiring::postgres(config).await?;
    let token = beacon_store::ingest_tokens::create(&pool, &domain)
        .await?
        .ok_or_else(|| anyhow::anyhow!("--site {domain}: no such site (beacon site list)"))?;
    println!("{token}");
    Ok(())
}

pub async fn sessions_quarantined(config: &Config, json: bool) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    let list = beacon_store::sessions::quarantined(&**pool.get().await?).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no quarantined visits");
    }
    for q in &list {
        println!(
            "{} visitor {} from {} (since {}): {}",
            q.site,
            q.visitor_id,
            chrono::DateTime::from_timestamp_millis(q.start_ms).unwrap_or_default(),
            q.quarantined_at,
            q.reason
        );
    }
    Ok(())
}

pub async fn sessions_retry(config: &Config) -> anyhow::Result<()> {
    let pool = wiring::postgres(config).await?;
    let released = beacon_store::sessions::release_quarantined(&**pool.get().await?).await?;
    println!("{released} quarantined visits will be closed again by the aggregator");
    Ok(())
}

pub async fn lag(config: &Config, json: bool) -> anyhow::Result<()> {
    let client = wiring::nats(config).await?;
    let js = wiring::jetstream(config, &client).await?;
    let state = pipeline_state(&js, &wiring::topology(config))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pool = wiring::postgres(config).await?;
    let backfills = beacon_store::backfill_runs::running(&**pool.get().await?).await?;
    if json {
        let mut value = serde_json::to_value(&state)?;
        value["backfills"] = serde_json::to_value(&backfills)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let s = &state.stream;
    println!(
        "stream {}: {} messages, {} bytes, sequences {}..{}",
        s.name, s.messages, s.bytes, s.first_sequence, s.last_sequence
    );
    println!(
        "{:<28} {:>10} {:>10} {:>12} {:>12} {:>8} {:>14} {:>10}  complete through",
        "consumer",
        "lag",
        "pending",
        "ack_pending",
        "redelivered",
        "waiting",
        "last_delivered",
        "ack_floor"
    );
    for c in &state.consumers {
        let through = c
            .complete_through_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(
                || "-".to_string(),
                |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            );
        println!(
            "{:<28} {:>9.1}s {:>10} {:>12} {:>12} {:>8} {:>14} {:>10}  {through}",
            c.name,
            c.lag_seconds,
            c.pending,
            c.ack_pending,
            c.redelivered,
            c.waiting,
            c.last_delivered,
            c.ack_floor
        );
    }
    println!("dead letters: {}", state.dead_letters);
    for run in &backfills {
        let of = run.total.map(|t| format!(" of {t}")).unwrap_or_default();
        println!(
            "{} {} running since {}: {}{of} {}",
            run.kind,
            run.site,
            run.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            run.done,
            run.unit
        );
    }
    Ok(())
}

pub async fn dlq_list(config: &Config, json: bool) -> anyhow::Result<()> {
    let client = wiring::nats(config).await?;
    let js = wiring::jetstream(config, &client).await?;
    let letters = list_dead_letters(&js, &wiring::topology(config))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&letters)?);
        return Ok(());
    }
    if letters.is_empty() {
        println!("no dead letters");
    }
    for l in letters {
        println!(
            "#{} {} consumer={} stream_seq={} subject={} bytes={}\n    reason: {}",
            l.sequence, l.time, l.consumer, l.stream_sequence, l.subject, l.bytes, l.reason
        );
    }
    Ok(())
}

pub async fn dlq_retry(config: &Config, only: Option<u64>) -> anyhow::Result<()> {
    let client = wiring::nats(config).await?;
    let js = wiring::jetstream(config, &client).await?;
    let retried = retry_dead_letters(&js, &wiring::topology(config), only)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if retried.is_empty() {
        println!("nothing to retry");
    }
    for r in &retried {
        println!(
            "retried #{} as events stream sequence {} (was: {})",
            r.sequence, r.new_stream_sequence, r.reason
        );
    }
    if let Some(seq) = only
        && retried.is_empty()
    {
        anyhow::bail!("no dead letter with sequence {seq}");
    }
    Ok(())
}
