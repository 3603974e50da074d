//! The ids of events whose effects are in the rollups (`applied_events`), as the aggregator claims
//! them; here read by the tools that rebuild rollups, which must leave to the live aggregator what
//! it has not applied yet.

use std::collections::HashSet;

use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::error::StoreError;

/// Those of `ids` that are in `applied_events` (committed, as this transaction sees them).
pub async fn applied_among(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, StoreError> {
    ids_found(
        client,
        "SELECT event_id FROM applied_events WHERE event_id = ANY($1::uuid[])",
        ids,
    )
    .await
}

/// The ids `query` (one `uuid[]` parameter, one uuid column) returns among `ids`.
pub(crate) async fn ids_found(
    client: &impl GenericClient,
    query: &str,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = client
        .query_typed(query, &[(&ids, Type::UUID_ARRAY)])
        .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}
