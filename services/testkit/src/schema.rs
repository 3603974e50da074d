//! A migrated PostgreSQL schema of one test on the shared server, dropped with everything in it
//! when the test is done — also when it panics.

use beacon_store::Pool;

use crate::env::postgres_url;

/// A migrated schema of its own ([`crate::namespace::unique_name`]), with a pool on it.
pub struct TestSchema {
    pub pool: Pool,
    pub name: String,
}

impl TestSchema {
    /// Migrates a fresh schema and opens a pool of `size` connections on it.
    pub async fn migrated(label: &str, size: usize) -> Self {
        let name = crate::namespace::unique_name(label);
        let url = postgres_url();
        beacon_store::postgres::migrate(&url, &name)
            .await
            .expect("PostgreSQL must run (scripts/services up)");
        let pool = beacon_store::postgres::pool(&url, &name, size).expect("pool");
        Self { pool, name }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let name = self.name.clone();
        crate::env::block_on_aside(async move {
            let _ = beacon_store::postgres::drop_namespace(&postgres_url(), &name).await;
        });
    }
}
