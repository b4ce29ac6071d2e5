//! The Helm chart: it lints and renders as documented (every value), carries the same
//! CRDs as `crds/` (as templates, so that upgrades update them) and the same alerts and
//! dashboard as `deploy/`, its README is generated from values.yaml, and (installed
//! into the test bed) an upgrade from the previous chart version changes the CRDs and
//! an uninstall keeps them and the objects; its RBAC is exactly enough: the operator,
//! running with the chart's ServiceAccount token, takes a ClusterSnapshot through its
//! whole life as the holder of the release's Lease (leader election is always on), and
//! without one permission it says so in its log and a condition; with two watched
//! namespaces it reconciles objects in both and never sees a third.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::rbac::v1::Role;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

fn chart() -> PathBuf {
    root().join("charts/dbsnapshot-operator")
}

/// helm and kubectl from the test bed (tests/testbed/install-helm-kubectl.sh).
fn tool(name: &str) -> PathBuf {
    testbed_tool(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn render(args: &[&str]) -> Vec<Value> {
    let out = run(Command::new(tool("helm"))
        .args(["template", "rel"])
        .arg(chart())
        .args(["--namespace", "ops"])
        .args(args));
    out.split("\n---")
        .filter_map(|doc| serde_saphyr::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Where a chart file is copied from: `UPDATE_DOCS=1` copies it, otherwise they must
/// be equal.
fn assert_copy_of(source: &str, copy: &str) {
    let a =
        std::fs::read_to_string(root().join(source)).unwrap_or_else(|e| panic!("{source}: {e}"));
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(root().join(copy), &a).unwrap();
    }
    let b = std::fs::read_to_string(root().join(copy)).unwrap_or_default();
    assert!(
        a == b,
        "{copy} differs from {source}: UPDATE_DOCS=1 cargo test --test chart (or cp {source} {copy})"
    );
}

#[test]
fn chart_crds_are_the_generated_ones() {
    assert_copy_of(
        "crds/dbsnapshot.io.yaml",
        "charts/dbsnapshot-operator/files/crds.yaml",
    );
    // Helm would install a crds/ directory once and never upgrade it.
    assert!(
        !chart().join("crds").exists(),
        "the chart has a crds/ directory"
    );
    // The rendered CRDs are the generated ones plus the release's labels and the keep
    // annotation.
    let generated: Vec<Value> = serde_saphyr::from_multiple::<Value>(
        &std::fs::read_to_string(root().join("crds/dbsnapshot.io.yaml")).unwrap(),
    )
    .unwrap()
    .into_iter()
    .filter(|v| v.is_object())
    .collect();
    let docs = render(&[]);
    let mut rendered: Vec<Value> = find(&docs, "CustomResourceDefinition")
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(rendered.len(), generated.len());
    for crd in &mut rendered {
        let meta = crd["metadata"].as_object_mut().unwrap();
        assert_eq!(
            meta["annotations"]["helm.sh/resource-policy"], "keep",
            "{meta:?}"
        );
        assert_eq!(meta["labels"]["app.kubernetes.io/managed-by"], "Helm");
        meta.remove("annotations");
        meta.remove("labels");
    }
    assert_eq!(rendered, generated);
    // crds.keep=false: no keep annotation; crds.enabled=false: no CRDs.
    let docs = render(&["--set", "crds.keep=false"]);
    for crd in find(&docs, "CustomResourceDefinition") {
        assert!(
            crd["metadata"]["annotations"].is_null(),
            "{}",
            crd["metadata"]
        );
    }
    assert!(
        find(
            &render(&["--set", "crds.enabled=false"]),
            "CustomResourceDefinition"
        )
        .is_empty()
    );
}

/// The chart's alerts and dashboard are deploy/'s.
#[test]
fn chart_alerts_and_dashboard_are_the_deployed_ones() {
    assert_copy_of(
        "deploy/prometheus/rules.yaml",
        "charts/dbsnapshot-operator/files/prometheus-rules.yaml",
    );
    assert_copy_of(
        "deploy/grafana/dashboard.json",
        "charts/dbsnapshot-operator/files/dashboard.json",
    );
}

#[test]
fn chart_lints_and_renders_least_privilege() {
    let lint = run(Command::new(tool("helm")).arg("lint").arg(chart()));
    assert!(lint.contains("0 chart(s) failed"), "{lint}");

    let docs = render(&[
        "--set",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111111111111:role/snapshots",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "aws.region=eu-west-1",
    ]);
    let sa = find(&docs, "ServiceAccount")[0];
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111111111111:role/snapshots"
    );
    let role = named(&find(&docs, "ClusterRole"), "rel-dbsnapshot-operator");
    let rules: Vec<(String, String, String)> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let groups = r["apiGroups"].as_array().unwrap().clone();
            let resources = r["resources"].as_array().unwrap().clone();
            let verbs = r["verbs"].as_array().unwrap().clone();
            groups.into_iter().flat_map(move |g| {
                let verbs = verbs.clone();
                resources.clone().into_iter().flat_map(move |res| {
                    let g = g.clone();
                    verbs.clone().into_iter().map(move |v| {
                        (
                            g.as_str().unwrap().to_string(),
                            res.as_str().unwrap().to_string(),
                            v.as_str().unwrap().to_string(),
                        )
                    })
                })
            })
        })
        .collect();
    for (g, r, v) in &rules {
        assert!(
            (g == "dbsnapshot.io"
                && (r.starts_with("clustersnapshots")
                    || r.starts_with("snapshotcopies")
                    || r.starts_with("snapshotschedules")))
                || (g == "events.k8s.io" && r == "events"),
            "unexpected permission {v} {g}/{r}"
        );
        // Create and delete: Events, and the objects a SnapshotSchedule makes and
        // prunes (never a schedule, a status or a finalizer list).
        assert!(
            v != "*"
                && (v != "delete" && v != "create"
                    || r == "events"
                    || r == "clustersnapshots"
                    || r == "snapshotcopies"),
            "{v} {g}/{r}"
        );
    }
    for (r, v) in [
        ("snapshotschedules", "watch"),
        ("snapshotschedules", "patch"),
        ("snapshotschedules/status", "patch"),
        ("clustersnapshots", "create"),
        ("clustersnapshots", "delete"),
        ("snapshotcopies", "create"),
        ("snapshotcopies", "delete"),
    ] {
        assert!(
            rules.contains(&("dbsnapshot.io".to_string(), r.to_string(), v.to_string())),
            "the operator may not {v} {r}"
        );
    }
    assert_eq!(find(&docs, "ClusterRoleBinding").len(), 2);
    assert_accounts_role(&docs);
    // The only Role is the Lease's (leader election is always on).
    assert_eq!(find(&docs, "Role").len(), 1);
    assert_leader_election(&docs, "ops", "rel-dbsnapshot-operator");

    let deploy = find(&docs, "Deployment")[0];
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string());
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--region=eu-west-1"), "{args:?}");
    assert_eq!(find(&docs, "ServiceMonitor").len(), 1);
    assert_eq!(find(&docs, "Service").len(), 1);

    // One watched namespace: a Role there instead of a ClusterRole (but for the
    // cluster-scoped AWSAccounts').
    let docs = render(&["--set", "watchNamespaces[0]=data"]);
    assert_accounts_role(&docs);
    let roles = find(&docs, "Role");
    assert!(
        roles.iter().any(|r| r["metadata"]["namespace"] == "data"),
        "{roles:?}"
    );
    assert_leader_election(&docs, "ops", "rel-dbsnapshot-operator");
    let args =
        find(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    assert!(
        args.as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--namespace=data")
    );

    // Leader election whatever the replicas: during a rolling update the old and the
    // new pod run side by side even with one replica.
    for replicas in ["0", "1", "2", "3"] {
        let docs = render(&["--set", &format!("replicas={replicas}")]);
        assert_leader_election(&docs, "ops", "rel-dbsnapshot-operator");
    }

    // Several watched namespaces: a Role and RoleBinding in each, one --namespace list.
    let docs = render(&["--set", "watchNamespaces={data,apps}"]);
    assert_accounts_role(&docs);
    for ns in ["data", "apps"] {
        for kind in ["Role", "RoleBinding"] {
            assert!(
                find(&docs, kind)
                    .iter()
                    .any(|r| r["metadata"]["namespace"] == ns
                        && r["metadata"]["name"] == "rel-dbsnapshot-operator"),
                "no {kind} in {ns}"
            );
        }
    }
    assert!(container_args(&docs).contains(&"--namespace=data,apps".to_string()));

    // The values schema refuses what the operator cannot do, naming the value.
    for (set, named) in [
        ("watchNamespaces={Data_1}", "watchNamespaces"),
        ("watchNamespaces={a,a}", "watchNamespaces"),
        ("aws.retryMode=fast", "retryMode"),
        ("aws.region=Europe", "region"),
        ("defaults.deletionPolicy=Keep", "deletionPolicy"),
        ("defaults.tags.aws:team=x", "aws:team"),
        ("defaults.tags.team=a;b", "tags"),
        // DocumentDB takes no '@': a default tag must suit every engine.
        ("defaults.tags.owner=ops@example", "tags"),
        // The top-level AWS keys of 0.1.0 are gone (docs/upgrading.md).
        ("region=eu-west-1", "region"),
        ("awsRate=5", "awsRate"),
    ] {
        let bad = Command::new(tool("helm"))
            .args(["template", "rel"])
            .arg(chart())
            .args(["--set", set])
            .output()
            .unwrap();
        assert!(!bad.status.success(), "{set} was accepted");
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(stderr.contains(named), "{set}: {stderr}");
    }
}

