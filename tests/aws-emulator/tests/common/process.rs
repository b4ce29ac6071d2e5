//! Child processes for tests (the emulator binary, moto's server), stopped by PID when
//! dropped or when the test process is stopped by a signal (`aws_emulator::children`), and the Python virtualenv the test bed installs.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use aws_emulator::children::Child;
use std::time::{Duration, Instant};

pub struct Proc {
    pub child: Child,
    pub url: String,
}

/// The virtualenv with boto3 and moto (tests/testbed/python-venv.sh makes it).
pub fn venv() -> PathBuf {
    let cache = std::env::var_os("DBSNAPSHOT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/dbsnapshot-operator")
        });
    let venv = std::env::var_os("DBSNAPSHOT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("venv"));
    assert!(
        venv.join("bin/python").exists(),
        "no Python virtualenv at {}: run tests/testbed/python-venv.sh (the test command does)",
        venv.display()
    );
    venv
}

/// Starts the aws-emulator binary on a kernel-chosen loopback port.
pub fn emulator_binary(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aws-emulator"))
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start aws-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("listening address")
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    Proc {
        child: Child::new(child),
        url,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts moto's server from the virtualenv and waits until it answers.
pub fn moto_server() -> Proc {
    let port = free_port();
    let child = Command::new(venv().join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let proc = Proc {
        child: Child::new(child),
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    proc
}
