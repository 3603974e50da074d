//! A namespace per test: every stream, consumer, PostgreSQL schema, MongoDB database and Redis key
//! a test makes carries its name, and all of them are deleted when it drops (also on a panic).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use beacon_jetstream::async_nats::{self, jetstream};
use beacon_jetstream::{ConsumerPolicy, Topology, ensure_topology};

use crate::env::{mongo_url, nats_url, postgres_url, redis_url};

/// `t_{label}_{process}_{n}_{time}`: unique among the tests of all processes running at once.
pub fn unique_name(label: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("t_{label}_{}_{n}_{:x}", std::process::id(), nanos % 0xfffff)
}

/// A namespace unique to one test; on drop, its streams, schema, database and keys are deleted.
pub struct Namespace {
    pub name: String,
}

impl Namespace {
    pub fn new(label: &str) -> Self {
        Self {
            name: unique_name(label),
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.name)
    }

    /// The environment a `beacon` process of this namespace runs with.
    pub fn env(&self) -> HashMap<String, String> {
        HashMap::from([
            ("BEACON_NAMESPACE".to_string(), self.name.clone()),
            ("BEACON_NATS_URL".to_string(), nats_url()),
            ("BEACON_POSTGRES_URL".to_string(), postgres_url()),
            ("BEACON_MONGO_URL".to_string(), mongo_url()),
            ("BEACON_REDIS_URL".to_string(), redis_url()),
            ("BEACON_ADMIN_ADDR".to_string(), "127.0.0.1:0".to_string()),
            ("RUST_LOG".to_string(), "info".to_string()),
        ])
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        let client = async_nats::connect(nats_url())
            .await
            .expect("NATS must run (scripts/services up)");
        jetstream::new(client)
    }

    /// Creates the streams and consumers with the given consumer policy.
    pub async fn ensure_topology(&self, policy: &ConsumerPolicy) -> jetstream::Context {
        let js = self.jetstream().await;
        ensure_topology(
            &js,
            &self.topology(),
            &beacon_runtime::Config::defaults().stream_settings(),
            policy,
        )
        .await
        .expect("ensure topology");
        js
    }

    pub async fn pg(&self) -> beacon_store::Pool {
        beacon_store::postgres::migrate(&postgres_url(), &self.name)
            .await
            .expect("PostgreSQL must run");
        beacon_store::postgres::pool(&postgres_url(), &self.name, 4).expect("pool")
    }

    pub async fn archive(&self) -> beacon_store::Archive {
        let archive = beacon_store::Archive::connect(&mongo_url(), &self.name)
            .await
            .expect("mongo client");
        archive
            .ensure_indexes(None)
            .await
            .expect("MongoDB (or SecantusDB) must run");
        archive
    }

    async fn cleanup(name: String) {
        let topology = Topology::new(&name);
        if let Ok(client) = async_nats::connect(nats_url()).await {
            let js = jetstream::new(client);
            let _ = js.delete_stream(topology.events_stream()).await;
            let _ = js.delete_stream(topology.dead_letter_stream()).await;
        }
        let _ = beacon_store::postgres::drop_namespace(&postgres_url(), &name).await;
        if let Ok(archive) = beacon_store::Archive::connect(&mongo_url(), &name).await {
            let _ = archive.drop_namespace().await;
        }
        if let Ok(redis) = beacon_store::live::connect(&redis_url()).await {
            let _ = beacon_store::live::drop_namespace(&redis, &name).await;
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        crate::env::block_on_aside(Namespace::cleanup(self.name.clone()));
    }
}