fn named<'a>(docs: &[&'a Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {docs:?}"))
}

/// The only ClusterRole besides the operator's own (absent when it watches listed
/// namespaces): reading AWSAccounts, writing their status and Events, reading a
/// namespace's labels for their selectors, nothing else.
fn assert_accounts_role(docs: &[Value]) {
    let roles = find(docs, "ClusterRole");
    assert!(
        roles
            .iter()
            .all(|r| r["metadata"]["name"] == "rel-dbsnapshot-operator"
                || r["metadata"]["name"] == "rel-dbsnapshot-operator-accounts"),
        "{roles:?}"
    );
    let accounts = named(&roles, "rel-dbsnapshot-operator-accounts");
    assert_eq!(
        accounts["rules"],
        json!([
            {"apiGroups": ["dbsnapshot.io"], "resources": ["awsaccounts"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["dbsnapshot.io"], "resources": ["awsaccounts/status"], "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ])
    );
    let binding = named(
        &find(docs, "ClusterRoleBinding"),
        "rel-dbsnapshot-operator-accounts",
    );
    assert_eq!(
        binding["roleRef"]["name"],
        "rel-dbsnapshot-operator-accounts"
    );
}

fn container_args(docs: &[Value]) -> Vec<String> {
    find(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Every value of the chart renders as documented.
#[test]
fn chart_values_render() {
    // The defaults: hardened security contexts, no PDB, rule, dashboard or extras.
    let docs = render(&[]);
    let pod = &find(&docs, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
               "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        pod["containers"][0]["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
               "capabilities": {"drop": ["ALL"]}})
    );
    assert!(pod["volumes"].is_null() && pod["containers"][0]["volumeMounts"].is_null());
    assert!(pod["topologySpreadConstraints"].is_null());
    for kind in ["PodDisruptionBudget", "PrometheusRule", "ConfigMap"] {
        assert!(find(&docs, kind).is_empty(), "{kind} by default");
    }
    let args = container_args(&docs);
    for arg in [
        "--aws-rate=3",
        "--aws-burst=3",
        "--aws-retry-mode=standard",
        "--default-deletion-policy=Delete",
    ] {
        assert!(args.contains(&arg.to_string()), "{args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--region")
        || a.starts_with("--namespace")
        || a.starts_with("--default-tags")));

    // The operator-wide defaults: the policy, and the tags as key=value pairs.
    let docs = render(&[
        "--set",
        "defaults.deletionPolicy=Retain",
        "--set",
        "defaults.tags.team=platform",
        "--set-string",
        "defaults.tags.cost-center=42",
        "--set",
        "defaults.tags.owner=ops team",
    ]);
    let args = container_args(&docs);
    assert!(
        args.contains(&"--default-deletion-policy=Retain".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--default-tags=cost-center=42,owner=ops team,team=platform".to_string()),
        "{args:?}"
    );

    let docs = render(&[
        "--set",
        "fullnameOverride=snaps",
        "--set",
        "aws.region=eu-west-1",
        "--set",
        "aws.rate=1.5",
        "--set",
        "aws.burst=2",
        "--set",
        "aws.retryMode=adaptive",
        "--set",
        "aws.endpointUrl=https://vpce.example",
        "--set",
        "aws.endpointUrls.REDSHIFT=https://redshift.vpce.example",
        "--set",
        "extraArgs={--max-poll-seconds=60}",
        "--set",
        "extraVolumes[0].name=ca",
        "--set",
        "extraVolumes[0].configMap.name=corporate-ca",
        "--set",
        "extraVolumeMounts[0].name=ca",
        "--set",
        "extraVolumeMounts[0].mountPath=/etc/ssl/certs/ca-certificates.crt",
        "--set",
        "extraVolumeMounts[0].subPath=ca.crt",
        "--set",
        "topologySpreadConstraints[0].maxSkew=1",
        "--set",
        "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
        "--set",
        "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway",
        "--set",
        "podSecurityContext.runAsUser=1000",
        "--set",
        "securityContext.readOnlyRootFilesystem=true",
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=prom",
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "global.imageRegistry=registry.example",
    ]);
    let deploy = find(&docs, "Deployment")[0];
    assert_eq!(deploy["metadata"]["name"], "snaps");
    assert_leader_election(&docs, "ops", "snaps");
    let args = container_args(&docs);
    for arg in [
        "--region=eu-west-1",
        "--aws-rate=1.5",
        "--aws-burst=2",
        "--aws-retry-mode=adaptive",
        "--max-poll-seconds=60",
    ] {
        assert!(args.contains(&arg.to_string()), "no {arg} in {args:?}");
    }
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let env = c["env"].as_array().unwrap();
    for (name, value) in [
        ("AWS_ENDPOINT_URL", "https://vpce.example"),
        ("AWS_ENDPOINT_URL_REDSHIFT", "https://redshift.vpce.example"),
    ] {
        assert!(
            env.iter().any(|e| e["name"] == name && e["value"] == value),
            "{env:?}"
        );
    }
    assert_eq!(
        pod["volumes"],
        json!([{"name": "ca", "configMap": {"name": "corporate-ca"}}])
    );
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "ca", "mountPath": "/etc/ssl/certs/ca-certificates.crt", "subPath": "ca.crt"}])
    );
    let selector = &deploy["spec"]["selector"]["matchLabels"];
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector}}])
    );
    // Overriding a security context replaces it as a whole (set what you need).
    assert_eq!(pod["securityContext"]["runAsUser"], 1000);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let pdb = find(&docs, "PodDisruptionBudget")[0];
    assert_eq!(pdb["metadata"]["name"], "snaps");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *selector);
    let rule = find(&docs, "PrometheusRule")[0];
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let shipped: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart().join("files/prometheus-rules.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(rule["spec"], shipped["spec"]);
    assert!(!rule["spec"]["groups"].as_array().unwrap().is_empty());
    let dashboard = find(&docs, "ConfigMap")[0];
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json: Value = serde_json::from_str(
        dashboard["data"]["dbsnapshot-operator.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(chart().join("files/dashboard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json, shipped);

    // nameOverride names the resources and the name label.
    let docs = render(&["--set", "nameOverride=snapshots"]);
    let deploy = find(&docs, "Deployment")[0];
    assert_eq!(deploy["metadata"]["name"], "rel-snapshots");
    assert_eq!(
        deploy["metadata"]["labels"]["app.kubernetes.io/name"],
        "snapshots"
    );
    // maxUnavailable instead of minAvailable.
    let docs = render(&[
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set",
        "podDisruptionBudget.maxUnavailable=1",
    ]);
    let pdb = &find(&docs, "PodDisruptionBudget")[0]["spec"];
    assert_eq!(pdb["maxUnavailable"], 1);
    assert!(pdb["minAvailable"].is_null());
}

/// `helm test` runs a pod that fetches /readyz through the metrics Service. (The test
/// bed has no kubelet to run it: checked as rendered.)
#[test]
fn the_helm_test_hook_checks_readyz() {
    let docs = render(&["--set", "metrics.port=9090"]);
    let pods: Vec<&Value> = find(&docs, "Pod");
    assert_eq!(pods.len(), 1);
    let pod = pods[0];
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    let command = pod["spec"]["containers"][0]["command"].as_array().unwrap();
    assert_eq!(command[0], "wget");
    assert_eq!(
        command.last().unwrap(),
        "http://rel-dbsnapshot-operator-metrics.ops.svc:9090/readyz"
    );
    let service = find(&docs, "Service")[0];
    assert_eq!(
        service["metadata"]["name"],
        "rel-dbsnapshot-operator-metrics"
    );
    assert_eq!(service["spec"]["ports"][0]["port"], 9090);
    // No Service, no test.
    assert!(find(&render(&["--set", "metrics.service.enabled=false"]), "Pod").is_empty());
}

/// The Deployment elects a leader through a Lease in `namespace` (named after the
/// release), a Role and RoleBinding let the ServiceAccount take exactly that, and a
/// rolling update starts the new pod (a standby) before it stops the old one.
fn assert_leader_election(docs: &[Value], namespace: &str, fullname: &str) {
    let deploy = find(docs, "Deployment")[0];
    let args: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for arg in [
        "--leader-election".to_string(),
        format!("--leader-election-namespace={namespace}"),
        format!("--lease-name={fullname}"),
    ] {
        assert!(args.contains(&arg.as_str()), "no {arg} in {args:?}");
    }
    assert!(
        args.iter()
            .any(|a| a.starts_with("--lease-duration-seconds=")),
        "{args:?}"
    );
    let strategy = &deploy["spec"]["strategy"];
    assert_eq!(strategy["type"], "RollingUpdate", "{strategy}");
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], 0, "{strategy}");
    assert_eq!(strategy["rollingUpdate"]["maxSurge"], 1, "{strategy}");

    let name = format!("{fullname}-leader-election");
    let role = find(docs, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no Role {name}"));
    assert_eq!(role["metadata"]["namespace"], namespace);
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                "verbs": ["get", "list", "watch", "create", "update", "patch"]}])
    );
    let binding = find(docs, "RoleBinding")
        .into_iter()
        .find(|r| r["metadata"]["name"] == name.as_str())
        .unwrap_or_else(|| panic!("no RoleBinding {name}"));
    assert_eq!(binding["metadata"]["namespace"], namespace);
    assert_eq!(binding["roleRef"]["name"], name.as_str());
    let sa = deploy["spec"]["template"]["spec"]["serviceAccountName"].clone();
    assert_eq!(binding["subjects"][0]["name"], sa);
    assert_eq!(binding["subjects"][0]["namespace"], namespace);
}

