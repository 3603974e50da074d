//! Registered sites: the domains whose events Beacon accepts, with their time zone and owner.

use chrono_tz::Tz;

use crate::postgres::{Pool, StoreError};
use crate::users::User;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: i64,
    pub domain: String,
    pub timezone: Tz,
    /// The owner, who alone may read the site's statistics.
    pub owner_id: Option<i64>,
    pub owner_email: Option<String>,
}

const SELECT: &str = "SELECT s.id, s.domain, s.timezone, s.owner_id, u.email FROM sites s LEFT JOIN users u ON u.id = s.owner_id";

/// Registers a site (domain already normalised). Adding an existing domain is an error.
pub async fn add(
    pool: &Pool,
    domain: &str,
    timezone: Tz,
    owner: Option<&User>,
) -> Result<Site, StoreError> {
    let client = pool.get().await?;
    let owner_id = owner.map(|u| u.id);
    let row = client
        .query_opt(
            "INSERT INTO sites (domain, timezone, owner_id) VALUES ($1, $2, $3)
             ON CONFLICT (domain) DO NOTHING RETURNING id",
            &[&domain, &timezone.name(), &owner_id],
        )
        .await?;
    let Some(row) = row else {
        return Err(StoreError::Exists(format!("site {domain}")));
    };
    Ok(Site {
        id: row.get(0),
        domain: domain.to_string(),
        timezone,
        owner_id,
        owner_email: owner.map(|u| u.email.clone()),
    })
}

fn site_from_row(row: &tokio_postgres::Row) -> Result<Site, StoreError> {
    let tz: String = row.get(2);
    Ok(Site {
        id: row.get(0),
        domain: row.get(1),
        timezone: tz
            .parse()
            .map_err(|e| StoreError::corrupt("a stored time zone", e))?,
        owner_id: row.get(3),
        owner_email: row.get(4),
    })
}

/// All sites, by domain.
pub async fn list(pool: &Pool) -> Result<Vec<Site>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(&format!("{SELECT} ORDER BY s.domain"), &[])
        .await?;
    rows.iter().map(site_from_row).collect()
}

/// One site by (normalised) domain.
pub async fn find(pool: &Pool, domain: &str) -> Result<Option<Site>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(&format!("{SELECT} WHERE s.domain = $1"), &[&domain])
        .await?;
    row.as_ref().map(site_from_row).transpose()
}

/// What deleting a site removed from PostgreSQL.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Deleted {
    pub rollup_rows: u64,
    pub sessions: u64,
    pub imported_rows: u64,
}

/// Deletes `domain` and everything PostgreSQL holds of it (rollups, visits, imported
/// aggregates, ingest tokens, import records and key), in one transaction under the site's
/// aggregation lock, so no aggregator commits for it half-way. `None` when there is no such site.
pub async fn delete_with_data(pool: &Pool, domain: &str) -> Result<Option<Deleted>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    crate::rollups::lock_sites(&*tx, &[domain]).await?;
    let site = tx
        .execute("DELETE FROM sites WHERE domain = $1", &[&domain])
        .await?;
    if site == 0 {
        return Ok(None);
    }
    let delete = |table: &'static str| {
        let tx = &tx;
        async move {
            tx.execute(&format!("DELETE FROM {table} WHERE site = $1"), &[&domain])
                .await
        }
    };
    let deleted = Deleted {
        rollup_rows: delete("rollups").await?,
        sessions: delete("sessions").await?,
        imported_rows: delete("imported_daily").await?,
    };
    delete("site_generations").await?;
    delete("backfill_runs").await?;
    tx.commit().await?;
    Ok(Some(deleted))
}
