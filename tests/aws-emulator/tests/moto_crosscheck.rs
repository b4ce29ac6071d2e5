//! The same SDK flows against moto (an AWS implementation nobody here wrote) and
//! against the emulator, expecting the same outcomes step by step. Only what moto
//! implements is compared (see the test bed notes): Redshift cluster snapshots,
//! DocumentDB cluster snapshots with copies and restore sharing, ElastiCache snapshots,
//! STS AssumeRole and GetCallerIdentity.

mod common;

use std::fmt::Debug;

use aws_config::retry::RetryConfig;
use aws_sdk_redshift::error::ProvideErrorMetadata;
use common::process::moto_server;
use common::*;

/// One step's outcome: what the call returned (the fields both sides implement) or
/// the AWS error code.
fn outcome<T, E: ProvideErrorMetadata + Debug>(
    step: &str,
    r: Result<T, E>,
    ok: impl FnOnce(T) -> String,
) -> String {
    match r {
        Ok(v) => format!("{step}: ok {}", ok(v)),
        Err(e) => format!("{step}: error {}", e.code().unwrap_or("<no code>")),
    }
}

async fn redshift_flow(url: &str) -> Vec<String> {
    let rs = aws_sdk_redshift::Client::new(
        &config_for(url, "us-east-1", KEY, RetryConfig::disabled()).await,
    );
    let mut out = Vec::new();
    let r = rs
        .create_cluster()
        .cluster_identifier("xc")
        .node_type("dc2.large")
        .master_username("admin")
        .master_user_password("Secret123")
        .send()
        .await;
    out.push(outcome("CreateCluster", r, |o| {
        format!("{:?}", o.cluster().and_then(|c| c.cluster_identifier()))
    }));
    let create = || {
        rs.create_cluster_snapshot()
            .snapshot_identifier("xs")
            .cluster_identifier("xc")
            .send()
    };
    out.push(outcome("CreateClusterSnapshot", create().await, |o| {
        let s = o.snapshot().unwrap();
        format!(
            "{:?} {:?} {:?} {:?}",
            s.snapshot_identifier(),
            s.cluster_identifier(),
            s.snapshot_type(),
            s.status()
        )
    }));
    out.push(outcome(
        "CreateClusterSnapshot again",
        create().await,
        |_| String::new(),
    ));
    let r = rs
        .create_cluster_snapshot()
        .snapshot_identifier("ys")
        .cluster_identifier("ghost")
        .send()
        .await;
    out.push(outcome(
        "CreateClusterSnapshot of a missing cluster",
        r,
        |_| String::new(),
    ));
    let r = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("xs")
        .send()
        .await;
    out.push(outcome("DescribeClusterSnapshots", r, |o| {
        let s = &o.snapshots()[0];
        format!(
            "{} {:?} {:?}",
            o.snapshots().len(),
            s.snapshot_identifier(),
            s.status()
        )
    }));
    let r = rs
        .describe_cluster_snapshots()
        .cluster_identifier("xc")
        .snapshot_type("manual")
        .send()
        .await;
    out.push(outcome("DescribeClusterSnapshots by cluster", r, |o| {
        format!("{}", o.snapshots().len())
    }));
    let r = rs
        .describe_cluster_snapshots()
        .snapshot_identifier("ghost")
        .send()
        .await;
    out.push(outcome("DescribeClusterSnapshots missing", r, |_| {
        String::new()
    }));
    let delete = || {
        rs.delete_cluster_snapshot()
            .snapshot_identifier("xs")
            .send()
    };
    out.push(outcome("DeleteClusterSnapshot", delete().await, |o| {
        format!("{:?}", o.snapshot().and_then(|s| s.snapshot_identifier()))
    }));
    out.push(outcome(
        "DeleteClusterSnapshot again",
        delete().await,
        |_| String::new(),
    ));
    out
}