/// Held while a test here installs the CRDs (the harness replaces them, dropping Helm's
/// ownership metadata) or upgrades them with the chart.
static CRDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn kubectl(args: &[&str]) -> String {
    run(Command::new(tool("kubectl"))
        .args(args)
        .env("KUBECONFIG", kubeconfig()))
}

const CRD_NAMES: [&str; 4] = [
    "clustersnapshots.dbsnapshot.io",
    "snapshotcopies.dbsnapshot.io",
    "snapshotschedules.dbsnapshot.io",
    "awsaccounts.dbsnapshot.io",
];

/// A shell block of docs/upgrading.md: the one after the line `<!-- {marker}`.
fn doc_block(marker: &str) -> String {
    let doc = std::fs::read_to_string(root().join("docs/upgrading.md")).unwrap();
    let after = doc
        .split_once(&format!("<!-- {marker}"))
        .unwrap_or_else(|| panic!("no <!-- {marker} in docs/upgrading.md"))
        .1;
    let block = after.split_once("```sh\n").unwrap().1;
    block.split_once("```").unwrap().0.to_string()
}

/// Chart 0.1.0 (its CRDs in crds/, installed once by Helm and never upgraded) is
/// upgraded to this chart: after the documented adoption commands the upgrade takes the
/// CRDs over and changes them (the keep annotation, the chart's labels); an uninstall
/// leaves the CRDs and the objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_from_0_1_0_updates_the_crds_and_uninstalling_keeps_them() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let _crds = CRDS.lock().await;
    let h = Harness::with_aws("upgrade", "http://127.0.0.1:9").await;
    let old = root().join(format!(
        "target/it-logs/chart-0.1.0-{}",
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&old).unwrap();
    run(Command::new("bash")
        .arg("-c")
        .arg(format!(
            "git archive 960c18d charts/dbsnapshot-operator | tar -x -C '{}'",
            old.display()
        ))
        .current_dir(root()));
    let old_chart = old.join("charts/dbsnapshot-operator");
    assert!(
        std::fs::read_to_string(old_chart.join("Chart.yaml"))
            .unwrap()
            .contains("version: 0.1.0")
    );
    let release = format!("upg{:x}", rand::random::<u16>());
    let helm = |args: &[&str]| {
        Command::new(tool("helm"))
            .args(args)
            .args(["--namespace", &h.ns])
            .env("KUBECONFIG", kubeconfig())
            .output()
            .unwrap()
    };
    let out = helm(&[
        "install",
        &release,
        old_chart.to_str().unwrap(),
        "--server-side=false",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.create(json!({"metadata": {"name": "kept"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();

    let upgrade = || {
        helm(&[
            "upgrade",
            &release,
            chart().to_str().unwrap(),
            "--server-side=false",
            // The test bed's v1.20 API server does not know CEL rules in a CRD schema
            // (docs/upgrading.md).
            "--disable-openapi-validation",
            "--set",
            "aws.region=eu-west-1",
        ])
    };
    // Without the adoption, Helm refuses the CRDs it did not create.
    let out = upgrade();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ownership metadata"), "{stderr}");
    // The documented commands, for this release; then the upgrade. (Another test
    // binary's harness may replace the CRDs meanwhile, dropping the metadata: retried.)
    let adopt = doc_block("adopt-crds").replace(
        "release=dbsnapshot-operator namespace=dbsnapshot-system",
        &format!("release={release} namespace={}", h.ns),
    );
    assert!(adopt.contains(&format!("release={release}")), "{adopt}");
    let path = format!(
        "{}:{}",
        tool("kubectl").parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let mut attempt = 0;
    loop {
        run(Command::new("bash")
            .args(["-euo", "pipefail", "-c", &adopt])
            .env("PATH", &path)
            .env("KUBECONFIG", kubeconfig()));
        let out = upgrade();
        if out.status.success() {
            break;
        }
        attempt += 1;
        assert!(attempt < 3, "{}", String::from_utf8_lossy(&out.stderr));
    }
    let crds: Api<CustomResourceDefinition> = Api::all(h.client.clone());
    for name in CRD_NAMES {
        let crd = crds.get(name).await.unwrap();
        assert_eq!(
            crd.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("helm.sh/resource-policy"))
                .map(String::as_str),
            Some("keep"),
            "{name} was not upgraded"
        );
        assert_eq!(
            crd.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("helm.sh/chart"))
                .map(String::as_str),
            Some("dbsnapshot-operator-0.2.0"),
            "{name}"
        );
    }
    let history = String::from_utf8_lossy(&helm(&["history", &release]).stdout).into_owned();
    assert!(history.contains("dbsnapshot-operator-0.2.0"), "{history}");

    // What docs/upgrading.md shows before uninstalling.
    let listed = kubectl(&["get", "dbsnapshots", "-A"]);
    assert!(
        listed.contains("kept") && listed.contains(&h.ns),
        "{listed}"
    );
    let out = helm(&["uninstall", &release, "--wait=false"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in CRD_NAMES {
        assert!(
            crds.get_opt(name).await.unwrap().is_some(),
            "{name} was deleted"
        );
    }
    assert!(h.snapshots().get_opt("kept").await.unwrap().is_some());
    assert!(
        Command::new(tool("helm"))
            .args(["status", &release, "--namespace", &h.ns])
            .env("KUBECONFIG", kubeconfig())
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
    // Back to the test bed's CRDs (without this release's metadata).
    h.snapshots()
        .delete("kept", &Default::default())
        .await
        .unwrap();
    install_crds(&h.client).await;
    let _ = std::fs::remove_dir_all(&old);
}

/// The chart with two watched namespaces: the operator, with the chart's ServiceAccount
/// token and the Deployment's `--namespace` list, reconciles objects in both and never
/// touches a third namespace's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_watches_each_of_the_charts_namespaces_and_no_other() {
    let (addr, state, _task) = aws_emulator::start(0, Default::default()).await.unwrap();
    let url = format!("http://{addr}");
    let (mut a, mut b, c) = {
        let _crds = CRDS.lock().await;
        (
            Harness::with_aws("ns-a", &url).await,
            Harness::with_aws("ns-b", &url).await,
            Harness::with_aws("ns-c", &url).await,
        )
    };
    a.emulator = Some(state.clone());
    b.emulator = Some(state);
    seed_clusters(&a.aws).await;
    // Unique: the release makes cluster-scoped objects (the AWSAccounts ClusterRole).
    let release = &format!("multi{:x}", rand::random::<u16>());
    run(Command::new(tool("helm"))
        .args(["install", release])
        .arg(chart())
        .args(["--namespace", &a.ns, "--server-side=false"])
        .args(["--set", &format!("watchNamespaces={{{},{}}}", a.ns, b.ns)])
        .args(["--set", "crds.enabled=false"])
        .env("KUBECONFIG", kubeconfig()));
    let sa = format!("{release}-dbsnapshot-operator");
    let token = kubectl(&[
        "create",
        "token",
        &sa,
        "--namespace",
        &a.ns,
        "--duration",
        "1h",
    ]);
    let kc = kubeconfig_with_token(token.trim());
    let deployments: Api<Deployment> = Api::namespaced(a.client.clone(), &a.ns);
    let args = deployments
        .get(&sa)
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap_or_default();
    let namespaces = args
        .iter()
        .find_map(|a| a.strip_prefix("--namespace="))
        .expect("no --namespace in the Deployment")
        .to_string();
    assert_eq!(namespaces, format!("{},{}", a.ns, b.ns));
    let election: Vec<&str> = args
        .iter()
        .filter(|a| a.starts_with("--leader-election") || a.starts_with("--lease-"))
        .map(String::as_str)
        .collect();
    let pod = format!("{sa}-6c4d9f8b7-q8w2z");
    let operator = Operator::start_with_env(
        &namespaces,
        &url,
        &election,
        &kc,
        &format!("{}-multi", a.ns),
        &[("POD_NAME", &pod), ("POD_NAMESPACE", &a.ns)],
    );
    let spec = json!({"source": {"redshift": {"clusterIdentifier": "analytics"}}});
    for (h, name) in [(&a, "in-a"), (&b, "in-b"), (&c, "in-c")] {
        h.create(json!({"metadata": {"name": name}, "spec": spec}))
            .await
            .unwrap();
    }
    a.operator = Some(operator);
    a.wait_ready("in-a").await;
    b.wait_ready("in-b").await;
    // The third namespace's object: no finalizer, no status, nothing on AWS for it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let other = c.snapshots().get("in-c").await.unwrap();
    assert!(other.metadata.finalizers.unwrap_or_default().is_empty());
    assert!(other.status.is_none(), "{:?}", other.status);
    assert_eq!(a.calls()["calls"]["redshift"]["CreateClusterSnapshot"], 2);
    for (h, name) in [(&a, "in-a"), (&b, "in-b")] {
        h.snapshots()
            .delete(name, &Default::default())
            .await
            .unwrap();
        h.wait_gone(name).await;
    }
    let log = std::fs::read_to_string(&a.operator.as_ref().unwrap().log).unwrap();
    assert!(
        !log.contains("forbidden"),
        "a permission was missing:\n{log}"
    );
    assert!(log.contains(&a.ns) && log.contains(&b.ns), "{log}");
}

fn kubeconfig_with_token(token: &str) -> PathBuf {
    let admin: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(kubeconfig()).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let kc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "testbed", "cluster": cluster}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "testbed", "user": "operator"}}],
        "current-context": "operator",
    });
    let path = root().join(format!(
        "target/it-logs/kubeconfig-{}",
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_saphyr::to_string(&kc).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_is_enough_and_a_missing_permission_is_reported() {
    let (addr, state, _task) = aws_emulator::start(0, Default::default()).await.unwrap();
    let url = format!("http://{addr}");
    let mut h = {
        let _crds = CRDS.lock().await;
        Harness::with_aws("chart", &url).await
    };
    h.emulator = Some(state);
    seed_clusters(&h.aws).await;
    // Unique: the release makes cluster-scoped objects (the AWSAccounts ClusterRole).
    let release = &format!("snap{:x}", rand::random::<u16>());
    run(Command::new(tool("helm"))
        .args(["install", release])
        .arg(chart())
        .args(["--namespace", &h.ns, "--server-side=false"])
        .args(["--set", &format!("watchNamespaces[0]={}", h.ns)])
        // The harness installed the CRDs.
        .args(["--set", "crds.enabled=false"])
        .env("KUBECONFIG", kubeconfig()));
    let sa = format!("{release}-dbsnapshot-operator");
    let token = run(Command::new(tool("kubectl"))
        .args([
            "create",
            "token",
            &sa,
            "--namespace",
            &h.ns,
            "--duration",
            "1h",
        ])
        .env("KUBECONFIG", kubeconfig()));
    let kc = kubeconfig_with_token(token.trim());

    // The operator with exactly the chart's permissions and the Deployment's
    // leader-election arguments, as its pod would run.
    let deployments: Api<Deployment> = Api::namespaced(h.client.clone(), &h.ns);
    let deployment = deployments.get(&sa).await.unwrap();
    let election: Vec<String> = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.starts_with("--leader-election") || a.starts_with("--lease-"))
        .collect();
    assert!(
        election.iter().any(|a| a == "--leader-election"),
        "the Deployment does not elect a leader: {election:?}"
    );
    let extra: Vec<&str> = election.iter().map(String::as_str).collect();
    let pod = format!("{sa}-5d8f7c9b6-x2x4q");
    let mut operator = Operator::start_with_env(
        &h.ns,
        &url,
        &extra,
        &kc,
        &h.ns,
        &[("POD_NAME", &pod), ("POD_NAMESPACE", &h.ns)],
    );
    h.create(json!({"metadata": {"name": "rbac"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}, "sharedWith": ["111111111111"], "tags": {"t": "1"}}}))
        .await
        .unwrap();
    h.wait_ready("rbac").await;
    h.snapshots()
        .delete("rbac", &Default::default())
        .await
        .unwrap();
    h.wait_gone("rbac").await;
    let log = std::fs::read_to_string(&operator.log).unwrap();
    assert!(
        !log.contains("forbidden"),
        "a permission was missing:\n{log}"
    );
    // It reconciled as the holder of the release's Lease.
    let leases: Api<Lease> = Api::namespaced(h.client.clone(), &h.ns);
    let holder = |lease: Lease| lease.spec.and_then(|s| s.holder_identity);
    assert_eq!(
        holder(leases.get(&sa).await.unwrap()).as_deref(),
        Some(pod.as_str())
    );

    // Take away patch on the objects (needed to add the finalizer).
    let roles: Api<Role> = Api::namespaced(h.client.clone(), &h.ns);
    let mut role = roles.get(&sa).await.unwrap();
    for rule in role.rules.as_mut().unwrap() {
        if rule
            .resources
            .as_ref()
            .is_some_and(|r| r.contains(&"clustersnapshots".to_string()))
        {
            rule.verbs.retain(|v| v != "patch");
        }
    }
    roles
        .patch(&sa, &PatchParams::default(), &Patch::Merge(&role))
        .await
        .unwrap();
    h.create(json!({"metadata": {"name": "denied"}, "spec": {"source": {"redshift": {"clusterIdentifier": "analytics"}}}}))
        .await
        .unwrap();
    let s = h
        .wait_for(
            "denied",
            Duration::from_secs(30),
            |_| {},
            |s| stalled_reason(s).is_some(),
        )
        .await;
    assert_eq!(stalled_reason(&s).as_deref(), Some("Forbidden"));
    let msg = &condition(&s, "Stalled").unwrap().message;
    assert!(
        msg.contains("patch") && msg.contains("clustersnapshots"),
        "{msg}"
    );
    let log = std::fs::read_to_string(&operator.log).unwrap();
    assert!(log.contains("not allowed"), "nothing in the log:\n{log}");
    // Nothing was created on AWS for it.
    assert_eq!(h.calls()["calls"]["redshift"]["CreateClusterSnapshot"], 1);

    // Stopped (as a pod is, on a rollout), it hands the Lease back.
    let term = Command::new("kill")
        .args(["-TERM", &operator.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = operator.try_wait() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the operator did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    assert_eq!(holder(leases.get(&sa).await.unwrap()), None);
}

/// The README's quickstart `helm install` command, exactly as written (placeholders
/// filled in), renders (helm template takes the same flags).
#[test]
fn the_readme_quickstart_helm_command_renders() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut lines = readme.lines().skip_while(|l| {
        !l.trim_start()
            .starts_with("helm install dbsnapshot-operator")
    });
    let mut command = String::new();
    for line in lines.by_ref() {
        let l = line.trim();
        command.push_str(l.trim_end_matches('\\'));
        command.push(' ');
        if !l.ends_with('\\') {
            break;
        }
    }
    assert!(
        command.starts_with("helm install dbsnapshot-operator"),
        "{command}"
    );
    let command = command
        .replacen("helm install", "helm template", 1)
        .replace("<account>", "111111111111")
        .replace("<region>", "us-east-1");
    let helm_dir = tool("helm").parent().unwrap().to_path_buf();
    let out = Command::new("bash")
        .arg("-c")
        .arg(&command)
        .current_dir(root())
        .env(
            "PATH",
            format!("{}:{}", helm_dir.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{command}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout);
    assert!(
        rendered.contains(
            "eks.amazonaws.com/role-arn: arn:aws:iam::111111111111:role/dbsnapshot-operator"
        ),
        "{rendered}"
    );
    assert!(rendered.contains("--region=us-east-1"));
    assert!(rendered.contains("name: dbsnapshot-operator\n"));
}

/// The chart's README: its values table, generated from values.yaml's `# --` comments
/// (as helm-docs does): each documented key with its type and default.
fn chart_readme() -> String {
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    let mut rows = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut doc: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(d) = trimmed.strip_prefix("# --") {
            doc = Some(d.trim().to_string());
            continue;
        }
        if let Some(more) = trimmed.strip_prefix('#') {
            if let Some(d) = &mut doc {
                d.push(' ');
                d.push_str(more.trim());
            }
            continue;
        }
        let key = trimmed
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty() && !k.starts_with('-') && !k.contains(' '));
        let Some(key) = key else {
            doc = None;
            continue;
        };
        path.retain(|(i, _)| *i < indent);
        path.push((indent, key.to_string()));
        if let Some(description) = doc.take() {
            let keys: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
            let value = keys.iter().fold(&values, |v, k| &v[*k]);
            let kind = match value {
                Value::Null => "string",
                Value::Bool(_) => "bool",
                Value::Number(n) if n.is_f64() => "float",
                Value::Number(_) => "int",
                Value::String(_) => "string",
                Value::Array(_) => "list",
                Value::Object(_) => "object",
            };
            rows.push(format!(
                "| `{}` | {kind} | `{}` | {} |",
                keys.join("."),
                serde_json::to_string(value).unwrap(),
                description.replace('|', "\\|")
            ));
        }
    }
    format!(
        "# dbsnapshot-operator\n\n\
         Declare AWS database snapshots (Redshift, DocumentDB, ElastiCache) as Kubernetes \
         objects. See the [project README](../../README.md) for the quickstart, and \
         [docs/upgrading.md](../../docs/upgrading.md) before upgrading or uninstalling.\n\n\
         ```sh\n\
         helm install dbsnapshot-operator charts/dbsnapshot-operator \\\n  \
         --namespace dbsnapshot-system --create-namespace \\\n  \
         --set aws.region=<region>\n\
         helm test dbsnapshot-operator --namespace dbsnapshot-system   # GET /readyz through the metrics Service\n\
         ```\n\n\
         ## Values\n\n\
         Generated from values.yaml by `UPDATE_DOCS=1 cargo test --test chart \
         the_chart_readme_matches_values_yaml`: edit the `# --` comments there.\n\n\
         | Key | Type | Default | Description |\n\
         |-----|------|---------|-------------|\n\
         {}\n",
        rows.join("\n")
    )
}

#[test]
fn the_chart_readme_matches_values_yaml() {
    let path = chart().join("README.md");
    let generated = chart_readme();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "charts/dbsnapshot-operator/README.md is out of date: UPDATE_DOCS=1 cargo test --test chart the_chart_readme_matches_values_yaml"
    );
    for key in [
        "aws.region",
        "aws.retryMode",
        "crds.keep",
        "watchNamespaces",
        "defaults.deletionPolicy",
        "defaults.tags",
        "podDisruptionBudget.enabled",
        "extraVolumes",
        "securityContext",
    ] {
        assert!(
            generated.contains(&format!("| `{key}` |")),
            "{key} is not documented"
        );
    }
}
