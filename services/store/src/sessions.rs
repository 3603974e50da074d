//! The aggregator's session state in PostgreSQL: load the sessions a batch can touch, replace the
//! ones it changed, close the quiet ones. A session is stored as its key columns plus the whole
//! [`Session`] as MessagePack (one column to write and read instead of twenty).
//!
//! The MessagePack is positional (an array, about 120 bytes) since V7; before, it had named fields
//! (about 360 bytes). Every visit event rewrites its row, so the row's size is much of what the
//! write costs (the aggregator's session step: 10.8 → 9.2 ms a batch). Both forms read.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use beacon_pipeline::session::Session;
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Row};

use crate::error::StoreError;

/// Visitor ids are u64 hashes; PostgreSQL stores them bit for bit as bigint.
pub fn id_to_sql(id: u64) -> i64 {
    i64::from_ne_bytes(id.to_ne_bytes())
}

/// The inverse of [`id_to_sql`].
fn id_from_sql(id: i64) -> u64 {
    u64::from_ne_bytes(id.to_ne_bytes())
}

fn encode_state(session: &Session) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec(session).map_err(|e| StoreError::Unwritable {
        what: "encoding a session",
        source: e.into(),
    })
}

/// Reads either form: positional, or named fields (rows written before V7).
fn decode_state(state: &[u8]) -> Result<Session, StoreError> {
    rmp_serde::from_slice(state).map_err(|e| StoreError::corrupt("unreadable stored session", e))
}

