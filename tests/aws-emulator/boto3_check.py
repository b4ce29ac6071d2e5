#!/usr/bin/env python3
"""Drives every emulated action with boto3, a client nobody here wrote.

    boto3_check.py http://127.0.0.1:PORT

Each check resets the emulator, runs one flow and compares what boto3 parsed with
what AWS documents (fields, fault codes, paging). A cross-region DocumentDB copy uses
boto3's own SourceRegion support, so the emulator's presigned-URL check is held
against botocore's signer. Prints one line per check and a closing
"N passed, N failed" line; exits 1 if any check failed.
"""

import json
import sys
import time
import traceback
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4566"
KEY, OTHER_KEY, SECRET = "AKIATEST123456789012", "AKIATEST210987654321", "testbed-secret-key"
OTHER_ACCOUNT = "210987654321"
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def client(service, region="us-east-1", key=KEY, config=NO_RETRY):
    return boto3.client(
        service,
        endpoint_url=URL,
        region_name=region,
        aws_access_key_id=key,
        aws_secret_access_key=SECRET,
        config=config,
    )


def admin(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{URL}/_emulator/{path}",
        data=data,
        method="GET" if body is None else "POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        text = r.read().decode()
        return json.loads(text) if text else None


def fails(code, fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return e
    raise AssertionError(f"expected {code}, but the call succeeded")


def wait_status(get, want, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if get() == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"status never became {want}")


def redshift_flow():
    rs = client("redshift")
    admin("settings", {"snapshotSeconds": 1})
    rs.create_cluster(ClusterIdentifier="analytics", NodeType="ra3.xlplus",
                      MasterUsername="admin", MasterUserPassword="Secret123")
    fails("ClusterAlreadyExists", rs.create_cluster, ClusterIdentifier="analytics",
          NodeType="ra3.xlplus", MasterUsername="admin", MasterUserPassword="Secret123")
    assert rs.describe_clusters(ClusterIdentifier="analytics")["Clusters"][0]["ClusterStatus"] == "available"
    fails("ClusterNotFound", rs.describe_clusters, ClusterIdentifier="ghost")

    s = rs.create_cluster_snapshot(SnapshotIdentifier="nightly", ClusterIdentifier="analytics",
                                   ManualSnapshotRetentionPeriod=7,
                                   Tags=[{"Key": "team", "Value": "data ünï @ +=:/"}])["Snapshot"]
    assert s["Status"] == "creating", s
    assert s["TotalBackupSizeInMegaBytes"] > 0 and "EstimatedSecondsToCompletion" in s
    assert s["SnapshotCreateTime"].tzinfo is not None
    fails("ClusterSnapshotAlreadyExists", rs.create_cluster_snapshot,
          SnapshotIdentifier="nightly", ClusterIdentifier="analytics")
    fails("InvalidParameterValue", rs.create_cluster_snapshot,
          SnapshotIdentifier="bad--id", ClusterIdentifier="analytics")
    fails("InvalidRetentionPeriodFault", rs.create_cluster_snapshot, SnapshotIdentifier="r",
          ClusterIdentifier="analytics", ManualSnapshotRetentionPeriod=3654)
    fails("ClusterNotFound", rs.create_cluster_snapshot, SnapshotIdentifier="x",
          ClusterIdentifier="ghost")
    fails("InvalidClusterSnapshotState", rs.delete_cluster_snapshot, SnapshotIdentifier="nightly")
    wait_status(lambda: rs.describe_cluster_snapshots(SnapshotIdentifier="nightly")
                ["Snapshots"][0]["Status"], "available")
    snap = rs.describe_cluster_snapshots(SnapshotIdentifier="nightly")["Snapshots"][0]
    assert snap["BackupProgressInMegaBytes"] == snap["TotalBackupSizeInMegaBytes"]
    assert snap["Tags"] == [{"Key": "team", "Value": "data ünï @ +=:/"}]

    m = rs.modify_cluster_snapshot(SnapshotIdentifier="nightly", ManualSnapshotRetentionPeriod=35)
    assert m["Snapshot"]["ManualSnapshotRetentionPeriod"] == 35
    fails("InvalidRetentionPeriodFault", rs.modify_cluster_snapshot,
          SnapshotIdentifier="nightly", ManualSnapshotRetentionPeriod=0)

    rs.authorize_snapshot_access(SnapshotIdentifier="nightly", AccountWithRestoreAccess=OTHER_ACCOUNT)
    fails("AuthorizationAlreadyExists", rs.authorize_snapshot_access,
          SnapshotIdentifier="nightly", AccountWithRestoreAccess=OTHER_ACCOUNT)
    for i in range(19):
        rs.authorize_snapshot_access(SnapshotIdentifier="nightly",
                                     AccountWithRestoreAccess=f"{100 + i:012d}")
    fails("AuthorizationQuotaExceeded", rs.authorize_snapshot_access,
          SnapshotIdentifier="nightly", AccountWithRestoreAccess="999999999999")
    other = client("redshift", key=OTHER_KEY)
    seen = other.describe_cluster_snapshots(OwnerAccount="123456789012")["Snapshots"]
    assert [x["SnapshotIdentifier"] for x in seen] == ["nightly"]
    fails("InvalidClusterSnapshotState", rs.delete_cluster_snapshot, SnapshotIdentifier="nightly")
    shared = rs.describe_cluster_snapshots(SnapshotIdentifier="nightly")["Snapshots"][0]
    for a in shared["AccountsWithRestoreAccess"]:
        rs.revoke_snapshot_access(SnapshotIdentifier="nightly", AccountWithRestoreAccess=a["AccountId"])
    fails("AuthorizationNotFound", rs.revoke_snapshot_access, SnapshotIdentifier="nightly",
          AccountWithRestoreAccess=OTHER_ACCOUNT)

    arn = "arn:aws:redshift:us-east-1:123456789012:snapshot:analytics/nightly"
    rs.create_tags(ResourceName=arn, Tags=[{"Key": "x", "Value": "ünï"}])
    rs.delete_tags(ResourceName=arn, TagKeys=["team"])
    tags = rs.describe_cluster_snapshots(SnapshotIdentifier="nightly")["Snapshots"][0]["Tags"]
    assert tags == [{"Key": "x", "Value": "ünï"}], tags
    fails("InvalidTagFault", rs.create_tags, ResourceName=arn,
          Tags=[{"Key": "k", "Value": "v" * 257}])
    fails("TagLimitExceededFault", rs.create_tags, ResourceName=arn,
          Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert len(rs.describe_cluster_snapshots(SnapshotArn=arn)["Snapshots"]) == 1
    fails("ResourceNotFoundFault", rs.create_tags,
          ResourceName="arn:aws:redshift:us-east-1:123456789012:snapshot:analytics/ghost",
          Tags=[{"Key": "a", "Value": "b"}])
    fails("ResourceNotFoundFault", rs.delete_tags,
          ResourceName="arn:aws:redshift:us-east-1:123456789012:cluster:ghost", TagKeys=["a"])

    # Copies: only available automated snapshots.
    fails("InvalidClusterSnapshotState", rs.copy_cluster_snapshot,
          SourceSnapshotIdentifier="nightly", TargetSnapshotIdentifier="c")
    auto = admin("redshift/automated-snapshot", {"clusterIdentifier": "analytics"})["snapshotIdentifier"]
    fails("InvalidClusterSnapshotState", rs.copy_cluster_snapshot,
          SourceSnapshotIdentifier=auto, TargetSnapshotIdentifier="c")
    wait_status(lambda: rs.describe_cluster_snapshots(SnapshotIdentifier=auto)
                ["Snapshots"][0]["Status"], "available")
    c = rs.copy_cluster_snapshot(SourceSnapshotIdentifier=auto, TargetSnapshotIdentifier="kept",
                                 ManualSnapshotRetentionPeriod=14)["Snapshot"]
    assert c["SnapshotType"] == "manual" and c["ManualSnapshotRetentionPeriod"] == 14
    fails("ClusterSnapshotAlreadyExists", rs.copy_cluster_snapshot,
          SourceSnapshotIdentifier=auto, TargetSnapshotIdentifier="kept")
    fails("ClusterSnapshotNotFound", rs.copy_cluster_snapshot,
          SourceSnapshotIdentifier="rs:ghost", TargetSnapshotIdentifier="k")

    d = rs.delete_cluster_snapshot(SnapshotIdentifier="nightly")["Snapshot"]
    assert d["Status"] == "deleted"
    fails("ClusterSnapshotNotFound", rs.delete_cluster_snapshot, SnapshotIdentifier="nightly")
    fails("ClusterSnapshotNotFound", rs.describe_cluster_snapshots, SnapshotIdentifier="nightly")
    fails("InvalidParameterCombination", rs.delete_cluster, ClusterIdentifier="analytics")
    rs.delete_cluster(ClusterIdentifier="analytics", SkipFinalClusterSnapshot=True)
    fails("ClusterNotFound", rs.delete_cluster, ClusterIdentifier="analytics",
          SkipFinalClusterSnapshot=True)


def redshift_paging():
    rs = client("redshift")
    admin("settings", {"snapshotSeconds": 0})
    rs.create_cluster(ClusterIdentifier="c", NodeType="dc2.large", MasterUsername="u",
                      MasterUserPassword="Secret123")
    for i in range(44):
        rs.create_cluster_snapshot(SnapshotIdentifier=f"s-{i:02d}", ClusterIdentifier="c",
                                   Tags=[{"Key": "even", "Value": str(i % 2 == 0).lower()}])
    pages = list(rs.get_paginator("describe_cluster_snapshots")
                 .paginate(PaginationConfig={"PageSize": 20}))
    assert [len(p["Snapshots"]) for p in pages] == [20, 20, 5], [len(p["Snapshots"]) for p in pages]
    ids = [s["SnapshotIdentifier"] for p in pages for s in p["Snapshots"]]
    assert len(set(ids)) == 45
    even = rs.describe_cluster_snapshots(TagKeys=["even"], TagValues=["true"])["Snapshots"]
    assert len(even) == 22
    assert len(rs.describe_cluster_snapshots(SnapshotType="automated")["Snapshots"]) == 1
    assert len(rs.describe_cluster_snapshots(ClusterIdentifier="c", SnapshotType="manual")["Snapshots"]) == 44
    fails("InvalidParameterValue", rs.describe_cluster_snapshots, MaxRecords=19)
    for i in range(21):
        rs.create_cluster(ClusterIdentifier=f"p{i:02d}", NodeType="dc2.large", MasterUsername="u",
                          MasterUserPassword="Secret123")
    pages = list(rs.get_paginator("describe_clusters").paginate(PaginationConfig={"PageSize": 20}))
    assert [len(p["Clusters"]) for p in pages] == [20, 2]


def docdb_flow():
    db = client("docdb")
    admin("settings", {"snapshotSeconds": 1})
    db.create_db_cluster(DBClusterIdentifier="orders", Engine="docdb",
                         MasterUsername="docdbadmin", MasterUserPassword="Secret123")
    fails("DBClusterAlreadyExistsFault", db.create_db_cluster, DBClusterIdentifier="orders",
          Engine="docdb", MasterUsername="u", MasterUserPassword="Secret123")
    assert db.describe_db_clusters(DBClusterIdentifier="orders")["DBClusters"][0]["Engine"] == "docdb"
    fails("DBClusterNotFoundFault", db.describe_db_clusters, DBClusterIdentifier="ghost")
    fails("InvalidParameterValue", db.create_db_cluster, DBClusterIdentifier="pg",
          Engine="aurora-postgresql", MasterUsername="u", MasterUserPassword="Secret123")
    s = db.create_db_cluster_snapshot(DBClusterIdentifier="orders",
                                      DBClusterSnapshotIdentifier="nightly",
                                      Tags=[{"Key": "team", "Value": "orders"}])["DBClusterSnapshot"]
    assert s["Status"] == "creating" and s["PercentProgress"] < 100
    fails("DBClusterSnapshotAlreadyExistsFault", db.create_db_cluster_snapshot,
          DBClusterIdentifier="orders", DBClusterSnapshotIdentifier="nightly")
    fails("DBClusterNotFoundFault", db.create_db_cluster_snapshot,
          DBClusterIdentifier="ghost", DBClusterSnapshotIdentifier="x")
    fails("InvalidParameterValue", db.create_db_cluster_snapshot,
          DBClusterIdentifier="orders", DBClusterSnapshotIdentifier="a" * 64)
    fails("InvalidDBClusterSnapshotStateFault", db.delete_db_cluster_snapshot,
          DBClusterSnapshotIdentifier="nightly")
    wait_status(lambda: db.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="nightly")
                ["DBClusterSnapshots"][0]["Status"], "available")

    r = db.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="nightly",
                                                AttributeName="restore",
                                                ValuesToAdd=[OTHER_ACCOUNT, "111111111111"])
    vals = r["DBClusterSnapshotAttributesResult"]["DBClusterSnapshotAttributes"][0]["AttributeValues"]
    assert vals == [OTHER_ACCOUNT, "111111111111"], vals
    fails("InvalidParameterValue", db.modify_db_cluster_snapshot_attribute,
          DBClusterSnapshotIdentifier="nightly", AttributeName="copy", ValuesToAdd=[OTHER_ACCOUNT])
    fails("SharedSnapshotQuotaExceeded", db.modify_db_cluster_snapshot_attribute,
          DBClusterSnapshotIdentifier="nightly", AttributeName="restore",
          ValuesToAdd=[f"{500 + i:012d}" for i in range(20)])
    db.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="nightly",
                                            AttributeName="restore", ValuesToRemove=["111111111111"])
    d = db.describe_db_cluster_snapshot_attributes(DBClusterSnapshotIdentifier="nightly")
    assert d["DBClusterSnapshotAttributesResult"]["DBClusterSnapshotAttributes"][0]["AttributeValues"] == [OTHER_ACCOUNT]
    fails("DBClusterSnapshotNotFoundFault", db.describe_db_cluster_snapshot_attributes,
          DBClusterSnapshotIdentifier="ghost")
    other = client("docdb", key=OTHER_KEY)
    arn = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:nightly"
    assert len(other.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=arn,
                                                   IncludeShared=True)["DBClusterSnapshots"]) == 1

    db.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "k", "Value": "ünï 漢字"}])
    db.remove_tags_from_resource(ResourceName=arn, TagKeys=["team"])
    assert db.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "k", "Value": "ünï 漢字"}]
    fails("TagQuotaPerResourceExceeded", db.add_tags_to_resource, ResourceName=arn,
          Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    fails("DBSnapshotNotFound", db.list_tags_for_resource,
          ResourceName="arn:aws:rds:us-east-1:123456789012:cluster-snapshot:ghost")

    # Same-region copy with tags; deleting it while copying cancels it.
    admin("settings", {"snapshotSeconds": 30})
    c = db.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier="nightly",
                                    TargetDBClusterSnapshotIdentifier="copy", CopyTags=True,
                                    Tags=[{"Key": "c", "Value": "1"}])["DBClusterSnapshot"]
    assert c["Status"] == "copying" and c["SourceDBClusterSnapshotArn"] == arn
    fails("DBClusterSnapshotAlreadyExistsFault", db.copy_db_cluster_snapshot,
          SourceDBClusterSnapshotIdentifier="nightly", TargetDBClusterSnapshotIdentifier="copy")
    fails("InvalidDBClusterSnapshotStateFault", db.copy_db_cluster_snapshot,
          SourceDBClusterSnapshotIdentifier="copy", TargetDBClusterSnapshotIdentifier="c2")
    db.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="copy")
    fails("DBClusterSnapshotNotFoundFault", db.describe_db_cluster_snapshots,
          DBClusterSnapshotIdentifier="copy")
    fails("DBClusterSnapshotNotFoundFault", db.copy_db_cluster_snapshot,
          SourceDBClusterSnapshotIdentifier="ghost", TargetDBClusterSnapshotIdentifier="c3")
    admin("settings", {"snapshotSeconds": 0})

    # Cross-region: boto3 presigns the source-region request itself (SourceRegion).
    west = client("docdb", region="us-west-2")
    west.create_db_cluster(DBClusterIdentifier="w", Engine="docdb", MasterUsername="u",
                           MasterUserPassword="Secret123")
    west.create_db_cluster_snapshot(DBClusterIdentifier="w", DBClusterSnapshotIdentifier="wsnap")
    warn = "arn:aws:rds:us-west-2:123456789012:cluster-snapshot:wsnap"
    fails("InvalidParameterValue", db.copy_db_cluster_snapshot,
          SourceDBClusterSnapshotIdentifier=warn, TargetDBClusterSnapshotIdentifier="east")
    fails("InvalidParameterValue", db.copy_db_cluster_snapshot,
          SourceDBClusterSnapshotIdentifier=warn, TargetDBClusterSnapshotIdentifier="east",
          PreSignedUrl=URL + "/?Action=CopyDBClusterSnapshot&X-Amz-Signature=00")
    x = db.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=warn,
                                    TargetDBClusterSnapshotIdentifier="east",
                                    SourceRegion="us-west-2")["DBClusterSnapshot"]
    assert x["SourceDBClusterSnapshotArn"] == warn, x
    assert x["DBClusterSnapshotArn"].startswith("arn:aws:rds:us-east-1:"), x
    db.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="east")


