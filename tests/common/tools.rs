//! The external programs tests drive (Redis, nginx, Prometheus, promtool, node, ...): found
//! on PATH or where Debian installs daemons, a skip with a note when missing, or a failure
//! under `tests/run` (which installs them and sets `LLMTAP_REQUIRE_TOOLS=1`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::Service;

const REQUIRE: &str = "LLMTAP_REQUIRE_TOOLS";

/// `name` on PATH, or in `/usr/sbin` or `/usr/bin` (Debian puts `nginx` and `redis-server`'s
/// siblings in sbin, which a user's PATH may lack); `None` without a word.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// [`find_tool`], or, when it is missing, a failure under `tests/run` and otherwise a note
/// that the test skips (the caller returns on `None`).
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = find_tool(name);
    if found.is_none() {
        missing(&format!("`{name}` is not installed"));
    }
    found
}

/// A directory `tests/run` sets up and names in `var` (e.g. the Node example's
/// `node_modules`); missing is a skip or a failure as for [`tool`].
pub fn tool_dir(var: &str) -> Option<PathBuf> {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.is_dir() => Some(p),
        _ => {
            missing(&format!("{var} is not set up"));
            None
        }
    }
}

fn missing(what: &str) {
    if std::env::var_os(REQUIRE).is_some() {
        panic!("{what}; tests/run installs it");
    }
    eprintln!("skipping: {what} (run via tests/run)");
}

/// `redis-server` (at `bin`) on 127.0.0.1:`port` with no persistence, its files in `dir`,
/// once it accepts connections (bounded: 2 s); stopped with the guard.
pub fn start_redis(bin: &Path, port: u16, dir: &Path) -> Service {
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let proc = Service::spawn(&mut cmd).expect("redis-server did not start");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return proc;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server not listening on {port} after 2 s");
}
