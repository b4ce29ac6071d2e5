//! The test bed scripts for real: `up.sh` brings up etcd, kube-apiserver v1.20.2 and
//! the emulator (or moto), is idempotent, writes a working kubeconfig and env.sh;
//! `down.sh` stops exactly those processes and removes their data.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn script(name: &str, state: &Path, args: &[&str]) -> (bool, String, String) {
    script_with(name, state, args, env!("CARGO_BIN_EXE_aws-emulator"))
}

fn script_with(name: &str, state: &Path, args: &[&str], emulator: &str) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg(root().join("tests/testbed").join(name))
        .args(args)
        .env("TESTBED_STATE", state)
        .env("EMULATOR_BIN", emulator)
        .output()
        .expect("run script");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `sh -c CMD` with env.sh sourced.
fn with_env(state: &Path, cmd: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(". {}/env.sh && {cmd}", state.display()))
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{cmd} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn pids(state: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(state.join("run/pids"))
        .expect("pids file")
        .lines()
        .map(|l| {
            let (name, pid) = l.split_once(' ').expect("name pid");
            (name.to_string(), pid.parse().expect("pid"))
        })
        .collect()
}

fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|s| s.trim_start())
            .is_some_and(|s| !s.starts_with('Z')),
        Err(_) => false,
    }
}

/// Processes whose command line mentions the state directory (etcd's data dir,
/// the apiserver's certs and tokens, ...).
fn processes_using(state: &Path) -> Vec<u32> {
    // With the separator, so that another test's state directory whose name merely
    // starts the same way does not match.
    let needle = format!("{}/", state.to_string_lossy());
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
        .filter(|pid| running(*pid))
        .collect()
}

fn up_and_down(state: &Path, mode: &[&str], aws: &str) {
    let (ok, stdout, stderr) = script("up.sh", state, mode);
    assert!(ok, "up.sh {mode:?} failed:\n{stdout}\n{stderr}");
    for var in [
        "KUBECONFIG",
        "AWS_ENDPOINT_URL",
        "AWS_REGION=us-east-1",
        "AWS_ACCESS_KEY_ID",
    ] {
        assert!(
            stdout.contains(&format!("export {var}")),
            "{var} missing:\n{stdout}"
        );
    }
    assert_eq!(with_env(state, "kubectl get --raw /readyz"), "ok");
    let version = with_env(state, "kubectl get --raw /version");
    assert!(version.contains("\"gitVersion\": \"v1.20.2\""), "{version}");
    // RBAC is on and the admin token is in system:masters.
    let can = with_env(state, "kubectl auth can-i '*' '*' --all-namespaces");
    assert_eq!(can, "yes");
    assert_eq!(with_env(state, "echo $TESTBED_AWS"), aws);
    let probe = if aws == "moto" {
        "/moto-api/"
    } else {
        "/_emulator/health"
    };
    with_env(
        state,
        &format!("curl -sf \"$AWS_ENDPOINT_URL{probe}\" >/dev/null"),
    );
    let started = pids(state);
    assert_eq!(started.len(), 3, "{started:?}");
    assert!(started.iter().all(|(_, p)| running(*p)));

    // Idempotent: a second up.sh reuses what runs.
    let (ok, again, stderr) = script("up.sh", state, mode);
    assert!(ok, "second up.sh failed: {stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    assert_eq!(again, stdout);
    assert_eq!(pids(state), started);

    let (ok, stdout, stderr) = script("down.sh", state, &[]);
    assert!(ok, "down.sh failed:\n{stdout}\n{stderr}");
    for (name, pid) in &started {
        assert!(!running(*pid), "{name} ({pid}) still runs after down.sh");
    }
    assert!(
        processes_using(state).is_empty(),
        "left running: {:?}",
        processes_using(state)
    );
    assert!(!state.join("run").exists(), "temporary data left behind");
    assert!(!state.join("env.sh").exists());
}

#[test]
fn up_starts_a_real_apiserver_and_aws_and_down_stops_exactly_them() {
    let state = root().join("target/testbed-selftest");
    let _ = std::fs::remove_dir_all(&state);
    up_and_down(&state, &[], "emulator");
    up_and_down(&state, &["--moto"], "moto");
    // down.sh with nothing up is harmless.
    let (ok, _, stderr) = script("down.sh", &state, &[]);
    assert!(ok, "{stderr}");
}

#[test]
fn a_failed_step_is_named_with_its_log_and_leaves_nothing_running() {
    let state = root().join("target/failing-testbed-selftest");
    let _ = std::fs::remove_dir_all(&state);

    let (ok, _, stderr) = script_with("up.sh", &state, &[], "/nonexistent/aws-emulator");
    assert!(!ok);
    assert!(
        stderr.contains("step failed: build aws-emulator"),
        "{stderr}"
    );
    assert!(stderr.contains("is not an executable file"), "{stderr}");

    // /bin/false starts and exits at once: etcd and kube-apiserver are already up
    // when the AWS endpoint step fails, and must be stopped again.
    let (ok, _, stderr) = script_with("up.sh", &state, &[], "/bin/false");
    assert!(!ok);
    assert!(
        stderr.contains("step failed: start the AWS endpoint"),
        "{stderr}"
    );
    assert!(stderr.contains("exited before it was ready"), "{stderr}");
    assert!(stderr.contains("last 40 lines of"), "{stderr}");
    assert!(stderr.contains("stopped kube-apiserver"), "{stderr}");
    assert!(stderr.contains("stopped etcd"), "{stderr}");
    assert!(
        processes_using(&state).is_empty(),
        "left running: {:?}",
        processes_using(&state)
    );
    assert!(!state.join("run").exists());
}
