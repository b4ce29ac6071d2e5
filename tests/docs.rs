//! Documentation that must match the code: the generated API reference, every example
//! accepted by the API server (server-side dry run), and the README's flag table.

mod common;

use std::process::Command;

use common::*;

#[test]
fn the_api_reference_matches_the_crds() {
    let path = root().join("docs/api-reference.md");
    let generated = dbsnapshot_operator::api::reference::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/api-reference.md is out of date: UPDATE_DOCS=1 cargo test --test docs"
    );
    for field in [
        "spec.source.redshift.clusterIdentifier",
        "spec.sharedWith",
        "status.conditions",
        "spec.targetBucket",
    ] {
        assert!(generated.contains(&format!("`{field}`")), "{field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_passes_a_server_side_dry_run() {
    let client = client().await;
    install_crds(&client).await;
    let ns = format!("it-examples-{:06x}", rand::random::<u32>() & 0xff_ffff);
    create_namespace(&client, &ns).await;
    let kubectl = root().join("target/testbed/bin/kubectl");
    if !kubectl.exists() {
        assert!(
            Command::new("bash")
                .arg(root().join("tests/testbed/install-helm-kubectl.sh"))
                .arg(root().join("target/testbed/bin"))
                .status()
                .unwrap()
                .success()
        );
    }
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let out = Command::new(&kubectl)
            .args(["apply", "--dry-run=server", "-n", &ns, "-f"])
            .arg(&path)
            .env("KUBECONFIG", kubeconfig())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("(server dry run)"));
        n += 1;
    }
    assert!(n >= 6, "only {n} examples");
}

#[test]
fn the_readme_documents_every_flag_of_run() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_dbsnapshot-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let flags: Vec<&str> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| *w != "--help" && *w != "--version")
        .collect();
    assert!(flags.contains(&"--polling"), "{help}");
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    for flag in flags {
        assert!(
            readme.contains(&format!("`{flag}`")),
            "README.md does not document {flag}"
        );
    }
}
