//! `beacon`: the one binary. Parses the command line and hands over to the services and tools.

mod backfill;
mod cli;
mod goal_tools;
mod healthcheck;
mod services;
mod tools;
mod wiring;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: the request path allocates a lot of small, short-lived
/// buffers across threads, where glibc's malloc showed up as a quarter of the collector's CPU time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use crate::cli::{
    Command, DlqCommand, GoalCommand, KeyCommand, SessionsCommand, SiteCommand, TokenCommand,
    UserCommand,
};

fn main() -> ExitCode {
    let cli = cli::parse();
    if let Command::Config = cli.command {
        // Printed before anything starts, and also when the configuration is invalid.
        return print_config();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("beacon: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("beacon: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `beacon config`: every variable's effective value, then whether the whole is valid.
fn print_config() -> ExitCode {
    for line in beacon_runtime::config::effective(|name| std::env::var(name).ok()) {
        println!("{line}");
    }
    match beacon_runtime::Config::from_env() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beacon: configuration: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    let config =
        beacon_runtime::Config::from_env().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    if let Command::Healthcheck = command {
        return Ok(healthcheck::healthcheck(config.admin_addr).await);
    }
    beacon_runtime::telemetry::init_tracing(config.log_format);
    match command {
        Command::Collector => services::collector(config).await?,
        Command::Archiver => services::archiver(config).await?,
        Command::Aggregator => services::aggregator(config).await?,
        Command::Api => services::api(config).await?,
        Command::All => services::all(config).await?,
        Command::Migrate => tools::migrate(&config).await?,
        Command::Config => {} // answered in `main`, before the runtime starts
        Command::Healthcheck => {} // answered above, without logging
        Command::Site {
            command:
                SiteCommand::Add {
                    domain,
                    timezone,
                    owner,
                },
        } => tools::site_add(&config, &domain, &timezone, owner.as_deref()).await?,
        Command::Site {
            command: SiteCommand::List,
        } => tools::site_list(&config).await?,
        Command::Site {
            command: SiteCommand::Delete { domain, yes },
        } => return tools::site_delete(&config, &domain, yes).await,
        Command::Lag { json } => tools::lag(&config, json).await?,
        Command::Compact { older_than } => {
            let older_than = older_than.map_or(config.rollup_fine_retention, Into::into);
            tools::compact(&config, older_than).await?
        }
        Command::User {
            command:
                UserCommand::Add {
                    email,
                    password_stdin,
                    operator,
                },
        } => tools::user_add(&config, &email, password_stdin, operator).await?,
        Command::User {
            command: UserCommand::Operator { email, revoke },
        } => tools::user_operator(&config, &email, !revoke).await?,
        Command::Key {
            command: KeyCommand::Create { user },
        } => tools::key_create(&config, &user).await?,
        Command::Key {
            command: KeyCommand::List { user, json },
        } => tools::key_list(&config, &user, json).await?,
        Command::Key {
            command: KeyCommand::Revoke { user, id },
        } => tools::key_revoke(&config, &user, id).await?,
        Command::User {
            command: UserCommand::Passwd { email, .. },
        } => tools::user_passwd(&config, &email).await?,
        Command::Replay {
            site,
            all_sites: _,
            since,
            until,
            source,
            dry_run,
            json,
        } => {
            let request = beacon_backfill::ReplayRequest {
                site,
                since,
                until,
                source: source.into(),
                dry_run,
                progress: !json,
            };
            backfill::replay(&config, &request, json).await?
        }
        Command::Export {
            site,
            since,
            until,
            format,
            output,
        } => {
            let request = beacon_backfill::export::ExportRequest {
                site,
                since,
                until,
                progress: output.is_some(),
            };
            backfill::export(&config, &request, format, output.as_deref()).await?
        }
        Command::Import {
            files,
            site,
            format,
            json,
            max_rate,
        } => {
            use beacon_backfill::import::EventFormat;
            let format = match format {
                cli::ImportFormat::Ndjson => EventFormat::Ndjson,
                cli::ImportFormat::GoatcounterCsv => EventFormat::GoatcounterCsv,
                cli::ImportFormat::PlausibleCsv => {
                    anyhow::ensure!(
                        max_rate.is_none(),
                        "--max-rate: a Plausible export is imported as daily aggregates, not \
                         events; it applies to ndjson and goatcounter-csv"
                    );
                    let request = beacon_backfill::plausible_csv::import::AggregateImportRequest {
                        files,
                        site,
                        progress: !json,
                    };
                    return backfill::import_aggregates(&config, &request, json).await;
                }
            };
            let request = beacon_backfill::import::ImportRequest {
                files,
                site,
                format,
                progress: !json,
                max_rate,
            };
            return backfill::import(&config, &request, json).await;
        }
        Command::Dlq {
            command: DlqCommand::List { json },
        } => tools::dlq_list(&config, json).await?,
        Command::Dlq {
            command: DlqCommand::Retry { seq, all: _ },
        } => tools::dlq_retry(&config, seq).await?,
        Command::Sessions {
            command: SessionsCommand::Quarantined { json },
        } => tools::sessions_quarantined(&config, json).await?,
        Command::Goal {
            command: GoalCommand::Add { site, goal },
        } => goal_tools::goal_add(&config, &site, goal.goal()).await?,
        Command::Goal {
            command: GoalCommand::List { site, json },
        } => goal_tools::goal_list(&config, &site, json).await?,
        Command::Goal {
            command: GoalCommand::Delete { site, goal },
        } => goal_tools::goal_delete(&config, &site, goal.goal()).await?,
        Command::Token {
            command: TokenCommand::Create { site },
        } => tools::token_create(&config, &site).await?,
        Command::Sessions {
            command: SessionsCommand::Retry,
        } => tools::sessions_retry(&config).await?,
    }
    Ok(ExitCode::SUCCESS)
}