def docdb_paging():
    db = client("docdb")
    admin("settings", {"snapshotSeconds": 0})
    for cl in ("a", "b"):
        db.create_db_cluster(DBClusterIdentifier=cl, Engine="docdb", MasterUsername="u",
                             MasterUserPassword="Secret123")
    for i in range(25):
        db.create_db_cluster_snapshot(DBClusterIdentifier="a" if i < 5 else "b",
                                      DBClusterSnapshotIdentifier=f"s-{i:02d}")
    pages = list(db.get_paginator("describe_db_cluster_snapshots")
                 .paginate(PaginationConfig={"PageSize": 20}))
    # 25 manual snapshots and each new cluster's first automated one.
    assert [len(p["DBClusterSnapshots"]) for p in pages] == [20, 7]
    f = db.describe_db_cluster_snapshots(Filters=[{"Name": "db-cluster-id", "Values": ["a"]}])
    assert len(f["DBClusterSnapshots"]) == 6
    auto = db.describe_db_cluster_snapshots(SnapshotType="automated")["DBClusterSnapshots"]
    assert sorted(s["DBClusterIdentifier"] for s in auto) == ["a", "b"]
    fails("InvalidDBClusterSnapshotStateFault", db.delete_db_cluster_snapshot,
          DBClusterSnapshotIdentifier=auto[0]["DBClusterSnapshotIdentifier"])
    fails("InvalidParameterValue", db.describe_db_cluster_snapshots,
          Filters=[{"Name": "colour", "Values": ["x"]}])
    fails("InvalidParameterValue", db.describe_db_cluster_snapshots, MaxRecords=10)


