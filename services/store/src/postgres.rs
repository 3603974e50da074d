//! PostgreSQL connections scoped to the namespace's schema, and the versioned migrations.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use tokio_postgres::NoTls;

pub use deadpool_postgres::{Object, Pool, Transaction};

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub use crate::error::StoreError;

/// A read-only transaction that sees one snapshot: for a reader whose statements must agree with
/// each other (the API reads visit rows and open sessions separately; a visit closed between the
/// two reads would otherwise be in neither).
pub async fn read_snapshot(client: &mut Object) -> Result<Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

fn config(url: &str, namespace: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| StoreError::Url(e.to_string()))?;
    config.options(format!("-c search_path={namespace}"));
    config.application_name("beacon");
    Ok(config)
}

/// Bounds on every wait for PostgreSQL a service's pool makes.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting (TCP and start-up).
    pub connect: Duration,
    /// Waiting for a free pooled connection.
    pub pool_wait: Duration,
    /// `statement_timeout` of every pooled session; `None` leaves the server's.
    pub statement: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            pool_wait: Duration::from_secs(10),
            statement: None,
        }
    }
}

/// A connection pool whose sessions all use the namespace's schema.
pub fn pool(url: &str, namespace: &str, max_size: usize) -> Result<Pool, StoreError> {
    pool_with(url, namespace, max_size, Timeouts::default())
}

/// [`pool`] with explicit timeouts: no caller waits for PostgreSQL longer than they allow.
pub fn pool_with(
    url: &str,
    namespace: &str,
    max_size: usize,
    timeouts: Timeouts,
) -> Result<Pool, StoreError> {
    let mut config = config(url, namespace)?;
    config.connect_timeout(timeouts.connect);
    if let Some(statement) = timeouts.statement {
        config.options(format!(
            "-c search_path={namespace} -c statement_timeout={}",
            statement.as_millis()
        ));
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(timeouts.pool_wait))
        .create_timeout(Some(timeouts.connect))
        .build()
        .map_err(|e| StoreError::Url(e.to_string()))
}

/// Checks out a connection and runs `SELECT 1`.
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    pool.get().await?.execute("SELECT 1", &[]).await?;
    Ok(())
}

/// Creates the namespace's schema, applies pending migrations and their one-time data steps.
/// Idempotent and safe when many processes start at once: an advisory lock serialises them.
pub async fn migrate(url: &str, namespace: &str) -> Result<(), StoreError> {
    let (mut client, connection) = config(url, namespace)?.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    let lock_key = format!("beacon-migrate:{namespace}");
    client
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&lock_key])
        .await?;
    let result = async {
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{namespace}\""))
            .await?;
        let report = embedded::migrations::runner()
            .run_async(&mut client)
            .await?;
        for migration in report.applied_migrations() {
            tracing::info!(namespace, migration = %migration, "applied migration");
        }
        crate::calendar_rows::build_once(&mut client).await?;
        Ok::<(), StoreError>(())
    }
    .await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&lock_key])
        .await;
    drop(client);
    let _ = driver.await;
    result?;
    unlock?;
    Ok(())
}

/// Drops the namespace's schema and everything in it (tests and `beacon` teardown only).
pub async fn drop_namespace(url: &str, namespace: &str) -> Result<(), StoreError> {
    let (client, connection) = config(url, namespace)?.connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{namespace}\" CASCADE"))
        .await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}
