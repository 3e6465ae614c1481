//! The real `llmtap` binary for tests that read its logs: a clean environment, stderr to a
//! file, killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_llmtap");

/// A child process killed on drop, so a failing assertion never leaves it running.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary with a clean environment (PATH and NO_PROXY kept), stderr to `log`.
pub fn command(args: &[&str], envs: &[(&str, &str)], log: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

/// Starts the binary on a free port and waits (bounded) until `/healthz` answers.
pub async fn start(args: &[&str], envs: &[(&str, &str)], log: &Path) -> (Proc, String) {
    let listen = format!("127.0.0.1:{}", super::free_port());
    let mut all = vec!["--listen", listen.as_str()];
    all.extend_from_slice(args);
    let proc = Proc(command(&all, envs, log).spawn().unwrap());
    let base = format!("http://{listen}");
    let c = super::client();
    for _ in 0..200 {
        if let Ok(r) = c.get(format!("{base}/healthz")).send().await {
            if r.status() == 200 {
                return (proc, base);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "llmtap at {base} did not become healthy in 5 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}
