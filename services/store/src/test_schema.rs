//! For other crates' database tests: a migrated schema of its own on the test PostgreSQL
//! (`BEACON_POSTGRES_URL`, or the local server), which the test drops when it is done.

use crate::Pool;

/// Migrates the schema `t_{label}_{process id}` and returns a pool of `size` connections on it,
/// with the schema's name (for `DROP SCHEMA … CASCADE`).
pub async fn migrated(label: &str, size: usize) -> (Pool, String) {
    let url = std::env::var("BEACON_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("t_{label}_{}", std::process::id());
    crate::postgres::migrate(&url, &name)
        .await
        .expect("migrate");
    let pool = crate::postgres::pool(&url, &name, size).expect("pool");
    (pool, name)
}

/// Drops a schema made by [`migrated`], with everything in it.
pub async fn drop(pool: &Pool, name: &str) {
    let client = pool.get().await.expect("connection");
    client
        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
        .await
        .expect("drop schema");
}
