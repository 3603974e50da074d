//! What every Beacon service does the same way: configuration, logging, metrics, health,
//! shutdown and retries. Services build on it; it knows nothing about events.

pub mod admin;
pub mod config;
mod config_kinds;
pub mod consumer;
pub mod health;
pub mod http;
pub mod isolate;
pub mod retry;
pub mod serve;
pub mod shutdown;
pub mod telemetry;

pub use admin::{AdminState, admin_router};
pub use config::{Config, ConfigError, LogFormat};
pub use health::{Health, Probe};
pub use serve::{HttpLimits, serve};
pub use tokio_util::sync::CancellationToken;