def elasticache_flow():
    ec = client("elasticache")
    admin("settings", {"snapshotSeconds": 1})
    ec.create_replication_group(ReplicationGroupId="sessions", ReplicationGroupDescription="d",
                                Engine="valkey", NumCacheClusters=2)
    fails("ReplicationGroupAlreadyExists", ec.create_replication_group,
          ReplicationGroupId="sessions", ReplicationGroupDescription="d")
    ec.create_cache_cluster(CacheClusterId="solo", Engine="redis", NumCacheNodes=1)
    fails("CacheClusterAlreadyExists", ec.create_cache_cluster, CacheClusterId="solo")
    fails("ReplicationGroupNotFoundFault", ec.create_cache_cluster, CacheClusterId="m",
          ReplicationGroupId="ghost")
    s = ec.create_snapshot(ReplicationGroupId="sessions", SnapshotName="manual",
                           Tags=[{"Key": "t", "Value": "1"}])["Snapshot"]
    assert s["SnapshotStatus"] == "creating" and s["SnapshotSource"] == "manual", s
    ec.create_snapshot(CacheClusterId="solo", SnapshotName="solo-snap")
    fails("SnapshotAlreadyExistsFault", ec.create_snapshot, ReplicationGroupId="sessions",
          SnapshotName="manual")
    fails("InvalidParameterCombination", ec.create_snapshot, ReplicationGroupId="sessions",
          CacheClusterId="solo", SnapshotName="both")
    fails("ReplicationGroupNotFoundFault", ec.create_snapshot, ReplicationGroupId="ghost",
          SnapshotName="g")
    fails("CacheClusterNotFound", ec.create_snapshot, CacheClusterId="ghost", SnapshotName="g")
    fails("InvalidParameterCombination", ec.create_snapshot, SnapshotName="neither")
    ec.create_cache_cluster(CacheClusterId="memc", Engine="memcached", NumCacheNodes=1)
    fails("SnapshotFeatureNotSupportedFault", ec.create_snapshot, CacheClusterId="memc",
          SnapshotName="m")
    fails("InvalidSnapshotState", ec.delete_snapshot, SnapshotName="manual")
    fails("InvalidSnapshotState", ec.copy_snapshot, SourceSnapshotName="manual",
          TargetSnapshotName="c")
    wait_status(lambda: ec.describe_snapshots(SnapshotName="manual")["Snapshots"][0]["SnapshotStatus"],
                "available")
    c = ec.copy_snapshot(SourceSnapshotName="manual", TargetSnapshotName="manual-copy",
                         Tags=[{"Key": "copy", "Value": "y"}])["Snapshot"]
    assert c["SnapshotName"] == "manual-copy"
    fails("SnapshotAlreadyExistsFault", ec.copy_snapshot, SourceSnapshotName="manual",
          TargetSnapshotName="manual-copy")
    fails("SnapshotNotFoundFault", ec.copy_snapshot, SourceSnapshotName="ghost",
          TargetSnapshotName="x")
    wait_status(lambda: ec.describe_snapshots(SnapshotName="manual-copy")["Snapshots"][0]["SnapshotStatus"],
                "available")
    e = ec.copy_snapshot(SourceSnapshotName="manual-copy", TargetSnapshotName="exp",
                         TargetBucket="my-exports")["Snapshot"]
    assert e["SnapshotStatus"] == "exporting", e
    exports = admin("exports")
    assert exports[-1]["bucket"] == "my-exports" and exports[-1]["key"] == "exp-0001.rdb", exports
    admin("faults", {"deniedBuckets": ["locked"]})
    wait_status(lambda: ec.describe_snapshots(SnapshotName="manual-copy")["Snapshots"][0]["SnapshotStatus"],
                "available")
    err = fails("InvalidParameterValue", ec.copy_snapshot, SourceSnapshotName="manual-copy",
                TargetSnapshotName="exp2", TargetBucket="locked")
    assert "granted" in str(err)
    admin("faults", {"deniedBuckets": []})

    arn = "arn:aws:elasticache:us-east-1:123456789012:snapshot:manual"
    assert len(ec.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "b", "Value": "2"}])["TagList"]) == 2
    assert ec.remove_tags_from_resource(ResourceName=arn, TagKeys=["t"])["TagList"] == [{"Key": "b", "Value": "2"}]
    assert ec.list_tags_for_resource(ResourceName=arn)["TagList"] == [{"Key": "b", "Value": "2"}]
    fails("TagNotFound", ec.remove_tags_from_resource, ResourceName=arn, TagKeys=["t"])
    fails("TagQuotaPerResourceExceeded", ec.add_tags_to_resource, ResourceName=arn,
          Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    fails("InvalidARN", ec.list_tags_for_resource, ResourceName="nonsense")
    fails("SnapshotNotFoundFault", ec.list_tags_for_resource,
          ResourceName="arn:aws:elasticache:us-east-1:123456789012:snapshot:ghost")
    assert ec.delete_snapshot(SnapshotName="solo-snap")["Snapshot"]["SnapshotStatus"] == "deleting"
    fails("SnapshotNotFoundFault", ec.delete_snapshot, SnapshotName="solo-snap")
    fails("SnapshotNotFoundFault", ec.describe_snapshots, SnapshotName="solo-snap")


def elasticache_paging():
    ec = client("elasticache")
    admin("settings", {"snapshotSeconds": 0})
    ec.create_replication_group(ReplicationGroupId="g", ReplicationGroupDescription="d")
    for i in range(55):
        ec.create_snapshot(ReplicationGroupId="g", SnapshotName=f"s-{i:02d}")
    pages = list(ec.get_paginator("describe_snapshots").paginate(PaginationConfig={"PageSize": 50}))
    assert [len(p["Snapshots"]) for p in pages] == [50, 5]
    assert len(ec.describe_snapshots(ReplicationGroupId="g", MaxRecords=50)["Snapshots"]) == 50
    assert ec.describe_snapshots(SnapshotSource="system")["Snapshots"] == []
    fails("InvalidParameterValue", ec.describe_snapshots, MaxRecords=51)
    fails("CacheClusterNotFound", ec.describe_snapshots, CacheClusterId="ghost")


def faults():
    rs, db, ec = client("redshift"), client("docdb"), client("elasticache")
    admin("faults", {"throttleFraction": 1.0})
    fails("Throttling", rs.describe_clusters)
    fails("Throttling", db.describe_db_clusters)
    fails("Throttling", ec.describe_snapshots)
    admin("faults", {"throttleFraction": 0.0, "errorFraction": 1.0})
    e = fails("InternalFailure", rs.describe_clusters)
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    admin("faults", {"errorFraction": 0.0, "accountRps": 2})
    codes = []
    for _ in range(6):
        try:
            rs.describe_clusters()
            codes.append("ok")
        except ClientError as err:
            codes.append(err.response["Error"]["Code"])
    assert "Throttling" in codes and codes[0] == "ok", codes
    # botocore's own retry logic recognises the injected faults as retryable (the
    # emulator's random numbers restart from its seed at reset, so this is repeatable).
    admin("faults", {"accountRps": 0, "throttleFraction": 0.3})
    retrying = client("redshift", config=Config(retries={"max_attempts": 15, "mode": "standard"}))
    for _ in range(4):
        retrying.describe_clusters()
    counts = admin("calls")
    assert counts["throttled"] > 0 and counts["overBudget"] > 0, counts
    admin("faults", {"throttleFraction": 0.0, "latencyMs": 200})
    t = time.time()
    rs.describe_clusters()
    assert time.time() - t >= 0.2
    admin("faults", {"latencyMs": 0})


def identifier_case():
    """DocumentDB and ElastiCache store identifiers lowercased and find them in any
    case; Redshift lowercases cluster identifiers and keeps snapshot identifiers."""
    admin("settings", {"snapshotSeconds": 0})
    db = client("docdb")
    c = db.create_db_cluster(DBClusterIdentifier="Orders", Engine="docdb", MasterUsername="u",
                             MasterUserPassword="Secret123")["DBCluster"]
    assert c["DBClusterIdentifier"] == "orders", c
    s = db.create_db_cluster_snapshot(DBClusterIdentifier="ORDERS",
                                      DBClusterSnapshotIdentifier="My-Snap")["DBClusterSnapshot"]
    assert s["DBClusterSnapshotIdentifier"] == "my-snap", s
    assert s["DBClusterSnapshotArn"].endswith(":cluster-snapshot:my-snap"), s
    fails("DBClusterSnapshotAlreadyExistsFault", db.create_db_cluster_snapshot,
          DBClusterIdentifier="orders", DBClusterSnapshotIdentifier="MY-SNAP")
    d = db.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="mY-sNaP")["DBClusterSnapshots"]
    assert [x["DBClusterSnapshotIdentifier"] for x in d] == ["my-snap"], d
    assert db.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="My-Snap")[
        "DBClusterSnapshot"]["DBClusterSnapshotIdentifier"] == "my-snap"

    ec = client("elasticache")
    g = ec.create_replication_group(ReplicationGroupId="Sessions",
                                    ReplicationGroupDescription="d")["ReplicationGroup"]
    assert g["ReplicationGroupId"] == "sessions", g
    e = ec.create_snapshot(ReplicationGroupId="SESSIONS", SnapshotName="Nightly")["Snapshot"]
    assert e["SnapshotName"] == "nightly" and e["ReplicationGroupId"] == "sessions", e
    fails("SnapshotAlreadyExistsFault", ec.create_snapshot, ReplicationGroupId="sessions",
          SnapshotName="NIGHTLY")
    assert ec.describe_snapshots(SnapshotName="NightLY")["Snapshots"][0]["SnapshotName"] == "nightly"
    assert ec.copy_snapshot(SourceSnapshotName="NIGHTLY", TargetSnapshotName="Kept")[
        "Snapshot"]["SnapshotName"] == "kept"
    assert ec.delete_snapshot(SnapshotName="KEPT")["Snapshot"]["SnapshotName"] == "kept"

    rs = client("redshift")
    r = rs.create_cluster(ClusterIdentifier="Analytics", NodeType="ra3.xlplus",
                          MasterUsername="admin", MasterUserPassword="Secret123")["Cluster"]
    assert r["ClusterIdentifier"] == "analytics", r
    fails("ClusterNotFound", rs.describe_clusters, ClusterIdentifier="Analytics")
    n = rs.create_cluster_snapshot(SnapshotIdentifier="Nightly", ClusterIdentifier="analytics")
    assert n["Snapshot"]["SnapshotIdentifier"] == "Nightly"
    fails("ClusterSnapshotNotFound", rs.describe_cluster_snapshots, SnapshotIdentifier="nightly")


