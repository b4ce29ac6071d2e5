//! `aws-emulator`: serves the emulated AWS APIs on a loopback port.

use std::collections::HashMap;

use anyhow::{Context, bail};
use aws_emulator::server::{Options, default_credentials, start};
use aws_emulator::state::Faults;
use aws_emulator::sts::Role;
use clap::Parser;

/// An AWS Query-protocol emulator for Redshift, DocumentDB and ElastiCache snapshots and STS.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one; the chosen address is printed).
    #[arg(short, long, default_value_t = 0)]
    port: u16,
    /// Seconds a snapshot takes to go from creating (or copying) to available.
    #[arg(long, default_value_t = 5.0)]
    snapshot_seconds: f64,
    /// Fraction of calls answered Throttling.
    #[arg(long, default_value_t = 0.0)]
    throttle_fraction: f64,
    /// Fraction of calls answered HTTP 500 InternalFailure.
    #[arg(long, default_value_t = 0.0)]
    error_fraction: f64,
    /// Milliseconds added to every AWS call.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Requests per second per account before calls are throttled (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    account_rps: f64,
    /// A known credential, ACCESS_KEY_ID:SECRET (repeatable), for presigned URLs;
    /// the test bed's keys are known by default.
    #[arg(long = "credential", value_name = "ACCESS_KEY_ID:SECRET")]
    credentials: Vec<String>,
    /// An IAM role STS AssumeRole may hand out and the accounts it trusts,
    /// ROLE_ARN=ACCOUNT[,ACCOUNT...] (repeatable; more through `/_emulator/roles`).
    #[arg(long = "role", value_name = "ROLE_ARN=ACCOUNTS", value_parser = Role::from_flag)]
    roles: Vec<Role>,
    /// Seed for the fault-injection random numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    for (name, f) in [
        ("--throttle-fraction", args.throttle_fraction),
        ("--error-fraction", args.error_fraction),
    ] {
        if !(0.0..=1.0).contains(&f) {
            bail!("{name} must be between 0 and 1, got {f}");
        }
    }
    let mut credentials: HashMap<String, String> = default_credentials();
    for c in &args.credentials {
        let (k, s) = c
            .split_once(':')
            .with_context(|| format!("--credential {c}: expected ACCESS_KEY_ID:SECRET"))?;
        credentials.insert(k.to_string(), s.to_string());
    }
    let options = Options {
        snapshot_seconds: args.snapshot_seconds,
        faults: Faults {
            throttle_fraction: args.throttle_fraction,
            error_fraction: args.error_fraction,
            latency_ms: args.latency_ms,
            account_rps: args.account_rps,
            ..Faults::default()
        },
        credentials,
        seed: args.seed,
        roles: args.roles,
    };
    let (addr, _state, task) = start(args.port, options)
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))?;
    println!("aws-emulator listening on http://{addr}");
    tokio::select! {
        _ = task => {}
        _ = shutdown() => {}
    }
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
