//! Processes a test starts, each in a process group of its own and stopped as a whole group,
//! so a server's workers or a browser's renderers never outlive the test (an nginx master
//! killed alone left its worker listening, orphaned, after every run).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

/// Puts the process `cmd` will start into a new process group led by itself.
pub fn own_group(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0)
}

/// The same for a tokio command.
pub fn own_group_tokio(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    cmd.process_group(0)
}

fn signal_group(pgid: u32, signal: libc::c_int) -> bool {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) == 0 }
}

/// Whether any process of the group still runs. A zombie does not count: it has exited and
/// only waits for its parent (tokio, for a tokio child) to reap it, which may happen only
/// after the guard returns.
pub fn group_alive(pgid: u32) -> bool {
    if !signal_group(pgid, 0) {
        return false;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return true;
    };
    procs.flatten().any(|p| {
        let Ok(stat) = std::fs::read_to_string(p.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
        pgrp == Some(pgid) && state != Some("Z")
    })
}

/// SIGTERM to the whole group, up to `grace` for it to go (reaping the leader through
/// `reap`), then SIGKILL to whatever is left.
pub fn stop_group(pgid: u32, grace: Duration, mut reap: impl FnMut()) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap();
        if !group_alive(pgid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, libc::SIGKILL);
    reap();
}

/// The process guard every test uses for what it starts (llmtap as [`super::bin::Proc`],
/// servers, browsers), started with [`own_group`]: on drop its group gets SIGTERM, 3 s to
/// stop, then SIGKILL.
pub struct Service(pub Child);

impl Service {
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Service> {
        own_group(cmd).spawn().map(Service)
    }

    /// Sends `signal` (`libc::SIGTERM`, `libc::SIGHUP`, ...) to the process itself, not its
    /// group; fails the test when it cannot be sent.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child this guard owns; no memory is involved.
        let sent = unsafe { libc::kill(self.0.id() as libc::pid_t, signal) == 0 };
        assert!(sent, "signal {signal} to {}", self.0.id());
    }

    /// Waits (bounded by `timeout`) until a GET of `url` answers 2xx; fails the test, with
    /// the text of `log`, when the process exits first or the time runs out. `what` names
    /// the process in the message.
    pub async fn wait_ready(&mut self, what: &str, url: &str, timeout: Duration, log: &Path) {
        let log_text = || std::fs::read_to_string(log).unwrap_or_default();
        let deadline = tokio::time::Instant::now() + timeout;
        let client = super::client();
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                panic!("{what} exited ({status}):\n{}", log_text());
            }
            let ready = client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what} not ready at {url} in {timeout:?}:\n{}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let pgid = self.0.id();
        let child = &mut self.0;
        stop_group(pgid, Duration::from_secs(3), || {
            let _ = child.try_wait();
        });
    }
}

/// The group of a child started with [`own_group_tokio`] (tokio reaps the leader itself):
/// stopped like a [`Service`] on drop.
pub struct GroupGuard(pub u32);

impl GroupGuard {
    pub fn of(child: &tokio::process::Child) -> Option<GroupGuard> {
        child.id().map(GroupGuard)
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        stop_group(self.0, Duration::from_secs(3), || {});
    }
}
