//! The Helm chart: it lints and renders as documented, carries the same CRDs as
//! `crds/`, and (installed into the test bed) its RBAC is exactly enough: the operator,
//! running with the chart's ServiceAccount token, takes a ClusterSnapshot through its
//! whole life as the holder of the release's Lease (leader election is always on), and
//! without one permission it says so in its log and a condition.

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
    let bin = root().join("target/testbed/bin");
    if !bin.join(name).exists() {
        let ok = Command::new("bash")
            .arg(root().join("tests/testbed/install-helm-kubectl.sh"))
            .arg(&bin)
            .status()
            .expect("install helm and kubectl")
            .success();
        assert!(ok, "could not install helm and kubectl");
    }
    bin.join(name)
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
        .filter_map(|doc| serde_yaml_ng::from_str::<Value>(doc).ok())
        .filter(|v| v.is_object())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let a = std::fs::read_to_string(root().join("crds/dbsnapshot.io.yaml")).unwrap();
    let b = std::fs::read_to_string(chart().join("crds/dbsnapshot.io.yaml")).unwrap();
    assert!(
        a == b,
        "charts/dbsnapshot-operator/crds/ differs from crds/: copy crds/dbsnapshot.io.yaml into the chart"
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
        "region=eu-west-1",
    ]);
    let sa = find(&docs, "ServiceAccount")[0];
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111111111111:role/snapshots"
    );
    let role = find(&docs, "ClusterRole")[0];
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
    assert_eq!(find(&docs, "ClusterRoleBinding").len(), 1);
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

    // One watched namespace: a Role there instead of a ClusterRole.
    let docs = render(&["--set", "watchNamespaces[0]=data"]);
    assert!(find(&docs, "ClusterRole").is_empty());
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

    // The values schema refuses what the operator cannot do.
    let bad = Command::new(tool("helm"))
        .args(["template", "rel"])
        .arg(chart())
        .args(["--set", "watchNamespaces={a,b}"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("watchNamespaces"));
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

fn kubeconfig_with_token(token: &str) -> PathBuf {
    let admin: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(kubeconfig()).unwrap()).unwrap();
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
    std::fs::write(&path, serde_yaml_ng::to_string(&kc).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_is_enough_and_a_missing_permission_is_reported() {
    let (addr, state, _task) = aws_emulator::start(0, Default::default()).await.unwrap();
    let url = format!("http://{addr}");
    let mut h = Harness::with_aws("chart", &url).await;
    h.emulator = Some(state);
    seed_clusters(&h.aws).await;
    let release = "snap";
    run(Command::new(tool("helm"))
        .args(["install", release])
        .arg(chart())
        .args(["--namespace", &h.ns, "--server-side=false"])
        .args(["--set", &format!("watchNamespaces[0]={}", h.ns)])
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
