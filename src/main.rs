//! The `dbsnapshot-operator` binary. Owns command-line parsing only.

use clap::{CommandFactory, Parser};

/// Kubernetes operator for AWS database snapshots: Amazon Redshift, Amazon DocumentDB
/// and Amazon ElastiCache, declared as ClusterSnapshot and SnapshotCopy objects.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    // The controllers (`run`) and CRD generation (`crd`) are not built yet; until then
    // the binary answers --help and --version only.
    Cli::command().print_help().expect("print help");
    std::process::exit(2);
}