fn session_from_row(row: &Row) -> Result<Session, StoreError> {
    let mut session = decode_state(row.try_get(0)?)?;
    session.closed = row.try_get(1)?;
    Ok(session)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Every stored session of `visitor_ids` on `site` that ends after `after_ms`. A batch whose
/// events start at `first_ms` passes `first_ms` minus the session gap: the sessions they can join are
/// among these, and the aggregator's session cache can keep the set as complete from that bound on.
pub async fn load(
    client: &impl GenericClient,
    site: &str,
    visitor_ids: &[u64],
    after_ms: i64,
) -> Result<Vec<Session>, StoreError> {
    let ids: Vec<i64> = visitor_ids.iter().map(|&id| id_to_sql(id)).collect();
    let rows = client
        // One primary-key lookup per visitor, whatever the statistics say. Written as
        // `visitor_id = ANY($2)`, the planner was seen to scan every session of the site
        // instead (its estimate of the site's sessions lagging behind a growing table): a batch
        // then cost time in proportion to all the site's sessions, 3 ms growing to 27 ms over
        // 200,000 events. `OFFSET 0` keeps the subquery a per-visitor lookup. A visitor id
        // lives a day or two (the salt rotates daily), so a visitor has few sessions.
        .query_typed(
            "SELECT s.state, s.closed FROM unnest($2::int8[]) AS v (id)
             CROSS JOIN LATERAL (
                 SELECT state, closed FROM sessions
                 WHERE site = $1 AND visitor_id = v.id AND end_ms > $3
                 OFFSET 0) s",
            &[
                (&site, Type::TEXT),
                (&ids, Type::INT8_ARRAY),
                (&after_ms, Type::INT8),
            ],
        )
        .await?;
    rows.iter().map(session_from_row).collect()
}

/// Begins a change to the sessions of `sites`: takes the sites' aggregation locks
/// ([`crate::rollups::lock_sites`]) and raises their generations (migration V7), returning the new
/// values. Every transaction that changes sessions begins with this, which is what lets an
/// aggregator trust the sessions it keeps in memory. Both statements go out at once, the lock first;
/// a caller may pipeline more statements behind them.
pub async fn lock_for_change(
    client: &impl GenericClient,
    sites: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let (locked, raised) = tokio::join!(
        crate::rollups::lock_sites(client, sites),
        raise_generations(client, sites)
    );
    locked?;
    raised
}

/// Raises the generation of each of `sites` and returns the new values (under the sites' locks).
async fn raise_generations(
    client: &impl GenericClient,
    sites: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut sorted = sites.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let rows = client
        .query_typed(
            "INSERT INTO site_generations (site, generation)
             SELECT site, 1 FROM unnest($1::text[]) AS s (site)
             ON CONFLICT (site) DO UPDATE SET generation = site_generations.generation + 1
             RETURNING site, generation",
            &[(&sorted, Type::TEXT_ARRAY)],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Replaces `removed` by `added`: one upsert for the added sessions (most transitions extend a
/// visit, keeping its key), one delete for the removed keys that are not added again. Added
/// sessions are open.
pub async fn replace(
    client: &impl GenericClient,
    removed: &[Session],
    added: &[Session],
) -> Result<(), StoreError> {
    let key = |s: &Session| (s.site.clone(), s.visitor_id, s.start_ms);
    let kept: HashSet<_> = added.iter().map(key).collect();
    let gone: Vec<&Session> = removed.iter().filter(|s| !kept.contains(&key(s))).collect();
    if !gone.is_empty() {
        let sites: Vec<&str> = gone.iter().map(|s| s.site.as_str()).collect();
        let ids: Vec<i64> = gone.iter().map(|s| id_to_sql(s.visitor_id)).collect();
        let starts: Vec<i64> = gone.iter().map(|s| s.start_ms).collect();
        client
            .execute(
                "DELETE FROM sessions s USING unnest($1::text[], $2::int8[], $3::int8[])
                     AS gone (site, visitor_id, start_ms)
                 WHERE s.site = gone.site AND s.visitor_id = gone.visitor_id
                   AND s.start_ms = gone.start_ms",
                &[&sites, &ids, &starts],
            )
            .await?;
    }
    if added.is_empty() {
        return Ok(());
    }
    let sites: Vec<&str> = added.iter().map(|s| s.site.as_str()).collect();
    let ids: Vec<i64> = added.iter().map(|s| id_to_sql(s.visitor_id)).collect();
    let starts: Vec<i64> = added.iter().map(|s| s.start_ms).collect();
    let ends: Vec<i64> = added.iter().map(|s| s.end_ms).collect();
    let states = added
        .iter()
        .map(encode_state)
        .collect::<Result<Vec<_>, _>>()?;
    // Typed: parse, bind and execute go out in one message, so the caller can fold the batch
    // while PostgreSQL writes.
    client
        .execute_typed(
            "INSERT INTO sessions (site, visitor_id, start_ms, end_ms, state)
             SELECT * FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[], $5::bytea[])
             ON CONFLICT (site, visitor_id, start_ms) DO UPDATE SET
                 end_ms = EXCLUDED.end_ms, state = EXCLUDED.state,
                 closed = false, touched_at = now()",
            &[
                (&sites, Type::TEXT_ARRAY),
                (&ids, Type::INT8_ARRAY),
                (&starts, Type::INT8_ARRAY),
                (&ends, Type::INT8_ARRAY),
                (&states, Type::BYTEA_ARRAY),
            ],
        )
        .await?;
    Ok(())
}

/// Replaces every stored session of `site` that starts in `[from_ms, to_ms)` by `sessions` (which
/// start there too), each open or closed as its `closed` says. The caller holds the site's lock
/// ([`lock_for_change`]) and rewrites the visit rows of the range to match. Returns how many
/// sessions it deleted.
pub async fn replace_range(
    client: &impl GenericClient,
    site: &str,
    from_ms: i64,
    to_ms: i64,
    sessions: &[Session],
) -> Result<u64, StoreError> {
    let deleted = client
        .execute(
            "DELETE FROM sessions WHERE site = $1 AND start_ms >= $2 AND start_ms < $3",
            &[&site, &from_ms, &to_ms],
        )
        .await?;
    if let Some(stray) = sessions
        .iter()
        .find(|s| s.site != site || !(from_ms..to_ms).contains(&s.start_ms))
    {
        return Err(StoreError::Invalid(format!(
            "session of {} at {} is outside the range replaced",
            stray.site, stray.start_ms
        )));
    }
    for chunk in sessions.chunks(5_000) {
        let ids: Vec<i64> = chunk.iter().map(|s| id_to_sql(s.visitor_id)).collect();
        let starts: Vec<i64> = chunk.iter().map(|s| s.start_ms).collect();
        let ends: Vec<i64> = chunk.iter().map(|s| s.end_ms).collect();
        let closed: Vec<bool> = chunk.iter().map(|s| s.closed).collect();
        let states = chunk
            .iter()
            .map(encode_state)
            .collect::<Result<Vec<_>, _>>()?;
        client
            .execute_typed(
                "INSERT INTO sessions (site, visitor_id, start_ms, end_ms, state, closed)
                 SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::bytea[],
                     $6::bool[])",
                &[
                    (&site, Type::TEXT),
                    (&ids, Type::INT8_ARRAY),
                    (&starts, Type::INT8_ARRAY),
                    (&ends, Type::INT8_ARRAY),
                    (&states, Type::BYTEA_ARRAY),
                    (&closed, Type::BOOL_ARRAY),
                ],
            )
            .await?;
    }
    Ok(deleted)
}

/// The open sessions of `site` that start in `[from_ms, to_ms)` (not in the visit rollups yet).
pub async fn open_in_range(
    client: &impl GenericClient,
    site: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Session>, StoreError> {
    let rows = client
        .query(
            "SELECT state, closed FROM sessions
             WHERE site = $1 AND NOT closed AND start_ms >= $2 AND start_ms < $3",
            &[&site, &from_ms, &to_ms],
        )
        .await?;
    rows.iter().map(session_from_row).collect()
}

/// Sites with open sessions nobody touched for `idle` (quarantined ones aside).
pub async fn sites_with_idle_sessions(
    client: &impl GenericClient,
    idle: Duration,
) -> Result<Vec<String>, StoreError> {
    let rows = client
        .query(
            "SELECT DISTINCT site FROM sessions
             WHERE NOT closed AND quarantine IS NULL
               AND touched_at < now() - make_interval(secs => $1::int8 / 1000.0)",
            &[&millis(idle)],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Which session of a site: (visitor id, start).
pub type SessionKey = (u64, i64);

/// Up to `limit` open, unquarantined sessions of `site` nobody touched for `idle`.
pub async fn idle_keys(
    client: &impl GenericClient,
    site: &str,
    idle: Duration,
    limit: i64,
) -> Result<Vec<SessionKey>, StoreError> {
    let rows = client
        .query(
            "SELECT visitor_id, start_ms FROM sessions
             WHERE site = $1 AND NOT closed AND quarantine IS NULL
               AND touched_at < now() - make_interval(secs => $2::int8 / 1000.0)
             LIMIT $3",
            &[&site, &millis(idle), &limit],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((id_from_sql(r.try_get(0)?), r.try_get(1)?)))
        .collect()
}

/// Closes those of `keys` that are still open, unquarantined and untouched for `idle`,
/// returning them. The caller holds the site's aggregation lock and adds their contributions to
/// the rollups in the same transaction.
pub async fn close_idle(
    client: &impl GenericClient,
    site: &str,
    keys: &[SessionKey],
    idle: Duration,
) -> Result<Vec<Session>, StoreError> {
    let ids: Vec<i64> = keys.iter().map(|(id, _)| id_to_sql(*id)).collect();
    let starts: Vec<i64> = keys.iter().map(|(_, start)| *start).collect();
    let rows = client
        .query(
            "UPDATE sessions s SET closed = true
             FROM unnest($2::int8[], $3::int8[]) AS k (visitor_id, start_ms)
             WHERE s.site = $1 AND s.visitor_id = k.visitor_id AND s.start_ms = k.start_ms
               AND NOT s.closed AND s.quarantine IS NULL
               AND s.touched_at < now() - make_interval(secs => $4::int8 / 1000.0)
             RETURNING s.state, s.closed",
            &[&site, &ids, &starts, &millis(idle)],
        )
        .await?;
    rows.iter().map(session_from_row).collect()
}

/// Sets a session aside with the reason its closing failed; closing skips it from now on.
pub async fn quarantine(
    client: &impl GenericClient,
    site: &str,
    key: SessionKey,
    reason: &str,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE sessions SET quarantine = $4, quarantined_at = now()
             WHERE site = $1 AND visitor_id = $2 AND start_ms = $3",
            &[&site, &id_to_sql(key.0), &key.1, &printable(reason)],
        )
        .await?;
    Ok(())
}

/// A reason as operators read it in a terminal: no control character (PostgreSQL's message
/// may quote the hostile value), at most 1,000 characters.
fn printable(reason: &str) -> String {
    beacon_schemas::text::without_controls(reason)
        .chars()
        .take(1000)
        .collect()
}

/// One quarantined session, for operators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Quarantined {
    pub site: String,
    pub visitor_id: String,
    pub start_ms: i64,
    pub reason: String,
    pub quarantined_at: chrono::DateTime<chrono::Utc>,
}

/// Every quarantined session, oldest first.
pub async fn quarantined(client: &impl GenericClient) -> Result<Vec<Quarantined>, StoreError> {
    let rows = client
        .query(
            "SELECT site, visitor_id, start_ms, quarantine, quarantined_at FROM sessions
             WHERE quarantine IS NOT NULL ORDER BY quarantined_at, site",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Quarantined {
                site: r.try_get(0)?,
                visitor_id: format!("{:016x}", id_from_sql(r.try_get(1)?)),
                start_ms: r.try_get(2)?,
                reason: r.try_get(3)?,
                quarantined_at: r.try_get(4)?,
            })
        })
        .collect()
}