def tag_character_sets():
    """Each service refuses tags outside its set with its model's code, on every action
    that takes tags, and nothing changes."""
    admin("settings", {"snapshotSeconds": 0})
    rs, db, ec = client("redshift"), client("docdb"), client("elasticache")
    rs.create_cluster(ClusterIdentifier="c", NodeType="ra3.xlplus", MasterUsername="u",
                      MasterUserPassword="Secret123")
    rs.create_cluster_snapshot(SnapshotIdentifier="s", ClusterIdentifier="c")
    rs_arn = "arn:aws:redshift:us-east-1:123456789012:snapshot:c/s"
    db.create_db_cluster(DBClusterIdentifier="d", Engine="docdb", MasterUsername="u",
                         MasterUserPassword="Secret123")
    db.create_db_cluster_snapshot(DBClusterIdentifier="d", DBClusterSnapshotIdentifier="s")
    db_arn = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:s"
    ec.create_replication_group(ReplicationGroupId="g", ReplicationGroupDescription="d")
    ec.create_snapshot(ReplicationGroupId="g", SnapshotName="s")
    ec_arn = "arn:aws:elasticache:us-east-1:123456789012:snapshot:s"
    common_bad = [("k", "<x>"), ("k", "a&b"), ("k", "\U0001F642"), ("k", "tab\t"), ("aws:k", "v"),
                  ("AWS:k", "v")]
    for k, v in common_bad:
        tags = [{"Key": k, "Value": v}]
        fails("InvalidTagFault", rs.create_tags, ResourceName=rs_arn, Tags=tags)
        fails("InvalidTagFault", rs.create_cluster_snapshot, SnapshotIdentifier="t",
              ClusterIdentifier="c", Tags=tags)
        fails("InvalidParameterValue", ec.add_tags_to_resource, ResourceName=ec_arn, Tags=tags)
        fails("InvalidParameterValue", ec.create_snapshot, ReplicationGroupId="g",
              SnapshotName="t", Tags=tags)
        fails("InvalidParameterValue", ec.copy_snapshot, SourceSnapshotName="s",
              TargetSnapshotName="t", Tags=tags)
    for k, v in common_bad + [("k", "a@b"), ("rds:k", "v"), ("k", "rds:v"), ("k", "aws:v")]:
        tags = [{"Key": k, "Value": v}]
        fails("InvalidParameterValue", db.add_tags_to_resource, ResourceName=db_arn, Tags=tags)
        fails("InvalidParameterValue", db.create_db_cluster_snapshot, DBClusterIdentifier="d",
              DBClusterSnapshotIdentifier="t", Tags=tags)
        fails("InvalidParameterValue", db.copy_db_cluster_snapshot,
              SourceDBClusterSnapshotIdentifier="s", TargetDBClusterSnapshotIdentifier="t",
              Tags=tags)
    assert rs.describe_cluster_snapshots(SnapshotIdentifier="s")["Snapshots"][0]["Tags"] == []
    assert db.list_tags_for_resource(ResourceName=db_arn)["TagList"] == []
    assert ec.list_tags_for_resource(ResourceName=ec_arn)["TagList"] == []
    fails("ClusterSnapshotNotFound", rs.describe_cluster_snapshots, SnapshotIdentifier="t")
    fails("DBClusterSnapshotNotFoundFault", db.describe_db_cluster_snapshots,
          DBClusterSnapshotIdentifier="t")
    fails("SnapshotNotFoundFault", ec.describe_snapshots, SnapshotName="t")
    # What the sets allow goes through.
    ok = "ünï 漢字 ٣ _.:/=+-"
    rs.create_tags(ResourceName=rs_arn, Tags=[{"Key": "k@x", "Value": ok + "@"}])
    ec.add_tags_to_resource(ResourceName=ec_arn, Tags=[{"Key": "k@x", "Value": ok + "@"}])
    db.add_tags_to_resource(ResourceName=db_arn, Tags=[{"Key": "k:x", "Value": ok}])
    assert db.list_tags_for_resource(ResourceName=db_arn)["TagList"] == [{"Key": "k:x", "Value": ok}]


