//! The processes of the chaos run: one collector, one API, two archivers, two aggregators, each
//! a `beacon` child that the run SIGKILLs and starts again.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{Beacon, wait_ready};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Collector,
    Api,
    Archiver,
    Aggregator,
}

impl Role {
    fn command(self) -> &'static str {
        match self {
            Role::Collector => "collector",
            Role::Api => "api",
            Role::Archiver => "archiver",
            Role::Aggregator => "aggregator",
        }
    }

    fn copies(self) -> usize {
        match self {
            Role::Collector | Role::Api => 1,
            Role::Archiver | Role::Aggregator => 2,
        }
    }

    /// What killing copy `index` of this role is called in the report.
    fn kill_label(self) -> &'static str {
        match self {
            Role::Collector => "SIGKILL of the collector",
            Role::Api => "SIGKILL of the API",
            Role::Archiver => "SIGKILL of one archiver",
            Role::Aggregator => "SIGKILL of one aggregator",
        }
    }
}

const ROLES: [Role; 4] = [Role::Collector, Role::Api, Role::Archiver, Role::Aggregator];

pub struct Fleet {
    env: HashMap<String, String>,
    processes: Vec<(Role, Beacon)>,
    http: reqwest::Client,
    collector: String,
    api: String,
}

impl Fleet {
    /// Starts every process and waits until the collector and the API are ready.
    pub async fn start(
        env: &HashMap<String, String>,
        http: &reqwest::Client,
        collector: &str,
        api: &str,
    ) -> Self {
        let processes = ROLES
            .iter()
            .flat_map(|&role| (0..role.copies()).map(move |_| role))
            .map(|role| (role, Beacon::spawn(env, &[role.command()])))
            .collect();
        let mut fleet = Self {
            env: env.clone(),
            processes,
            http: http.clone(),
            collector: collector.to_string(),
            api: api.to_string(),
        };
        fleet.wait_ready().await;
        fleet
    }

    /// SIGKILLs copy `index` of `role` and starts a new one at once; returns the fault's name.
    pub fn kill_and_restart(&mut self, role: Role, index: usize) -> &'static str {
        let slot = self
            .processes
            .iter_mut()
            .filter(|(r, _)| *r == role)
            .nth(index)
            .expect("a copy of the role");
        slot.1.kill();
        slot.1 = Beacon::spawn(&self.env, &[role.command()]);
        role.kill_label()
    }

    /// Panics with the log of any process that exited by itself.
    pub fn assert_running(&mut self) {
        for (_, process) in self.processes.iter_mut() {
            process.assert_running();
        }
    }

    /// Waits until the collector and the API answer `/readyz`.
    pub async fn wait_ready(&mut self) {
        let (http, collector, api) = (self.http.clone(), self.collector.clone(), self.api.clone());
        for (role, process) in self.processes.iter_mut() {
            let url = match role {
                Role::Collector => &collector,
                Role::Api => &api,
                _ => continue,
            };
            wait_ready(
                &http,
                &format!("{url}/readyz"),
                process,
                Duration::from_secs(60),
            )
            .await;
        }
    }
}