/// Clears every quarantine (after a fix), so the next closing tries those sessions again;
/// returns how many.
pub async fn release_quarantined(client: &impl GenericClient) -> Result<u64, StoreError> {
    Ok(client
        .execute(
            "UPDATE sessions SET quarantine = NULL, quarantined_at = NULL
             WHERE quarantine IS NOT NULL",
            &[],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use beacon_pipeline::test_events::{event, on_page};

    use super::*;

    /// An unreadable stored session says what it is and keeps the decoder's error as its cause,
    /// and trying again cannot help (it is set aside, not retried forever).
    #[test]
    fn an_unreadable_session_keeps_its_cause() {
        let error = decode_state(b"\xc1 not msgpack").expect_err("garbage");
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        assert!(error.to_string().starts_with("unreadable stored session: "));
        let cause = std::error::Error::source(&error).expect("the decoder's error");
        assert!(cause.downcast_ref::<rmp_serde::decode::Error>().is_some());
        assert_eq!(error.failure(), crate::error::Failure::Data);
    }

    fn session() -> Session {
        let ts = 1_780_000_000_000;
        let mut event = on_page(
            event("state.example", "pageview", ts, u64::MAX - 7),
            "/docs?utm_source=news",
        );
        event.pathname = "/docs".into();
        event.referrer = Some("https://www.google.com/".into());
        event.enrichment.source = Some("Google".into());
        event.enrichment.browser = Some("Firefox".into());
        let mut session = Session::of_event(&event);
        let mut later = event.clone();
        later.timestamp_ms += 60_000;
        later.pathname = "/pricing".into();
        session.absorb(&Session::of_event(&later));
        session
    }

    #[test]
    fn states_read_back_in_both_forms() {
        let session = session();
        let positional = encode_state(&session).expect("encode");
        let named = rmp_serde::to_vec_named(&session).expect("encode named");
        assert_eq!(decode_state(&positional).expect("positional"), session);
        assert_eq!(decode_state(&named).expect("named, as before V7"), session);
        assert!(
            positional.len() * 2 < named.len(),
            "{} vs {}",
            positional.len(),
            named.len()
        );
    }
}