def cross_account_shares():
    """Account B shares with A: Redshift shows A the snapshot with OwnerAccount B and
    without B's account list; DocumentDB lists it for SnapshotType shared or
    IncludeShared; A can change neither. AWS Support is listed by AccountAlias."""
    admin("settings", {"snapshotSeconds": 0})
    a, b = client("redshift"), client("redshift", key=OTHER_KEY)
    b.create_cluster(ClusterIdentifier="w", NodeType="ra3.xlplus", MasterUsername="u",
                     MasterUserPassword="Secret123")
    b.create_cluster_snapshot(SnapshotIdentifier="b-snap", ClusterIdentifier="w")
    b.authorize_snapshot_access(SnapshotIdentifier="b-snap", AccountWithRestoreAccess="123456789012")
    b.authorize_snapshot_access(SnapshotIdentifier="b-snap",
                                AccountWithRestoreAccess="amazon-redshift-support")
    mine = b.describe_cluster_snapshots(SnapshotIdentifier="b-snap")["Snapshots"][0]
    assert mine["AccountsWithRestoreAccess"] == [{"AccountId": "123456789012"},
                                                 {"AccountAlias": "amazon-redshift-support"}], mine
    seen = [x for x in a.describe_cluster_snapshots()["Snapshots"] if x["SnapshotType"] == "manual"]
    assert len(seen) == 1 and seen[0]["OwnerAccount"] == OTHER_ACCOUNT, seen
    assert "AccountsWithRestoreAccess" not in seen[0], seen
    assert seen[0]["SnapshotArn"] == "arn:aws:redshift:us-east-1:210987654321:snapshot:w/b-snap"
    fails("ClusterSnapshotNotFound", a.delete_cluster_snapshot, SnapshotIdentifier="b-snap")
    fails("ClusterSnapshotNotFound", a.modify_cluster_snapshot, SnapshotIdentifier="b-snap",
          ManualSnapshotRetentionPeriod=1)
    fails("ResourceNotFoundFault", a.create_tags, ResourceName=seen[0]["SnapshotArn"],
          Tags=[{"Key": "k", "Value": "v"}])
    b.revoke_snapshot_access(SnapshotIdentifier="b-snap",
                             AccountWithRestoreAccess="amazon-redshift-support")

    da, dbb = client("docdb"), client("docdb", key=OTHER_KEY)
    dbb.create_db_cluster(DBClusterIdentifier="w", Engine="docdb", MasterUsername="u",
                          MasterUserPassword="Secret123")
    dbb.create_db_cluster_snapshot(DBClusterIdentifier="w", DBClusterSnapshotIdentifier="b-snap")
    dbb.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="b-snap",
                                             AttributeName="restore", ValuesToAdd=["123456789012"])
    arn = "arn:aws:rds:us-east-1:210987654321:cluster-snapshot:b-snap"
    shared = da.describe_db_cluster_snapshots(SnapshotType="shared")["DBClusterSnapshots"]
    assert [x["DBClusterSnapshotArn"] for x in shared] == [arn], shared
    included = da.describe_db_cluster_snapshots(IncludeShared=True)["DBClusterSnapshots"]
    assert [x["DBClusterSnapshotArn"] for x in included] == [arn], included
    assert da.describe_db_cluster_snapshots()["DBClusterSnapshots"] == []
    assert da.describe_db_cluster_snapshots(SnapshotType="manual",
                                            IncludeShared=True)["DBClusterSnapshots"] == []
    fails("DBClusterSnapshotNotFoundFault", da.delete_db_cluster_snapshot,
          DBClusterSnapshotIdentifier=arn)
    fails("DBClusterSnapshotNotFoundFault", da.modify_db_cluster_snapshot_attribute,
          DBClusterSnapshotIdentifier=arn, AttributeName="restore", ValuesToAdd=["111111111111"])
    c = da.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=arn,
                                    TargetDBClusterSnapshotIdentifier="mine")["DBClusterSnapshot"]
    assert c["DBClusterSnapshotArn"] == "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:mine"


