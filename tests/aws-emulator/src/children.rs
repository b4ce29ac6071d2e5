//! Child processes that tests and benchmarks start (the operator, the emulator binary,
//! moto's server). A [`Child`] is killed by PID when dropped, and also when the process
//! that started it is stopped by SIGINT or SIGTERM (Ctrl-C, a timeout), when `Drop` does
//! not run: a watcher thread then kills every live child and exits.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Mutex, Once};

static LIVE: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A started process, killed (SIGKILL) and reaped when dropped.
pub struct Child(std::process::Child);

impl Child {
    pub fn new(child: std::process::Child) -> Self {
        static WATCHER: Once = Once::new();
        WATCHER.call_once(|| {
            std::thread::spawn(watch_signals);
        });
        LIVE.lock().unwrap().insert(child.id());
        Child(child)
    }

    /// SIGKILL, then wait for it.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        // Until it is waited for its PID cannot be reused, so a late signal kills
        // nothing else.
        LIVE.lock().unwrap().remove(&self.0.id());
        let _ = self.0.wait();
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

fn watch_signals() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("signal watcher runtime");
    let code = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = int.recv() => 130,
            _ = term.recv() => 143,
        }
    });
    let pids: Vec<u32> = LIVE.lock().unwrap().iter().copied().collect();
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    eprintln!(
        "stopped by a signal; killed {} child process(es)",
        pids.len()
    );
    std::process::exit(code);
}
