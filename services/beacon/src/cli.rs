//! The command line: the subcommands of Beacon's outside contract.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Parses the command line; `--help` lists every `BEACON_*` variable from its declaration.
pub fn parse() -> Cli {
    let matches = Cli::command()
        .after_help(beacon_runtime::config::help_text())
        .get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[derive(Debug, Parser)]
#[command(
    name = "beacon",
    version,
    about = "Self-hosted, privacy-friendly, real-time web analytics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector (HTTP ingestion → JetStream)
    Collector,
    /// Run the archiver (JetStream → MongoDB)
    Archiver,
    /// Run the aggregator (JetStream → PostgreSQL rollups, Redis live counters)
    Aggregator,
    /// Run the stats API and dashboard
    Api,
    /// Run all four services in one process
    All,
    /// Create or upgrade everything Beacon owns: schema, streams, consumers, indexes
    Migrate,
    /// Print the effective configuration (passwords masked) and check it
    Config,
    /// Exit 0 if the Beacon process on this machine is ready (its admin listener's /readyz at
    /// BEACON_ADMIN_ADDR answers 200), 1 otherwise: a container's health check
    Healthcheck,
    /// Manage sites
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Manage owners
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API keys
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Recompute a site's rollups, visits and sessions for whole local days from the events the
    /// stream (or the archive) holds, and swap them in while the pipeline runs
    Replay {
        /// The site to replay
        #[arg(
            long,
            required_unless_present = "all_sites",
            conflicts_with = "all_sites"
        )]
        site: Option<String>,
        /// Replay every registered site
        #[arg(long)]
        all_sites: bool,
        /// First local day of the range (YYYY-MM-DD)
        #[arg(long)]
        since: String,
        /// Last local day of the range (YYYY-MM-DD; default: the site's today)
        #[arg(long)]
        until: Option<String>,
        /// Where the events come from: the stream, the archive, or per day whichever holds it
        #[arg(long = "from", value_enum, default_value_t = ReplaySource::Auto)]
        source: ReplaySource,
        /// Print per day what would change; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Backfill historical events through the pipeline (safe to run again: what was imported
    /// before is skipped); exit code 1 when lines were rejected
    Import {
        /// Files to import (NDJSON: one event a line; GoatCounter: its CSV export, .gz unpacked;
        /// Plausible: its export zip or the CSV files in it)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The site the events belong to
        #[arg(long)]
        site: String,
        #[arg(long, value_enum, default_value_t = ImportFormat::Ndjson)]
        format: ImportFormat,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
        /// Hand at most this many events a second to the stream, so that live traffic keeps
        /// its room while history is imported (events; NDJSON and GoatCounter only)
        #[arg(long, value_name = "EVENTS_PER_SECOND")]
        max_rate: Option<std::num::NonZeroU32>,
    },
    /// A site's raw events from the archive as NDJSON import lines, or its daily aggregates as
    /// Plausible's CSV export zip (to stdout, or -o FILE)
    Export {
        #[arg(long)]
        site: String,
        /// First local day (YYYY-MM-DD)
        #[arg(long)]
        since: String,
        /// Last local day (YYYY-MM-DD; default: the site's today)
        #[arg(long)]
        until: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Ndjson)]
        format: ExportFormat,
        /// Write to this file instead of stdout
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Merge the 15-minute rollup rows of old local days into one row per day (the aggregator
    /// also does this every hour for days older than BEACON_ROLLUP_FINE_RETENTION)
    Compact {
        /// Compact local days that ended longer ago than this (default: BEACON_ROLLUP_FINE_RETENTION)
        #[arg(long)]
        older_than: Option<humantime::Duration>,
    },
    /// Stream and consumer state: pending, ack pending, redelivered
    Lag {
        #[arg(long)]
        json: bool,
    },
    /// A site's goals: the custom events and pages counted as conversions
    Goal {
        #[command(subcommand)]
        command: GoalCommand,
    },
    /// Site-scoped ingest tokens for server-side senders
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Dead letters
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// Visits set aside because PostgreSQL refused to close them
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List quarantined visits with the reason their closing failed
    Quarantined {
        #[arg(long)]
        json: bool,
    },
    /// Let the aggregator try to close every quarantined visit again (after a fix)
    Retry,
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Register a site
    Add {
        domain: String,
        /// IANA time zone the site's days are counted in
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[arg(long)]
        owner: Option<String>,
    },
    /// List sites
    List,
    /// Delete a site and all its data: statistics, visits, imported aggregates, archived and
    /// streamed events, live counters, ingest tokens (without --yes: only says what it would do)
    Delete {
        domain: String,
        /// Really delete (there is no undo)
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an owner
    Add {
        email: String,
        #[arg(long)]
        password_stdin: bool,
        /// Also an operator: may see the pipeline page and /api/pipeline (every tenant's lag)
        #[arg(long)]
        operator: bool,
    },
    /// Set a user's dashboard password (read from stdin) and sign out all their sessions
    Passwd {
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Make a user an operator (or, with --revoke, an owner only again)
    Operator {
        email: String,
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key (printed once)
    Create {
        #[arg(long)]
        user: String,
    },
    /// A user's API keys: id, first characters, created, last used (never the key)
    List {
        #[arg(long)]
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one of a user's API keys (by the id `key list` shows); it stops working at once
    Revoke {
        #[arg(long)]
        user: String,
        #[arg(long)]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum GoalCommand {
    /// Count a custom event (e.g. "Signup", "Outbound Link: Click", "File Download", "404") or
    /// the page views of a path (a `*` matches any run of characters) as a goal
    Add {
        #[arg(long)]
        site: String,
        #[command(flatten)]
        goal: GoalArg,
    },
    /// A site's goals, as `event:goal` breakdowns name them
    List {
        #[arg(long)]
        site: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop counting a goal (the statistics it was computed from stay)
    Delete {
        #[arg(long)]
        site: String,
        #[command(flatten)]
        goal: GoalArg,
    },
}

/// A goal on the command line: `--event NAME` or `--page PATH-PATTERN`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct GoalArg {
    /// A custom event's name
    #[arg(long)]
    pub event: Option<String>,
    /// A page path or pattern, e.g. /pricing or /blog/*
    #[arg(long)]
    pub page: Option<String>,
}

impl GoalArg {
    pub fn goal(self) -> beacon_store::goals::Goal {
        match (self.event, self.page) {
            (Some(name), _) => beacon_store::goals::Goal::Event(name),
            (None, Some(path)) => beacon_store::goals::Goal::Page(path),
            (None, None) => unreachable!("clap requires --event or --page"),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an ingest token for a site (printed once): with it, POST /track may set
    /// ip, user_agent, timestamp and id for that site's events
    Create {
        #[arg(long)]
        site: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters with the consumer, original sequence and reason
    List {
        #[arg(long)]
        json: bool,
    },
    /// Re-publish dead letters to the events stream (after a fix) and remove them from the DLQ
    Retry {
        /// Only the dead letter with this sequence (from `dlq list`)
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        seq: Option<u64>,
        /// Every dead letter
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReplaySource {
    Stream,
    Archive,
    Auto,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Ndjson,
    PlausibleCsv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportFormat {
    Ndjson,
    GoatcounterCsv,
    PlausibleCsv,
}