def export_and_action_faults():
    """failExports: the export is accepted, then fails; failActions: AccessDenied (403)
    without effect."""
    ec, rs = client("elasticache"), client("redshift")
    admin("settings", {"snapshotSeconds": 0})
    ec.create_replication_group(ReplicationGroupId="g", ReplicationGroupDescription="d")
    ec.create_snapshot(ReplicationGroupId="g", SnapshotName="doomed")
    admin("faults", {"failExports": ["doomed"]})
    admin("settings", {"snapshotSeconds": 1})
    e = ec.copy_snapshot(SourceSnapshotName="doomed", TargetSnapshotName="out",
                         TargetBucket="my-exports")["Snapshot"]
    assert e["SnapshotStatus"] == "exporting", e
    assert admin("exports")[0]["status"] == "exporting"
    wait_status(lambda: ec.describe_snapshots(SnapshotName="doomed")["Snapshots"][0]["SnapshotStatus"],
                "available")
    x = admin("exports")[0]
    assert x["status"] == "failed" and "WRITE permissions my-exports" in x["failureMessage"], x
    admin("faults", {"failExports": []})
    ec.copy_snapshot(SourceSnapshotName="doomed", TargetSnapshotName="out",
                     TargetBucket="my-exports")
    wait_status(lambda: admin("exports")[1]["status"], "completed")

    admin("settings", {"snapshotSeconds": 0})
    rs.create_cluster(ClusterIdentifier="c", NodeType="ra3.xlplus", MasterUsername="u",
                      MasterUserPassword="Secret123")
    rs.create_cluster_snapshot(SnapshotIdentifier="s", ClusterIdentifier="c")
    admin("faults", {"failActions": ["CreateTags", "elasticache:AddTagsToResource"]})
    err = fails("AccessDenied", rs.create_tags,
                ResourceName="arn:aws:redshift:us-east-1:123456789012:snapshot:c/s",
                Tags=[{"Key": "k", "Value": "v"}])
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "redshift:CreateTags" in err.response["Error"]["Message"]
    fails("AccessDenied", ec.add_tags_to_resource,
          ResourceName="arn:aws:elasticache:us-east-1:123456789012:snapshot:doomed",
          Tags=[{"Key": "k", "Value": "v"}])
    rs.create_cluster_snapshot(SnapshotIdentifier="t", ClusterIdentifier="c")
    admin("faults", {"failActions": []})
    assert rs.describe_cluster_snapshots(SnapshotIdentifier="s")["Snapshots"][0]["Tags"] == []
    assert ec.list_tags_for_resource(
        ResourceName="arn:aws:elasticache:us-east-1:123456789012:snapshot:doomed")["TagList"] == []

def docdb_sources_and_copy_kms_rules():
    """DocumentDB: by identifier, an automated snapshot is found only with SnapshotType
    automated and a shared one only with IncludeShared or SnapshotType shared; a shared
    snapshot is copied only in its own region, an encrypted shared one only with
    KmsKeyId (KMSKeyNotAccessibleFault), and KmsKeyId on an unencrypted source is
    refused; the tagging actions answer DBSnapshotNotFound (404) for a missing one."""
    admin("settings", {"snapshotSeconds": 0})
    me, owner = client("docdb"), client("docdb", key=OTHER_KEY)
    owner_west = client("docdb", region="us-west-2", key=OTHER_KEY)
    me.create_db_cluster(DBClusterIdentifier="mine", Engine="docdb", MasterUsername="u",
                         MasterUserPassword="Secret123")
    listed = me.describe_db_cluster_snapshots()["DBClusterSnapshots"]
    auto = [s for s in listed if s["SnapshotType"] == "automated"][0]["DBClusterSnapshotIdentifier"]
    assert auto.startswith("rds:mine-"), auto
    fails("DBClusterSnapshotNotFoundFault", me.describe_db_cluster_snapshots,
          DBClusterSnapshotIdentifier=auto)
    got = me.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=auto,
                                           SnapshotType="automated")["DBClusterSnapshots"]
    assert [s["DBClusterSnapshotIdentifier"] for s in got] == [auto], got
    me.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=auto,
                                TargetDBClusterSnapshotIdentifier="kept")
    fails("InvalidParameterCombination", me.copy_db_cluster_snapshot,
          SourceDBClusterSnapshotIdentifier="kept", TargetDBClusterSnapshotIdentifier="k2",
          KmsKeyId="alias/mine")

    owner.create_db_cluster(DBClusterIdentifier="vault", Engine="docdb", MasterUsername="u",
                            MasterUserPassword="Secret123", StorageEncrypted=True,
                            KmsKeyId="alias/theirs")
    owner.create_db_cluster_snapshot(DBClusterIdentifier="vault", DBClusterSnapshotIdentifier="sealed")
    owner.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="sealed",
                                               AttributeName="restore", ValuesToAdd=["123456789012"])
    arn = f"arn:aws:rds:us-east-1:{OTHER_ACCOUNT}:cluster-snapshot:sealed"
    fails("DBClusterSnapshotNotFoundFault", me.describe_db_cluster_snapshots,
          DBClusterSnapshotIdentifier=arn)
    for kw in ({"IncludeShared": True}, {"SnapshotType": "shared"}):
        got = me.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=arn, **kw)["DBClusterSnapshots"]
        assert [s["DBClusterSnapshotArn"] for s in got] == [arn], (kw, got)
    fails("KMSKeyNotAccessibleFault", me.copy_db_cluster_snapshot,
          SourceDBClusterSnapshotIdentifier=arn, TargetDBClusterSnapshotIdentifier="c1")
    c = me.copy_db_cluster_snapshot(SourceDBClusterSnapshotIdentifier=arn,
                                    TargetDBClusterSnapshotIdentifier="c1",
                                    KmsKeyId="alias/mine")["DBClusterSnapshot"]
    assert c["StorageEncrypted"] and c["KmsKeyId"] == "alias/mine", c

    owner_west.create_db_cluster(DBClusterIdentifier="w", Engine="docdb", MasterUsername="u",
                                 MasterUserPassword="Secret123")
    owner_west.create_db_cluster_snapshot(DBClusterIdentifier="w", DBClusterSnapshotIdentifier="far")
    owner_west.modify_db_cluster_snapshot_attribute(DBClusterSnapshotIdentifier="far",
                                                    AttributeName="restore",
                                                    ValuesToAdd=["123456789012"])
    far = f"arn:aws:rds:us-west-2:{OTHER_ACCOUNT}:cluster-snapshot:far"
    e = fails("InvalidParameterValue", me.copy_db_cluster_snapshot,
              SourceDBClusterSnapshotIdentifier=far, TargetDBClusterSnapshotIdentifier="c3",
              SourceRegion="us-west-2")
    assert "own region" in e.response["Error"]["Message"], e

    ghost = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:ghost"
    for fn, kw in ((me.add_tags_to_resource, {"Tags": [{"Key": "k", "Value": "v"}]}),
                   (me.remove_tags_from_resource, {"TagKeys": ["k"]}),
                   (me.list_tags_for_resource, {})):
        e = fails("DBSnapshotNotFound", fn, ResourceName=ghost, **kw)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404, e.response


def redshift_retention_expiry():
    """Redshift: a manual snapshot is deleted once its retention period has passed
    (days of the emulator's secondsPerDay), ManualSnapshotRemainingDays counts down, and
    ModifyClusterSnapshot refuses a period the snapshot already falls outside of with
    InvalidRetentionPeriodFault unless Force is given, which deletes it at once."""
    rs = client("redshift")
    admin("settings", {"snapshotSeconds": 0, "secondsPerDay": 1})
    try:
        rs.create_cluster(ClusterIdentifier="analytics", NodeType="ra3.xlplus",
                          MasterUsername="admin", MasterUserPassword="Secret123")
        for sid, days in (("short", 2), ("old", -1), ("kept", -1)):
            rs.create_cluster_snapshot(ClusterIdentifier="analytics", SnapshotIdentifier=sid,
                                       ManualSnapshotRetentionPeriod=days)

        def one(sid):
            return rs.describe_cluster_snapshots(SnapshotIdentifier=sid)["Snapshots"][0]

        assert one("short")["ManualSnapshotRemainingDays"] == 2, one("short")
        assert one("old")["ManualSnapshotRemainingDays"] == -1, one("old")
        time.sleep(1.2)
        assert one("short")["ManualSnapshotRemainingDays"] == 1, one("short")
        e = fails("InvalidRetentionPeriodFault", rs.modify_cluster_snapshot,
                  SnapshotIdentifier="old", ManualSnapshotRetentionPeriod=1)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
        assert one("old")["ManualSnapshotRetentionPeriod"] == -1
        kept = rs.modify_cluster_snapshot(SnapshotIdentifier="kept",
                                          ManualSnapshotRetentionPeriod=30)["Snapshot"]
        assert (kept["ManualSnapshotRetentionPeriod"], kept["ManualSnapshotRemainingDays"]) == (30, 29), kept
        forced = rs.modify_cluster_snapshot(SnapshotIdentifier="old", ManualSnapshotRetentionPeriod=1,
                                            Force=True)["Snapshot"]
        assert forced["Status"] == "deleted", forced
        fails("ClusterSnapshotNotFound", rs.describe_cluster_snapshots, SnapshotIdentifier="old")
        time.sleep(1.0)
        fails("ClusterSnapshotNotFound", rs.describe_cluster_snapshots, SnapshotIdentifier="short")
        left = rs.describe_cluster_snapshots(ClusterIdentifier="analytics", SnapshotType="manual")
        assert [x["SnapshotIdentifier"] for x in left["Snapshots"]] == ["kept"], left
    finally:
        admin("settings", {"secondsPerDay": 86400})