async fn docdb_flow(url: &str, engine: &str) -> Vec<String> {
    let db = aws_sdk_docdb::Client::new(
        &config_for(url, "us-east-1", KEY, RetryConfig::disabled()).await,
    );
    let mut out = Vec::new();
    let r = db
        .create_db_cluster()
        .db_cluster_identifier("orders")
        .engine(engine)
        .master_username("docdbadmin")
        .master_user_password("Secret123")
        .send()
        .await;
    out.push(outcome("CreateDBCluster", r, |o| {
        format!(
            "{:?}",
            o.db_cluster().and_then(|c| c.db_cluster_identifier())
        )
    }));
    let create = || {
        db.create_db_cluster_snapshot()
            .db_cluster_identifier("orders")
            .db_cluster_snapshot_identifier("snap")
            .send()
    };
    out.push(outcome("CreateDBClusterSnapshot", create().await, |o| {
        let s = o.db_cluster_snapshot().unwrap();
        format!(
            "{:?} {:?} {:?}",
            s.db_cluster_snapshot_identifier(),
            s.db_cluster_identifier(),
            s.snapshot_type()
        )
    }));
    out.push(outcome(
        "CreateDBClusterSnapshot again",
        create().await,
        |_| String::new(),
    ));
    let r = db
        .create_db_cluster_snapshot()
        .db_cluster_identifier("ghost")
        .db_cluster_snapshot_identifier("s2")
        .send()
        .await;
    out.push(outcome(
        "CreateDBClusterSnapshot of a missing cluster",
        r,
        |_| String::new(),
    ));
    let r = db
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier("snap")
        .target_db_cluster_snapshot_identifier("snap-copy")
        .send()
        .await;
    out.push(outcome("CopyDBClusterSnapshot", r, |o| {
        format!(
            "{:?}",
            o.db_cluster_snapshot()
                .and_then(|s| s.db_cluster_snapshot_identifier())
        )
    }));
    let r = db
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier("snap")
        .target_db_cluster_snapshot_identifier("snap-copy")
        .send()
        .await;
    out.push(outcome("CopyDBClusterSnapshot again", r, |_| String::new()));
    let r = db
        .copy_db_cluster_snapshot()
        .source_db_cluster_snapshot_identifier("ghost")
        .target_db_cluster_snapshot_identifier("c2")
        .send()
        .await;
    out.push(outcome(
        "CopyDBClusterSnapshot of a missing source",
        r,
        |_| String::new(),
    ));
    let r = db
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("snap")
        .attribute_name("restore")
        .values_to_add(OTHER_ACCOUNT)
        .send()
        .await;
    out.push(outcome("ModifyDBClusterSnapshotAttribute", r, |o| {
        let a = &o
            .db_cluster_snapshot_attributes_result()
            .unwrap()
            .db_cluster_snapshot_attributes()[0];
        format!("{:?} {:?}", a.attribute_name(), a.attribute_values())
    }));
    let r = db
        .describe_db_cluster_snapshot_attributes()
        .db_cluster_snapshot_identifier("snap")
        .send()
        .await;
    out.push(outcome("DescribeDBClusterSnapshotAttributes", r, |o| {
        let a = &o
            .db_cluster_snapshot_attributes_result()
            .unwrap()
            .db_cluster_snapshot_attributes()[0];
        format!("{:?}", a.attribute_values())
    }));
    let r = db
        .describe_db_cluster_snapshots()
        .db_cluster_identifier("orders")
        .send()
        .await;
    out.push(outcome("DescribeDBClusterSnapshots", r, |o| {
        let mut ids: Vec<_> = o
            .db_cluster_snapshots()
            .iter()
            .filter_map(|s| s.db_cluster_snapshot_identifier())
            .collect();
        ids.sort();
        format!("{ids:?}")
    }));
    let r = db
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("ghost")
        .send()
        .await;
    out.push(outcome("DescribeDBClusterSnapshots missing", r, |_| {
        String::new()
    }));
    let delete = || {
        db.delete_db_cluster_snapshot()
            .db_cluster_snapshot_identifier("snap-copy")
            .send()
    };
    out.push(outcome("DeleteDBClusterSnapshot", delete().await, |o| {
        format!(
            "{:?}",
            o.db_cluster_snapshot()
                .and_then(|s| s.db_cluster_snapshot_identifier())
        )
    }));
    out.push(outcome(
        "DeleteDBClusterSnapshot again",
        delete().await,
        |_| String::new(),
    ));
    out
}

