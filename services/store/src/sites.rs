//! Registered sites: the domains whose events Beacon accepts, with their time zone.

use chrono_tz::Tz;

use crate::postgres::{Pool, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub id: i64,
    pub domain: String,
    pub timezone: Tz,
    pub owner_email: Option<String>,
}

/// Registers a site (domain already normalised). Adding an existing domain is an error.
pub async fn add(
    pool: &Pool,
    domain: &str,
    timezone: Tz,
    owner_email: Option<&str>,
) -> Result<Site, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "INSERT INTO sites (domain, timezone, owner_email) VALUES ($1, $2, $3)
             ON CONFLICT (domain) DO NOTHING RETURNING id",
            &[&domain, &timezone.name(), &owner_email],
        )
        .await?;
    let Some(row) = row else {
        return Err(StoreError::Invalid(format!("site {domain} already exists")));
    };
    Ok(Site {
        id: row.get(0),
        domain: domain.to_string(),
        timezone,
        owner_email: owner_email.map(str::to_string),
    })
}

fn site_from_row(row: &tokio_postgres::Row) -> Result<Site, StoreError> {
    let tz: String = row.get(2);
    Ok(Site {
        id: row.get(0),
        domain: row.get(1),
        timezone: tz
            .parse()
            .map_err(|_| StoreError::Invalid(format!("stored time zone '{tz}' is unknown")))?,
        owner_email: row.get(3),
    })
}

/// All sites, by domain.
pub async fn list(pool: &Pool) -> Result<Vec<Site>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, domain, timezone, owner_email FROM sites ORDER BY domain",
            &[],
        )
        .await?;
    rows.iter().map(site_from_row).collect()
}

/// One site by (normalised) domain.
pub async fn find(pool: &Pool, domain: &str) -> Result<Option<Site>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT id, domain, timezone, owner_email FROM sites WHERE domain = $1",
            &[&domain],
        )
        .await?;
    row.as_ref().map(site_from_row).transpose()
}
