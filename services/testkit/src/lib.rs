//! What Beacon's tests share, for every crate's tests: where the shared servers are, a namespace or
//! a migrated PostgreSQL schema per test that deletes itself when dropped (also when the test
//! panics), private servers for tests that stop or break theirs, and waiting on a condition.
//! Never a dependency of the services themselves.

pub mod env;
pub mod namespace;
pub mod private_postgres;
pub mod schema;
pub mod servers;

pub use env::{
    env_or, eventually, free_port, mongo_url, nats_url, postgres_url, redis_url, wait_for_port,
};
pub use namespace::Namespace;
pub use private_postgres::PrivatePostgres;
pub use schema::TestSchema;
pub use servers::{PrivateMongo, PrivateNats};