async fn elasticache_flow(url: &str) -> Vec<String> {
    let ec = aws_sdk_elasticache::Client::new(
        &config_for(url, "us-east-1", KEY, RetryConfig::disabled()).await,
    );
    let mut out = Vec::new();
    let r = ec
        .create_replication_group()
        .replication_group_id("sessions")
        .replication_group_description("sessions")
        .engine("redis")
        .cache_node_type("cache.t4g.micro")
        .num_cache_clusters(1)
        .send()
        .await;
    out.push(outcome("CreateReplicationGroup", r, |o| {
        format!(
            "{:?}",
            o.replication_group().and_then(|g| g.replication_group_id())
        )
    }));
    let create = || {
        ec.create_snapshot()
            .replication_group_id("sessions")
            .snapshot_name("snap")
            .send()
    };
    out.push(outcome("CreateSnapshot", create().await, |o| {
        let s = o.snapshot().unwrap();
        format!(
            "{:?} {:?} {:?}",
            s.snapshot_name(),
            s.replication_group_id(),
            s.snapshot_source()
        )
    }));
    out.push(outcome("CreateSnapshot again", create().await, |_| {
        String::new()
    }));
    let r = ec.describe_snapshots().snapshot_name("snap").send().await;
    out.push(outcome("DescribeSnapshots", r, |o| {
        format!(
            "{} {:?}",
            o.snapshots().len(),
            o.snapshots()[0].snapshot_name()
        )
    }));
    let r = ec.describe_snapshots().snapshot_name("ghost").send().await;
    out.push(outcome("DescribeSnapshots missing", r, |_| String::new()));
    let delete = || ec.delete_snapshot().snapshot_name("snap").send();
    out.push(outcome("DeleteSnapshot", delete().await, |o| {
        format!("{:?}", o.snapshot().and_then(|s| s.snapshot_name()))
    }));
    out.push(outcome("DeleteSnapshot again", delete().await, |_| {
        String::new()
    }));
    out
}

/// DocumentDB's identifiers in mixed case: both store them lowercased and find them in
/// any case. (moto's ElastiCache and Redshift keep identifiers as given, where AWS's
/// models say ElastiCache stores them lowercased and Redshift lowercases cluster
/// identifiers, so those are not compared; neither does moto check tag characters,
/// which AWS's models restrict, nor does it have Redshift's AuthorizeSnapshotAccess,
/// so the AccountAlias listing of AWS Support is the emulator's alone.)
async fn docdb_case_flow(url: &str, engine: &str) -> Vec<String> {
    let db = aws_sdk_docdb::Client::new(
        &config_for(url, "us-east-1", KEY, RetryConfig::disabled()).await,
    );
    let mut out = Vec::new();
    let r = db
        .create_db_cluster()
        .db_cluster_identifier("Mixed-Case")
        .engine(engine)
        .master_username("docdbadmin")
        .master_user_password("Secret123")
        .send()
        .await;
    out.push(outcome("CreateDBCluster Mixed-Case", r, |o| {
        format!(
            "{:?}",
            o.db_cluster().and_then(|c| c.db_cluster_identifier())
        )
    }));
    let r = db
        .describe_db_clusters()
        .db_cluster_identifier("MIXED-case")
        .send()
        .await;
    out.push(outcome("DescribeDBClusters MIXED-case", r, |o| {
        format!("{:?}", o.db_clusters()[0].db_cluster_identifier())
    }));
    let r = db
        .create_db_cluster_snapshot()
        .db_cluster_identifier("MIXED-CASE")
        .db_cluster_snapshot_identifier("My-Snap")
        .send()
        .await;
    out.push(outcome("CreateDBClusterSnapshot My-Snap", r, |o| {
        let s = o.db_cluster_snapshot().unwrap();
        format!(
            "{:?} {:?}",
            s.db_cluster_snapshot_identifier(),
            s.db_cluster_identifier()
        )
    }));
    let r = db
        .create_db_cluster_snapshot()
        .db_cluster_identifier("mixed-case")
        .db_cluster_snapshot_identifier("MY-SNAP")
        .send()
        .await;
    out.push(outcome("CreateDBClusterSnapshot MY-SNAP", r, |_| {
        String::new()
    }));
    let r = db
        .describe_db_cluster_snapshots()
        .db_cluster_snapshot_identifier("my-SNAP")
        .send()
        .await;
    out.push(outcome("DescribeDBClusterSnapshots my-SNAP", r, |o| {
        format!(
            "{:?}",
            o.db_cluster_snapshots()
                .iter()
                .map(|s| s.db_cluster_snapshot_identifier())
                .collect::<Vec<_>>()
        )
    }));
    let r = db
        .delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier("My-Snap")
        .send()
        .await;
    out.push(outcome("DeleteDBClusterSnapshot My-Snap", r, |o| {
        format!(
            "{:?}",
            o.db_cluster_snapshot()
                .and_then(|s| s.db_cluster_snapshot_identifier())
        )
    }));
    out
}

