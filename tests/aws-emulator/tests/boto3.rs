//! boto3, a client nobody here wrote, drives every emulated action against the
//! emulator binary (tests/aws-emulator/boto3_check.py).

mod common;

use common::process::{emulator_binary, venv};
use std::process::Command;

#[test]
fn boto3_accepts_every_emulated_action() {
    let emu = emulator_binary(&[
        "--snapshot-seconds",
        "1",
        "--role",
        "arn:aws:iam::210987654321:role/from-flag=123456789012",
    ]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/boto3_check.py");
    let out = Command::new(venv().join("bin/python"))
        .arg(script)
        .arg(&emu.url)
        .output()
        .expect("run boto3_check.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "boto3 checks failed:\n{stdout}\n{stderr}"
    );
    // Every check in the script's CHECKS list ran and passed (the list only grows).
    let script_text = std::fs::read_to_string(script).expect("read boto3_check.py");
    let listed = script_text
        .split("CHECKS = [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .map(|list| list.split(',').filter(|c| !c.trim().is_empty()).count())
        .expect("boto3_check.py has a CHECKS list");
    assert!(listed >= 11, "{listed} checks listed");
    assert!(
        stdout.contains(&format!("boto3: {listed} passed, 0 failed")),
        "{stdout}"
    );
}

/// Faults set by flag at start-up are in force and read back through the admin API.
#[tokio::test]
async fn fault_flags_take_effect() {
    let emu = emulator_binary(&[
        "--throttle-fraction",
        "1",
        "--latency-ms",
        "5",
        "--account-rps",
        "40",
        "--snapshot-seconds",
        "7",
    ]);
    let faults: serde_json::Value = reqwest::get(format!("{}/_emulator/faults", emu.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["throttleFraction"], 1.0);
    assert_eq!(faults["latencyMs"], 5);
    assert_eq!(faults["accountRps"], 40.0);
    let settings: serde_json::Value = reqwest::get(format!("{}/_emulator/settings", emu.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["snapshotSeconds"], 7.0);
    let rs = aws_sdk_redshift::Client::new(
        &common::config_for(
            &emu.url,
            "us-east-1",
            common::KEY,
            aws_config::retry::RetryConfig::disabled(),
        )
        .await,
    );
    assert_eq!(
        common::code(rs.describe_clusters().send().await),
        "Throttling"
    );

    let failing = emulator_binary(&["--error-fraction", "1"]);
    let rs = aws_sdk_redshift::Client::new(
        &common::config_for(
            &failing.url,
            "us-east-1",
            common::KEY,
            aws_config::retry::RetryConfig::disabled(),
        )
        .await,
    );
    assert_eq!(
        common::code(rs.describe_clusters().send().await),
        "InternalFailure"
    );
}
