//! boto3, a client nobody here wrote, drives every emulated action against the
//! emulator binary (tests/aws-emulator/boto3_check.py).

mod common;

use common::process::{emulator_binary, venv};
use std::process::Command;

#[test]
fn boto3_accepts_every_emulated_action() {
    let emu = emulator_binary(&["--snapshot-seconds", "1"]);
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
    assert!(stdout.contains("7 passed, 0 failed"), "{stdout}");
}
