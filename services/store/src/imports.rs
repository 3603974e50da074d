//! What `beacon import` keeps: which event ids it has handed to the stream (so a second import of
//! the same lines adds nothing, at any later time), and each site's import key (migration V11).

use std::collections::HashSet;

use beacon_pipeline::visitor::Salt;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::error::StoreError;

/// The site's import key, created (random) on first use. Secret: never printed.
pub async fn import_key(client: &impl GenericClient, site_id: i64) -> Result<Salt, StoreError> {
    let fresh: [u8; 16] = rand::random();
    let row = client
        .query_one(
            "WITH created AS (
                 INSERT INTO import_keys (site_id, key) VALUES ($1, $2)
                 ON CONFLICT (site_id) DO NOTHING RETURNING key)
             SELECT key FROM created UNION ALL SELECT key FROM import_keys WHERE site_id = $1
             LIMIT 1",
            &[&site_id, &fresh.as_slice()],
        )
        .await?;
    let key: &[u8] = row.try_get(0)?;
    let key: [u8; 16] = key
        .try_into()
        .map_err(|_| StoreError::corrupt("a stored import key", "not 16 bytes"))?;
    Ok(Salt(key))
}

/// Those of `ids` an import has handed to the stream before.
pub async fn already_imported(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, StoreError> {
    crate::applied_events::ids_found(
        client,
        "SELECT event_id FROM imported_events WHERE event_id = ANY($1::uuid[])",
        ids,
    )
    .await
}

/// Records `ids` as imported for the site (after JetStream stored them).
pub async fn record_imported(
    client: &impl GenericClient,
    site_id: i64,
    ids: &[Uuid],
) -> Result<(), StoreError> {
    client
        .execute_typed(
            "INSERT INTO imported_events (event_id, site_id)
             SELECT id, $2 FROM unnest($1::uuid[]) AS t (id)
             ON CONFLICT (event_id) DO NOTHING",
            &[(&ids, Type::UUID_ARRAY), (&site_id, Type::INT8)],
        )
        .await?;
    Ok(())
}