/// A DocumentDB snapshot shared by account B with account A (KEY's): A lists it with
/// SnapshotType shared, with B's ARN, and cannot delete it. The emulator takes the
/// account from the access key; moto from its `x-moto-account-id` header, which the
/// emulator ignores, so B's calls carry both. (moto ignores IncludeShared without
/// SnapshotType, where the emulator follows AWS's docs and adds shared snapshots to
/// the listing, so that form is not compared.)
async fn docdb_shared_flow(url: &str, engine: &str) -> Vec<String> {
    let a = aws_sdk_docdb::Client::new(
        &config_for(url, "us-east-1", KEY, RetryConfig::disabled()).await,
    );
    let b = aws_sdk_docdb::Client::new(
        &config_for(url, "us-east-1", OTHER_KEY, RetryConfig::disabled()).await,
    );
    let as_b = |r: &mut aws_sdk_docdb::config::http::HttpRequest| {
        r.headers_mut().insert("x-moto-account-id", OTHER_ACCOUNT);
    };
    let mut out = Vec::new();
    let r = b
        .create_db_cluster()
        .db_cluster_identifier("theirs")
        .engine(engine)
        .master_username("docdbadmin")
        .master_user_password("Secret123")
        .customize()
        .mutate_request(as_b)
        .send()
        .await;
    out.push(outcome("B CreateDBCluster", r, |_| String::new()));
    let r = b
        .create_db_cluster_snapshot()
        .db_cluster_identifier("theirs")
        .db_cluster_snapshot_identifier("their-snap")
        .customize()
        .mutate_request(as_b)
        .send()
        .await;
    out.push(outcome("B CreateDBClusterSnapshot", r, |o| {
        format!(
            "{:?}",
            o.db_cluster_snapshot()
                .and_then(|s| s.db_cluster_snapshot_arn())
        )
    }));
    let r = b
        .modify_db_cluster_snapshot_attribute()
        .db_cluster_snapshot_identifier("their-snap")
        .attribute_name("restore")
        .values_to_add("123456789012")
        .customize()
        .mutate_request(as_b)
        .send()
        .await;
    out.push(outcome("B ModifyDBClusterSnapshotAttribute", r, |_| {
        String::new()
    }));
    let r = a
        .describe_db_cluster_snapshots()
        .snapshot_type("shared")
        .send()
        .await;
    out.push(outcome("A DescribeDBClusterSnapshots shared", r, |o| {
        format!(
            "{:?}",
            o.db_cluster_snapshots()
                .iter()
                .map(|s| s.db_cluster_snapshot_arn())
                .collect::<Vec<_>>()
        )
    }));
    let r = a.describe_db_cluster_snapshots().send().await;
    out.push(outcome("A DescribeDBClusterSnapshots", r, |o| {
        let shared_in = o
            .db_cluster_snapshots()
            .iter()
            .filter(|s| {
                s.db_cluster_snapshot_arn()
                    .is_some_and(|a| a.contains(OTHER_ACCOUNT))
            })
            .count();
        format!("shared snapshots listed: {shared_in}")
    }));
    let r = a
        .delete_db_cluster_snapshot()
        .db_cluster_snapshot_identifier("their-snap")
        .send()
        .await;
    out.push(outcome("A DeleteDBClusterSnapshot their-snap", r, |_| {
        String::new()
    }));
    out
}

