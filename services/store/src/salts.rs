//! The daily visitor-hash salts: created on first use each day, deleted after two days.

use beacon_pipeline::visitor::Salt;
use chrono::NaiveDate;

use crate::postgres::{Pool, StoreError};

/// The salt of `day` (UTC), creating it if this is the day's first request from any collector.
/// Salts older than the day before are deleted on the way.
pub async fn salt_for(pool: &Pool, day: NaiveDate) -> Result<Salt, StoreError> {
    let client = pool.get().await?;
    let fresh: [u8; 16] = rand::random();
    client
        .execute(
            "INSERT INTO salts (day, salt) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING",
            &[&day, &&fresh[..]],
        )
        .await?;
    let row = client
        .query_one("SELECT salt FROM salts WHERE day = $1", &[&day])
        .await?;
    let bytes: Vec<u8> = row.get(0);
    let salt: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("a stored salt", "not 16 bytes"))?;
    if let Some(cutoff) = day.pred_opt() {
        client
            .execute("DELETE FROM salts WHERE day < $1", &[&cutoff])
            .await?;
    }
    Ok(Salt(salt))
}

/// The salt of `day` if it exists (never creates one): the previous day's salt for visits
/// that cross midnight.
pub async fn existing_salt(pool: &Pool, day: NaiveDate) -> Result<Option<Salt>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt("SELECT salt FROM salts WHERE day = $1", &[&day])
        .await?;
    row.map(|row| {
        let bytes: Vec<u8> = row.get(0);
        bytes
            .try_into()
            .map(Salt)
            .map_err(|_| StoreError::corrupt("a stored salt", "not 16 bytes"))
    })
    .transpose()
}
