//! The store's error type, in a leaf module that every store module imports (and that imports
//! none of them), with the two things a caller acts on: the real reason (PostgreSQL's own message
//! and SQLSTATE, not "db error") and whether trying again can help.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    #[error("PostgreSQL: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("migration failed: {0}")]
    Migration(#[from] refinery::Error),
    /// Input the store refuses (an address that is not an email, a session outside its range).
    #[error("{0}")]
    Invalid(String),
    /// A record that exists already (`site example.com`, `user a@b.example`).
    #[error("{0} already exists")]
    Exists(String),
    /// Stored data that cannot be read back: what it is, and why.
    #[error("{what}: {source}")]
    Corrupt {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A value that cannot be written (encoding a session, hashing a password).
    #[error("{what}: {source}")]
    Unwritable {
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What a failed store call says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The store could not be reached or asked us to come back (connection lost, pool timeout,
    /// serialization failure, deadlock, shutdown, out of resources): the same input may succeed
    /// later, so retry it whole.
    Transient,
    /// PostgreSQL refused the data itself (SQLSTATE class 22 "data exception", 23 "integrity
    /// constraint", 54 "program limit exceeded", e.g. a NUL in text or an index row too large):
    /// the same input fails again, so find the item that causes it and set it aside.
    Data,
    /// Anything else (a bug, a missing table): not known to depend on the input; retried, and
    /// dead-lettered only once the delivery limit is reached.
    Other,
}

impl StoreError {
    pub fn failure(&self) -> Failure {
        match self {
            StoreError::Pool(_) => Failure::Transient,
            StoreError::Postgres(e) => postgres_failure(e),
            StoreError::Url(_) | StoreError::Migration(_) => Failure::Other,
            StoreError::Invalid(_)
            | StoreError::Exists(_)
            | StoreError::Corrupt { .. }
            | StoreError::Unwritable { .. } => Failure::Data,
        }
    }
}

impl StoreError {
    /// Stored data that cannot be read back, keeping why.
    pub fn corrupt(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Corrupt {
            what,
            source: source.into(),
        }
    }
}

fn postgres_failure(e: &tokio_postgres::Error) -> Failure {
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection (closed, I/O, timeout) or the client itself.
        return if e.is_closed() || e.as_db_error().is_none() {
            Failure::Transient
        } else {
            Failure::Other
        };
    };
    match &code.code()[..2] {
        "08" | "40" | "53" | "57" | "58" => Failure::Transient,
        "22" | "23" | "54" => Failure::Data,
        _ => Failure::Other,
    }
}

/// PostgreSQL's own words: `SQLSTATE message (detail)`, or the client's error and its cause.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(place) = db.where_() {
                text.push_str(&format!(" [{}]", place.lines().next().unwrap_or("")));
            }
            text
        }
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}