/// STS: AssumeRole and GetCallerIdentity with the temporary credentials. moto assumes
/// any role; the emulator is given the role (trusting the caller) first. For the
/// long-term key only the account is compared (moto names its user `moto`).
async fn sts_flow(url: &str) -> Vec<String> {
    let sts =
        aws_sdk_sts::Client::new(&config_for(url, "us-east-1", KEY, RetryConfig::disabled()).await);
    let mut out = Vec::new();
    let r = sts.get_caller_identity().send().await;
    out.push(outcome("GetCallerIdentity", r, |o| {
        format!("{:?}", o.account())
    }));
    let r = sts
        .assume_role()
        .role_arn(STS_ROLE)
        .role_session_name("crosscheck")
        .duration_seconds(900)
        .send()
        .await;
    let mut temporary = None;
    out.push(outcome("AssumeRole", r, |o| {
        let c = o.credentials().unwrap();
        temporary = Some(aws_credential_types::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "assumed",
        ));
        format!(
            "{} {} {:?}",
            &c.access_key_id()[..4],
            c.access_key_id().len(),
            o.assumed_role_user().map(|u| u.arn())
        )
    }));
    let Some(creds) = temporary else {
        return out;
    };
    let as_role = aws_sdk_sts::Client::new(
        &config_with(url, "us-east-1", creds, RetryConfig::disabled()).await,
    );
    let r = as_role.get_caller_identity().send().await;
    out.push(outcome("GetCallerIdentity as the role", r, |o| {
        format!("{:?} {:?}", o.account(), o.arn())
    }));
    out
}

const STS_ROLE: &str = "arn:aws:iam::210987654321:role/dbsnapshot-dr";

fn compare(service: &str, emulator: &[String], moto: &[String]) {
    let diffs: Vec<String> = emulator
        .iter()
        .zip(moto)
        .filter(|(e, m)| e != m)
        .map(|(e, m)| format!("  emulator: {e}\n  moto:     {m}"))
        .collect();
    println!("{service}: {} steps compared", emulator.len());
    for line in emulator {
        println!("  {line}");
    }
    assert_eq!(emulator.len(), moto.len());
    assert!(
        diffs.is_empty(),
        "{service}: the emulator and moto disagree:\n{}",
        diffs.join("\n")
    );
}

#[tokio::test]
async fn emulator_and_moto_agree_on_the_flows_moto_supports() {
    let moto = moto_server();
    // moto makes snapshots available at once; so does the emulator at 0 seconds.
    let emu = emulator(0.0).await;

    compare(
        "redshift",
        &redshift_flow(&emu.url).await,
        &redshift_flow(&moto.url).await,
    );
    // moto's DocumentDB API (its RDS backend) refuses engine docdb, and the emulator
    // (like AWS's DocumentDB API) refuses anything else: each gets the one it takes.
    compare(
        "docdb",
        &docdb_flow(&emu.url, "docdb").await,
        &docdb_flow(&moto.url, "aurora-postgresql").await,
    );
    compare(
        "docdb identifiers in mixed case",
        &docdb_case_flow(&emu.url, "docdb").await,
        &docdb_case_flow(&moto.url, "aurora-postgresql").await,
    );
    compare(
        "docdb shared from another account",
        &docdb_shared_flow(&emu.url, "docdb").await,
        &docdb_shared_flow(&moto.url, "aurora-postgresql").await,
    );
    compare(
        "elasticache",
        &elasticache_flow(&emu.url).await,
        &elasticache_flow(&moto.url).await,
    );
    let r = emu
        .admin_post(
            "roles",
            serde_json::json!({"roleArn": STS_ROLE, "trustedAccounts": ["123456789012"]}),
        )
        .await;
    assert!(r.status().is_success());
    compare("sts", &sts_flow(&emu.url).await, &sts_flow(&moto.url).await);
}
