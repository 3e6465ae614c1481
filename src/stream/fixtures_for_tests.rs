//! Fixture files for the stream unit tests. Our own recordings in `tests/fixtures/` are always
//! there; the real provider recordings in `../shared/fixtures/providers/` exist only beside
//! our own checkouts, so tests walk them when present and say so when not. Setting
//! `LLMTAP_REQUIRE_SHARED_FIXTURES=1` (CI does) turns their absence into a failure.

use std::path::{Path, PathBuf};

/// The environment variable that makes the shared recordings mandatory.
pub(crate) const REQUIRE_SHARED: &str = "LLMTAP_REQUIRE_SHARED_FIXTURES";

fn own_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One of our own fixture files, by name.
pub(crate) fn own(name: &str) -> Vec<u8> {
    let path = own_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The shared provider recordings' folder, or `None` (after one line on stderr) when this
/// checkout has none beside it. Panics instead when `LLMTAP_REQUIRE_SHARED_FIXTURES=1`.
pub(crate) fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/providers");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var(REQUIRE_SHARED).is_ok_and(|v| v == "1") {
        panic!(
            "{REQUIRE_SHARED}=1 but the shared provider recordings are missing: {} is not a directory",
            dir.display()
        );
    }
    eprintln!(
        "skipping the shared provider recordings: {} not found (only our tests/fixtures were walked; set {REQUIRE_SHARED}=1 to make this a failure)",
        dir.display()
    );
    None
}

/// The `.sse` files of a folder, sorted by name, as (name, bytes).
fn sse_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .filter(|n| n.ends_with(".sse"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let path = dir.join(&n);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (n, bytes)
        })
        .collect()
}

/// Every SSE fixture: all of ours, then (prefixed `shared/`) the provider recordings when
/// present.
pub(crate) fn all_sse() -> Vec<(String, Vec<u8>)> {
    let mut out = sse_files(&own_dir());
    assert!(
        out.len() >= 18,
        "our SSE fixtures are missing: {:?}",
        out.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    if let Some(dir) = shared_dir() {
        let shared = sse_files(&dir);
        assert!(
            shared.len() >= 20,
            "{}: provider recordings missing ({} .sse files)",
            dir.display(),
            shared.len()
        );
        out.extend(shared.into_iter().map(|(n, s)| (format!("shared/{n}"), s)));
    }
    out
}
