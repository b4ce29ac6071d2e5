//! The `dbsnapshot-operator` binary: command line, logging, clients; then the
//! controllers run until SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use clap::{Args, Parser, Subcommand, ValueEnum};
use dbsnapshot_operator::api::{Defaults, DeletionPolicy};
use dbsnapshot_operator::controller::snapshot_schedule::ScheduleClock;
use dbsnapshot_operator::controller::{self, Polling, Settings};
use dbsnapshot_operator::engine::budget::Rate;
use dbsnapshot_operator::leader::LeaderElection;
use dbsnapshot_operator::lifecycle::Timing;

/// Kubernetes operator for AWS database snapshots: Amazon Redshift, Amazon DocumentDB
/// and Amazon ElastiCache, declared as ClusterSnapshot, SnapshotCopy and SnapshotSchedule
/// objects.
#[derive(Debug, Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the controllers (the default).
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum PollingMode {
    /// One paginated describe per source cluster refreshes all its snapshots.
    Batched,
    /// One describe per object every 30 s (the benchmark's baseline).
    PerObject,
}

#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum RetryMode {
    /// Up to 3 attempts with exponential backoff, paced by the request budget.
    Standard,
    /// The same, plus the SDK's client-side limiter that slows down after throttling.
    Adaptive,
}

/// `--default-deletion-policy`, spelt as in a spec.
#[derive(Debug, Clone, Copy, PartialEq, ValueEnum)]
enum DefaultDeletionPolicy {
    /// Deleting an object revokes its snapshot's shares and deletes the snapshot.
    #[value(name = "Delete", alias = "delete")]
    Delete,
    /// Deleting an object leaves its snapshot and shares on AWS.
    #[value(name = "Retain", alias = "retain")]
    Retain,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// AWS region for objects that name none (default: the AWS config chain's).
    #[arg(long, env = "DBSNAPSHOT_REGION")]
    region: Option<String>,
    /// Watch only these namespaces, comma-separated (default: all namespaces).
    #[arg(long, env = "DBSNAPSHOT_NAMESPACE", value_delimiter = ',')]
    namespace: Vec<String>,
    /// The deletionPolicy of objects whose spec has none, recorded in each object's
    /// status.deletionPolicy before its snapshot is made (so changing it later changes only
    /// objects made afterwards). With Delete, deleting a namespace deletes its
    /// snapshots on AWS.
    #[arg(long, value_enum, default_value_t = DefaultDeletionPolicy::Delete, env = "DBSNAPSHOT_DEFAULT_DELETION_POLICY")]
    default_deletion_policy: DefaultDeletionPolicy,
    /// Tags put on every snapshot the operator makes, as key=value pairs separated by
    /// commas; a key in an object's spec.tags wins. Changing them retags the snapshots.
    /// They must suit every engine (DocumentDB takes no @); a copy with copyTags takes
    /// its source's tags instead.
    #[arg(long, default_value = "", env = "DBSNAPSHOT_DEFAULT_TAGS")]
    default_tags: String,
    /// Objects reconciled at the same time.
    #[arg(long, default_value_t = 8, env = "DBSNAPSHOT_CONCURRENCY")]
    concurrency: u16,
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080", env = "DBSNAPSHOT_METRICS_ADDR")]
    metrics_addr: SocketAddr,
    /// Log format; the filter comes from RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "DBSNAPSHOT_LOG_FORMAT")]
    log_format: LogFormat,
    /// Seconds between looks at an available snapshot (drift repair).
    #[arg(long, default_value_t = 600, env = "DBSNAPSHOT_RESYNC_SECONDS")]
    resync_seconds: u64,
    /// Longest wait, in seconds, between looks at a snapshot AWS is still creating.
    #[arg(long, default_value_t = 60, env = "DBSNAPSHOT_MAX_POLL_SECONDS")]
    max_poll_seconds: u64,
    /// Shortest wait, in seconds, between two describes of one source cluster's
    /// snapshots (batched polling).
    #[arg(long, default_value_t = 11, env = "DBSNAPSHOT_MIN_POLL_SECONDS")]
    min_poll_seconds: u64,
    /// Shortest wait, in seconds, between two status writes of one object that change
    /// only its progress (percent, megabytes backed up); never below
    /// --min-poll-seconds. Every other change is written at once.
    #[arg(long, default_value_t = 60, env = "DBSNAPSHOT_PROGRESS_WRITE_SECONDS")]
    progress_write_seconds: u64,
    /// How snapshots are watched on AWS.
    #[arg(long, value_enum, default_value_t = PollingMode::Batched, env = "DBSNAPSHOT_POLLING")]
    polling: PollingMode,
    /// AWS requests per second allowed per region and service (batched polling); lowered
    /// for a while when AWS throttles.
    #[arg(long, default_value_t = 3.0, env = "DBSNAPSHOT_AWS_RATE")]
    aws_rate: f64,
    /// AWS requests that may go at once after a quiet spell, per region and service.
    #[arg(long, default_value_t = 3, env = "DBSNAPSHOT_AWS_BURST")]
    aws_burst: u32,
    /// Retry on top of the request budget: the SDK's standard retry, or its adaptive
    /// retry (a client-side limiter that, after throttling at low call rates, allows
    /// about one retry per 20 s).
    #[arg(long, value_enum, default_value_t = RetryMode::Standard, env = "DBSNAPSHOT_AWS_RETRY_MODE")]
    aws_retry_mode: RetryMode,
    /// Elect a leader through a Lease: only the process holding it reconciles, the others
    /// stand by; stopped, the leader hands the Lease over. Wherever two processes may
    /// overlap (a Deployment's rollout: the chart always turns it on).
    #[arg(long, env = "DBSNAPSHOT_LEADER_ELECTION")]
    leader_election: bool,
    /// Namespace of the Lease (default: POD_NAMESPACE, else the first --namespace, else
    /// default).
    #[arg(long, env = "DBSNAPSHOT_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(
        long,
        default_value = "dbsnapshot-operator",
        env = "DBSNAPSHOT_LEASE_NAME"
    )]
    lease_name: String,
    /// Seconds a leader holds the Lease without renewing it (a standby takes over after).
    #[arg(long, default_value_t = 15, env = "DBSNAPSHOT_LEASE_DURATION_SECONDS")]
    lease_duration_seconds: u64,
    /// Reconcile only the ClusterSnapshots, SnapshotCopies and SnapshotSchedules this
    /// label selector selects (e.g. `shard=a`): several deployments, each with its own
    /// --lease-name and a disjoint selector, share one cluster. A SnapshotCopy and the
    /// ClusterSnapshot it names must be in the same shard; the objects a
    /// SnapshotSchedule makes carry its labels for the keys the selector names.
    #[arg(long, env = "DBSNAPSHOT_LABEL_SELECTOR")]
    label_selector: Option<String>,
    /// Testing only: the seconds in a retention day, to match an emulator whose days are
    /// shorter (its `secondsPerDay` setting). Decides only whether a vanished snapshot
    /// is reported as expired.
    #[arg(
        long,
        default_value_t = 86_400,
        hide = true,
        env = "DBSNAPSHOT_SECONDS_PER_DAY"
    )]
    seconds_per_day: u64,
    /// Testing only: SnapshotSchedules run on a clock this many times faster than the
    /// real one, from --schedule-clock-origin (so a per-minute cron runs every few
    /// seconds). Scheduled times, run names and retention ages are on that clock.
    #[arg(
        long,
        default_value_t = 1.0,
        hide = true,
        env = "DBSNAPSHOT_SCHEDULE_CLOCK_SPEED"
    )]
    schedule_clock_speed: f64,
    /// Testing only: when the fast schedule clock starts (RFC 3339; default: now). Give
    /// the same origin to a restarted operator so that its clock goes on where it was.
    #[arg(long, hide = true, env = "DBSNAPSHOT_SCHEDULE_CLOCK_ORIGIN")]
    schedule_clock_origin: Option<jiff::Timestamp>,
}