def dependent_service_throttling():
    """dependentThrottleActions: Redshift's DependentServiceRequestThrottlingFault
    (HTTP 400, "Wait and retry the request") without effect."""
    rs = client("redshift")
    admin("settings", {"snapshotSeconds": 0})
    rs.create_cluster(ClusterIdentifier="c", NodeType="ra3.xlplus", MasterUsername="u",
                      MasterUserPassword="Secret123")
    rs.create_cluster_snapshot(SnapshotIdentifier="s", ClusterIdentifier="c")
    admin("faults", {"dependentThrottleActions": ["AuthorizeSnapshotAccess"]})
    try:
        e = fails("DependentServiceRequestThrottlingFault", rs.authorize_snapshot_access,
                  SnapshotIdentifier="s", AccountWithRestoreAccess="111111111111")
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        snap = rs.describe_cluster_snapshots(SnapshotIdentifier="s")["Snapshots"][0]
        assert snap.get("AccountsWithRestoreAccess", []) == [], snap
    finally:
        admin("faults", {"dependentThrottleActions": []})
    rs.authorize_snapshot_access(SnapshotIdentifier="s", AccountWithRestoreAccess="111111111111")


def opaque_markers():
    """pageSize caps every Describe page; botocore's paginators follow the emulator's
    opaque markers; a marker it did not issue is InvalidParameterValue."""
    rs, db, ec = client("redshift"), client("docdb"), client("elasticache")
    admin("settings", {"snapshotSeconds": 0})
    rs.create_cluster(ClusterIdentifier="c", NodeType="ra3.xlplus", MasterUsername="u",
                      MasterUserPassword="Secret123")
    db.create_db_cluster(DBClusterIdentifier="d", Engine="docdb", MasterUsername="u",
                         MasterUserPassword="Secret123")
    ec.create_replication_group(ReplicationGroupId="g", ReplicationGroupDescription="d")
    for i in range(24):
        rs.create_cluster_snapshot(SnapshotIdentifier=f"s-{i:02d}", ClusterIdentifier="c")
        db.create_db_cluster_snapshot(DBClusterIdentifier="d", DBClusterSnapshotIdentifier=f"s-{i:02d}")
        ec.create_snapshot(ReplicationGroupId="g", SnapshotName=f"s-{i:02d}")
    admin("settings", {"pageSize": 20})
    try:
        for pages, field in [
            (rs.get_paginator("describe_cluster_snapshots").paginate(), "Snapshots"),
            (db.get_paginator("describe_db_cluster_snapshots").paginate(), "DBClusterSnapshots"),
            (ec.get_paginator("describe_snapshots").paginate(), "Snapshots"),
        ]:
            sizes = [len(p[field]) for p in pages]
            assert sizes == [20, 5] or sizes == [20, 4], (field, sizes)
        first = rs.describe_cluster_snapshots(MaxRecords=100)
        assert len(first["Snapshots"]) == 20 and "s-" not in first["Marker"], first["Marker"]
        fails("InvalidParameterValue", rs.describe_cluster_snapshots, Marker="s-20/123456789012")
        fails("InvalidParameterValue", db.describe_db_cluster_snapshots, Marker=first["Marker"])
        fails("InvalidParameterValue", ec.describe_snapshots, Marker=first["Marker"][:-1] + "x")
        calls = admin("calls")
        assert calls["foreignMarkers"] == 3, calls
        assert calls["markersFollowed"]["docdb:DescribeDBClusterSnapshots"] == 1, calls
    finally:
        admin("settings", {"pageSize": 0})
    assert len(rs.describe_cluster_snapshots()["Snapshots"]) == 25


def cluster_and_snapshot_states():
    """Clusters that refuse a snapshot (CreateClusterSnapshot InvalidClusterStateFault,
    CreateDBClusterSnapshot InvalidDBClusterStateFault, CreateSnapshot
    InvalidReplicationGroupStateFault / InvalidCacheClusterStateFault, ElastiCache one
    snapshot at a time), every documented snapshot status on demand, and deletes that
    take time (DocumentDB and ElastiCache `deleting`, the name still taken)."""
    rs, db, ec = client("redshift"), client("docdb"), client("elasticache")
    admin("settings", {"snapshotSeconds": 2, "deleteSeconds": 0})
    rs.create_cluster(ClusterIdentifier="wh", NodeType="dc2.large", MasterUsername="u",
                      MasterUserPassword="Secret123")
    db.create_db_cluster(DBClusterIdentifier="orders", Engine="docdb", MasterUsername="u",
                         MasterUserPassword="Secret123")
    ec.create_replication_group(ReplicationGroupId="sessions", ReplicationGroupDescription="d",
                                Engine="valkey", NumCacheClusters=1)
    ec.create_cache_cluster(CacheClusterId="solo", Engine="redis", NumCacheNodes=1)
    for service, ident in [("redshift", "wh"), ("docdb", "orders"), ("elasticache", "sessions")]:
        admin("clusters/status", {"service": service, "identifier": ident,
                                  "status": "modifying", "seconds": 30})
    e = fails("InvalidClusterState", rs.create_cluster_snapshot, SnapshotIdentifier="s1",
              ClusterIdentifier="wh")
    assert "modifying" in str(e), e
    fails("InvalidDBClusterStateFault", db.create_db_cluster_snapshot,
          DBClusterSnapshotIdentifier="s1", DBClusterIdentifier="orders")
    fails("InvalidReplicationGroupState", ec.create_snapshot, ReplicationGroupId="sessions",
          SnapshotName="s1")
    for service, ident in [("redshift", "wh"), ("docdb", "orders"), ("elasticache", "sessions")]:
        admin("clusters/status", {"service": service, "identifier": ident,
                                  "status": "available", "seconds": 0})
    rs.create_cluster_snapshot(SnapshotIdentifier="s1", ClusterIdentifier="wh")
    db.create_db_cluster_snapshot(DBClusterSnapshotIdentifier="s1", DBClusterIdentifier="orders")
    ec.create_snapshot(ReplicationGroupId="sessions", SnapshotName="s1")
    # ElastiCache: one snapshot at a time (the group is `snapshotting`).
    fails("InvalidReplicationGroupState", ec.create_snapshot, ReplicationGroupId="sessions",
          SnapshotName="s2")
    ec.create_snapshot(CacheClusterId="solo", SnapshotName="c1")
    fails("InvalidCacheClusterState", ec.create_snapshot, CacheClusterId="solo", SnapshotName="c2")
    time.sleep(2.2)
    ec.create_snapshot(ReplicationGroupId="sessions", SnapshotName="s2")
    # Every status the models document, and one they do not, on demand.
    for status in ["cancelled", "final snapshot", "failed", "surprise"]:
        admin("snapshots/status", {"service": "redshift", "identifier": "s1", "status": status})
        got = rs.describe_cluster_snapshots(SnapshotIdentifier="s1")["Snapshots"][0]["Status"]
        assert got == status, got
    rs.delete_cluster_snapshot(SnapshotIdentifier="s1")
    for status in ["copying", "failed"]:
        admin("snapshots/status", {"service": "docdb", "identifier": "s1", "status": status})
        got = db.describe_db_cluster_snapshots(
            DBClusterSnapshotIdentifier="s1")["DBClusterSnapshots"][0]["Status"]
        assert got == status, got
    for status in ["restoring", "copying"]:
        admin("snapshots/status", {"service": "elasticache", "identifier": "s1", "status": status})
        got = ec.describe_snapshots(SnapshotName="s1")["Snapshots"][0]["SnapshotStatus"]
        assert got == status, got
    admin("snapshots/status", {"service": "docdb", "identifier": "s1", "status": None})
    admin("snapshots/status", {"service": "elasticache", "identifier": "s1", "status": None})
    # Deletes take time: `deleting`, the name taken, then gone.
    admin("settings", {"deleteSeconds": 1.5})
    got = db.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="s1")["DBClusterSnapshot"]
    assert got["Status"] == "deleting", got
    fails("DBClusterSnapshotAlreadyExistsFault", db.create_db_cluster_snapshot,
          DBClusterSnapshotIdentifier="s1", DBClusterIdentifier="orders")
    fails("InvalidDBClusterSnapshotStateFault", db.delete_db_cluster_snapshot,
          DBClusterSnapshotIdentifier="s1")
    got = ec.delete_snapshot(SnapshotName="s1")["Snapshot"]
    assert got["SnapshotStatus"] == "deleting", got
    assert ec.describe_snapshots(SnapshotName="s1")["Snapshots"][0]["SnapshotStatus"] == "deleting"
    time.sleep(1.6)
    fails("DBClusterSnapshotNotFoundFault", db.describe_db_cluster_snapshots,
          DBClusterSnapshotIdentifier="s1")
    fails("SnapshotNotFoundFault", ec.describe_snapshots, SnapshotName="s1")
    db.create_db_cluster_snapshot(DBClusterSnapshotIdentifier="s1", DBClusterIdentifier="orders")
    admin("settings", {"deleteSeconds": 0, "snapshotSeconds": 1})


