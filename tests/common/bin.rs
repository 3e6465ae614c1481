//! The real `llmtap` binary, the one way tests start it: a clean environment, stderr to a
//! file, a process group of its own stopped on drop ([`Proc`]), `/healthz` awaited.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_llmtap");

/// llmtap started by a test: the one process guard ([`super::process::Service`], in a
/// process group of its own as [`command`] sets up). On drop its whole group gets SIGTERM,
/// then SIGKILL after a short grace, so a failing assertion never leaves it, or anything it
/// started (`mcp-stdio` children), running. Tests of graceful shutdown send SIGTERM and wait
/// for the exit themselves.
pub use super::process::Service as Proc;

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
    let proc = Proc::spawn(&mut command(&all, envs, log)).expect("llmtap starts");
    let base = format!("http://{listen}");
    wait_healthy(&base, log).await;
    (proc, base)
}

/// Waits (bounded: 5 s) until llmtap at `base` answers `/healthz` with 200; fails the test
/// with its log otherwise.
pub async fn wait_healthy(base: &str, log: &Path) {
    let c = super::client();
    for _ in 0..200 {
        if let Ok(r) = c.get(format!("{base}/healthz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "llmtap at {base} did not become healthy in 5 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Starts the binary with its stdout piped (the demo's banner and console spans): the
/// process, and its stdout's lines as they come (read on a thread of their own).
pub fn spawn_reading_stdout(
    args: &[&str],
    envs: &[(&str, &str)],
    log: &Path,
) -> (Proc, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use std::io::BufRead;
    let mut proc =
        Proc::spawn(command(args, envs, log).stdout(Stdio::piped())).expect("llmtap starts");
    let stdout = proc.0.stdout.take().expect("piped stdout");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (proc, rx)
}

/// Runs the binary to completion with a clean environment (PATH kept): its exit status,
/// stdout and stderr (for the one-line errors of a bad start).
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("llmtap runs")
}