fn init_logging(format: LogFormat) {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Whatever RUST_LOG says: the SDK's endpoint resolution dumps the request's whole
    // configuration (the credentials' access key id included) at debug, and SigV4 its
    // canonical requests; neither goes below info.
    for quiet in [
        "aws_smithy_runtime::client::orchestrator::endpoints=info",
        "aws_sigv4=info",
    ] {
        filter = filter.add_directive(quiet.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Asks the API server whether `--label-selector` parses (a list of at most one
/// ClusterSnapshot with it, in the first watched namespace or in all): a bad selector
/// stops the operator at start, naming the flag, instead of failing every watch. Other
/// errors (no CRD yet, no access) are left to the watches, which report them.
async fn check_label_selector(
    client: &kube::Client,
    namespace: Option<&str>,
    selector: &str,
) -> anyhow::Result<()> {
    let api: kube::Api<dbsnapshot_operator::api::ClusterSnapshot> = match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    };
    match api
        .list_metadata(&kube::api::ListParams::default().labels(selector).limit(1))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 400 => Err(anyhow::anyhow!(
            "--label-selector (DBSNAPSHOT_LABEL_SELECTOR) {selector:?} is not a valid label \
             selector: {}",
            e.message
        )),
        _ => Ok(()),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    // The namespaces to watch, in the order given (the first is the Lease's default).
    let namespaces: Vec<String> = args
        .namespace
        .iter()
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
        .collect();
    if namespaces.is_empty() && !args.namespace.is_empty() {
        // An empty value must not widen the watch to every namespace.
        anyhow::bail!(
            "--namespace (DBSNAPSHOT_NAMESPACE) names no namespace: {:?}; give namespaces \
             separated by commas, or leave it unset to watch all namespaces",
            args.namespace.join(",")
        );
    }
    let defaults = Defaults {
        deletion_policy: match args.default_deletion_policy {
            DefaultDeletionPolicy::Delete => DeletionPolicy::Delete,
            DefaultDeletionPolicy::Retain => DeletionPolicy::Retain,
        },
        tags: Defaults::parse_tags(&args.default_tags)
            .map_err(|e| anyhow::anyhow!("--default-tags (DBSNAPSHOT_DEFAULT_TAGS): {e}"))?,
    };
    defaults
        .check()
        .map_err(|e| anyhow::anyhow!("--default-tags (DBSNAPSHOT_DEFAULT_TAGS): {e}"))?;
    // Both the Kubernetes and the AWS clients use rustls on ring (the only crypto
    // provider built in: Cargo.toml keeps aws-lc out); one process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let metrics = std::sync::Arc::new(dbsnapshot_operator::metrics::Metrics::default());
    let kube_config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    // Every write to the API server is counted (dbsnapshot_kube_writes_total).
    let client = kube::client::ClientBuilder::try_from(kube_config)
        .context("the Kubernetes client")?
        .with_layer(&metrics.kube_write_layer())
        .build();
    if let Some(selector) = args
        .label_selector
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        check_label_selector(&client, namespaces.first().map(String::as_str), selector).await?;
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(dbsnapshot_operator::engine::budget::https_client())
        .retry_config(
            RetryConfig::standard().with_max_attempts(dbsnapshot_operator::engine::MAX_ATTEMPTS),
        )
        .timeout_config(
            TimeoutConfig::builder()
                // An attempt includes its wait in the request budget (a queue of a few
                // dozen calls when AWS throttles hard).
                .operation_attempt_timeout(Duration::from_secs(45))
                .operation_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(region) = &args.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let aws = loader.load().await;
    if aws.region().is_none() {
        tracing::warn!("no AWS region configured: objects must set spec.region (or pass --region)");
    }
    let leader_election = args.leader_election.then(|| LeaderElection {
        namespace: args
            .leader_election_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .or_else(|| namespaces.first().cloned())
            .unwrap_or_else(|| "default".to_string()),
        lease_name: args.lease_name.clone(),
        identity: std::env::var("POD_NAME").unwrap_or_else(|_| {
            format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "dbsnapshot-operator".into()),
                std::process::id()
            )
        }),
        duration_seconds: args.lease_duration_seconds.max(2),
    });
    let settings = Settings {
        leader_election,
        namespaces: {
            let mut namespaces = namespaces.clone();
            namespaces.sort();
            namespaces.dedup();
            namespaces
        },
        label_selector: args
            .label_selector
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        concurrency: args.concurrency.max(1),
        metrics_addr: args.metrics_addr,
        timing: Timing {
            resync: Duration::from_secs(args.resync_seconds.max(1)),
            max_poll: Duration::from_secs(args.max_poll_seconds.max(2)),
            batch_floor: Duration::from_secs(args.min_poll_seconds.max(1)),
            no_estimate_poll: Duration::from_secs(args.min_poll_seconds.max(1)).mul_f64(1.2),
            day: Duration::from_secs(args.seconds_per_day.max(1)),
            progress_write: Duration::from_secs(
                args.progress_write_seconds
                    .max(args.min_poll_seconds.max(1)),
            ),
            ..Timing::default()
        },
        polling: match args.polling {
            PollingMode::Batched => Polling::Batched(Rate {
                per_second: args.aws_rate.max(0.1),
                burst: f64::from(args.aws_burst.max(1)),
            }),
            PollingMode::PerObject => Polling::PerObject,
        },
        adaptive_retry: args.aws_retry_mode == RetryMode::Adaptive,
        defaults,
        schedule_clock: ScheduleClock {
            origin: args
                .schedule_clock_origin
                .unwrap_or_else(jiff::Timestamp::now),
            speed: if args.schedule_clock_speed > 0.0 {
                args.schedule_clock_speed
            } else {
                1.0
            },
        },
    };
    controller::run(client, aws, settings, metrics).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(cli_main())
}

/// glibc gives every thread that allocates an arena of its own, up to eight per core,
/// and keeps what each arena freed: the runtime's short-lived blocking threads (name
/// lookups for new connections) leave memory spread over many. Two arenas serve this
/// process (mostly waiting on the network) as well and keep its memory together. A
/// `MALLOC_ARENA_MAX` in the environment wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt changes only the allocator's settings, and runs before any
        // other thread of this process exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

async fn cli_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Crd) => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            match out
                .write_all(dbsnapshot_operator::api::crds_yaml().as_bytes())
                .and_then(|()| out.flush())
            {
                // `crd | head` or `crd | grep -q` closes the pipe early: not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Some(Command::Run(args)) => run(*args).await,
        None => run(cli.run).await,
    }
}
