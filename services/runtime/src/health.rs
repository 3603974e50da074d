//! `/healthz`: real round trips to each dependency, each reported by name.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde::Serialize;

type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One dependency check: a name and an async round trip.
#[derive(Clone)]
pub struct Probe {
    name: &'static str,
    check: Check,
}

impl Probe {
    pub fn new<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name,
            check: Arc::new(move || Box::pin(check())),
        }
    }

    /// NATS: a flush is a PING/PONG round trip.
    pub fn nats(client: async_nats::Client) -> Self {
        Probe::new("nats", move || {
            let client = client.clone();
            async move { client.flush().await.map_err(|e| e.to_string()) }
        })
    }
}

/// The set of probes a process answers `/healthz` with.
#[derive(Clone, Default)]
pub struct Health {
    probes: Vec<Probe>,
}

#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    pub checks: Vec<CheckReport>,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub name: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Health {
    pub fn with(mut self, probe: Probe) -> Self {
        self.probes.push(probe);
        self
    }

    pub fn merge(mut self, other: Health) -> Self {
        for probe in other.probes {
            if !self.probes.iter().any(|p| p.name == probe.name) {
                self.probes.push(probe);
            }
        }
        self
    }

    /// Runs every probe concurrently, each bounded by two seconds.
    pub async fn check(&self) -> HealthReport {
        let checks = futures::future::join_all(self.probes.iter().map(|probe| async move {
            let result = tokio::time::timeout(Duration::from_secs(2), (probe.check)())
                .await
                .unwrap_or_else(|_| Err("timed out after 2s".to_string()));
            CheckReport {
                name: probe.name,
                ok: result.is_ok(),
                error: result.err(),
            }
        }))
        .await;
        HealthReport {
            healthy: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}