def export_keys_are_unique():
    """CopySnapshot's "The S3 bucket %s already contains an object with key %s": a second
    export to the same key is InvalidParameterValue; a failed export left it free."""
    ec = client("elasticache")
    admin("settings", {"snapshotSeconds": 0})
    ec.create_replication_group(ReplicationGroupId="g", ReplicationGroupDescription="d")
    for name in ("a", "b"):
        ec.create_snapshot(ReplicationGroupId="g", SnapshotName=name)
    ec.copy_snapshot(SourceSnapshotName="a", TargetSnapshotName="out", TargetBucket="my-exports")
    e = fails("InvalidParameterValue", ec.copy_snapshot, SourceSnapshotName="b",
              TargetSnapshotName="out", TargetBucket="my-exports")
    assert "already contains an object with key out-0001.rdb" in e.response["Error"]["Message"], e
    ec.copy_snapshot(SourceSnapshotName="b", TargetSnapshotName="out", TargetBucket="other-bucket")
    assert len(admin("exports")) == 2


FLAG_ROLE = "arn:aws:iam::210987654321:role/from-flag"


def sts_assume_role():
    """STS (Query protocol, as botocore speaks it): AssumeRole of a role that trusts
    the caller gives temporary credentials of the role's account that every service
    takes; untrusted callers get AccessDenied, bad input ValidationError, wrong or
    expired tokens InvalidClientTokenId / ExpiredToken. The role here was given by
    --role at start."""
    assert [r["roleArn"] for r in admin("roles")] == [FLAG_ROLE], admin("roles")
    sts = client("sts")
    me = sts.get_caller_identity()
    assert me["Account"] == "123456789012" and me["Arn"].endswith(":user/caller"), me
    out = sts.assume_role(RoleArn=FLAG_ROLE, RoleSessionName="boto3", DurationSeconds=900)
    c = out["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA") and len(c["AccessKeyId"]) == 20, c
    left = c["Expiration"].timestamp() - time.time()
    assert 880 < left <= 900, left
    assert out["AssumedRoleUser"]["Arn"] == \
        "arn:aws:sts::210987654321:assumed-role/from-flag/boto3", out
    temp = boto3.client("sts", endpoint_url=URL, region_name="us-east-1",
                        aws_access_key_id=c["AccessKeyId"],
                        aws_secret_access_key=c["SecretAccessKey"],
                        aws_session_token=c["SessionToken"], config=NO_RETRY)
    who = temp.get_caller_identity()
    assert who["Account"] == OTHER_ACCOUNT and who["Arn"] == out["AssumedRoleUser"]["Arn"], who
    db = boto3.client("docdb", endpoint_url=URL, region_name="eu-west-1",
                      aws_access_key_id=c["AccessKeyId"],
                      aws_secret_access_key=c["SecretAccessKey"],
                      aws_session_token=c["SessionToken"], config=NO_RETRY)
    db.describe_db_cluster_snapshots()
    assert admin("calls")["callsByAccount"][OTHER_ACCOUNT] == 2
    e = fails("AccessDenied", client("sts", key=OTHER_KEY).assume_role,
              RoleArn=FLAG_ROLE, RoleSessionName="boto3")
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    fails("ValidationError", sts.assume_role, RoleArn=FLAG_ROLE, RoleSessionName="b o")
    wrong = boto3.client("sts", endpoint_url=URL, region_name="us-east-1",
                         aws_access_key_id=c["AccessKeyId"],
                         aws_secret_access_key=c["SecretAccessKey"],
                         aws_session_token="IQoJwrong", config=NO_RETRY)
    fails("InvalidClientTokenId", wrong.get_caller_identity)
    admin("settings", {"sessionSeconds": 1})
    try:
        c = sts.assume_role(RoleArn=FLAG_ROLE, RoleSessionName="short")["Credentials"]
        short = boto3.client("sts", endpoint_url=URL, region_name="us-east-1",
                             aws_access_key_id=c["AccessKeyId"],
                             aws_secret_access_key=c["SecretAccessKey"],
                             aws_session_token=c["SessionToken"], config=NO_RETRY)
        time.sleep(1.2)
        fails("ExpiredToken", short.get_caller_identity)
    finally:
        admin("settings", {"sessionSeconds": 0})


CHECKS = [cluster_and_snapshot_states,
          redshift_flow, redshift_paging, docdb_flow, docdb_paging, elasticache_flow,
          elasticache_paging, faults, identifier_case, tag_character_sets, cross_account_shares,
          export_and_action_faults, docdb_sources_and_copy_kms_rules, redshift_retention_expiry,
          dependent_service_throttling, opaque_markers, export_keys_are_unique,
          sts_assume_role]


def main():
    passed = failed = 0
    for check in CHECKS:
        admin("reset", {})
        admin("faults", {"throttleFraction": 0, "errorFraction": 0, "latencyMs": 0,
                         "accountRps": 0, "deniedBuckets": [], "failExports": [],
                         "failActions": []})
        try:
            check()
            passed += 1
            print(f"ok   {check.__name__}")
        except Exception:
            failed += 1
            print(f"FAIL {check.__name__}")
            traceback.print_exc()
    print(f"boto3: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
