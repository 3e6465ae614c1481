//! The real `llmtap` binary for tests that read its logs: a clean environment, stderr to a
//! file, its whole process group killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_llmtap");

/// llmtap started by a test (in a process group of its own, as [`command`] sets up): on drop
/// its whole group is killed at once, so a failing assertion never leaves it, or anything it
/// started (`mcp-stdio` children), running. Tests that check graceful shutdown send SIGTERM
/// themselves; here speed matters more than the drain.
pub struct Proc(pub Child);

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        Proc(super::process::own_group(cmd).spawn().expect("llmtap starts"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pgid = self.0.id();
        // SAFETY: kill(2) on the process group this test created; no memory is involved.
        unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
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
    super::process::own_group(&mut c);
    // tests/run's mark, by which it finds anything a test left running.
    if let Ok(mark) = std::env::var("TAP_TEST_RUN") {
        c.env("TAP_TEST_RUN", mark);
    }
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
