//! The layering check (issue 25, point 7): every `crate::…` (and `super::…`) path in `src/`
//! must point down the declared layers below, and no two modules may reach each other in a
//! circle. Today's code breaks both in places that are being moved; those imports are listed
//! in [`BASELINE`], which can only shrink: an import that is not there fails, and so does an
//! entry that no longer breaks anything.
//!
//! What counts as an import: a path starting with `crate::` (or `llmtap::` in `main.rs`, the
//! binary), or `super::`, anywhere in the code outside comments, strings and `#[cfg(test)]`
//! items (tests may reach for any helper). A path names the deepest module it walks through:
//! `crate::telemetry::spans::build` is an import of `telemetry::spans`; a name the crate root
//! re-exports (`crate::Config`) counts as its module's (`config`). Paths relative to the
//! importing module (`use spans::X` in `telemetry/mod.rs`) can only reach its own children
//! and are not counted. Between a folder's `mod.rs` and its own files there is no circle to
//! find: the folder declares and lists its files (a dialect's registration line), and its
//! files use what the folder shares; that pair is one unit, checked from outside.
//!
//! The module graph is per file (`telemetry::spans`, `dialect`); a module's layer is its
//! top-level name's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

/// The declared layers, bottom to top: a module may import from its own layer (without a
/// circle) and from the layers below it, never from one above.
///
/// - `logfmt` (the text log's escaped fields) imports nothing from the crate and only turns
///   values into log text, which any layer may need: it sits with the vocabulary at the bottom.
/// - `mcp` is a relay with routes of its own on the proxy's `AppState` (it reads
///   `inbound::AppState`, the upstream client, the stream tee and telemetry): a proxy part.
/// - `mock` (the scripted upstream the demo and the tests run) imports nothing from the
///   crate, and no part of the proxy may depend on a test double: it sits beside `ui`, as a
///   surface only the entry points compose.
/// - `sigv4` (AWS SigV4 signing and the credentials it reads at load) imports nothing from the
///   crate; the config holds its signing settings and the exchange signs with them: it sits
///   with `config`.
/// - `proxy`, `app`, `exchange`, `respond` and `vocab` name modules being created for issue 25
///   (the app state, the request's phases, the relay; the shared vocabulary).
const LAYERS: &[(&str, &[&str])] = &[
    ("vocabulary", &["vocab", "logfmt"]),
    ("config", &["config", "sigv4"]),
    ("dialects and streams", &["dialect", "stream"]),
    ("telemetry and shared state", &["telemetry", "state"]),
    (
        "proxy",
        &[
            "proxy",
            "app",
            "exchange",
            "respond",
            "inbound",
            "route",
            "path",
            "upstream",
            "injection",
            "auth",
            "error",
            "listen",
            "tls",
            "mcp",
        ],
    ),
    ("live view and scripted upstream", &["ui", "mock"]),
    ("entry points", &["lib", "cli", "main"]),
];

/// Known violations (`from -> to`, file modules), as of the tree this check was written
/// against; issue 25's moves remove them. Only removals are allowed: the check fails on a
/// violation missing here and on an entry that is no longer one (it prints the current list).
const BASELINE: &[&str] = &[];

#[test]
fn imports_point_down_the_layers_and_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = read_sources(&src);
    assert!(
        sources.len() > 20 && sources.iter().any(|s| s.module == "lib"),
        "read only {} files under {}",
        sources.len(),
        src.display()
    );
    let report = check(&sources, LAYERS, BASELINE);
    assert!(report.is_empty(), "{report}");
}

/// One source file: its module path (`telemetry::spans`, `dialect`, `lib`, `main`), its path
/// for messages, and its text.
struct Source {
    module: String,
    file: String,
    text: String,
}

/// Every `.rs` file under `src`, sorted by path.
fn read_sources(src: &Path) -> Vec<Source> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            Source {
                module: module_of(&rel),
                file: format!("src/{rel}"),
                text: std::fs::read_to_string(&path).unwrap(),
            }
        })
        .collect()
}

/// The module a file under `src/` defines: `telemetry/spans.rs` → `telemetry::spans`,
/// `dialect/mod.rs` → `dialect`, `lib.rs` → `lib`.
fn module_of(rel: &str) -> String {
    let stem = rel.strip_suffix(".rs").unwrap_or(rel);
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    stem.replace('/', "::")
}

/// One import: the first line where `from` names `to`.
#[derive(Clone)]
struct Import {
    from: String,
    to: String,
    file: String,
    line: usize,
    text: String,
}

/// The report: empty when the tree keeps the layers (up to the baseline).
fn check(sources: &[Source], layers: &[(&str, &[&str])], baseline: &[&str]) -> String {
    let mut report = String::new();
    let mut layer_of: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (_, names)) in layers.iter().enumerate() {
        for name in *names {
            if layer_of.insert(name, i).is_some() {
                writeln!(report, "`{name}` is declared in two layers").unwrap();
            }
        }
    }
    let imports = imports_of(sources);
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();
    for s in sources {
        if !layer_of.contains_key(top(&s.module).as_str()) {
            writeln!(
                report,
                "{}: module `{}` is in no declared layer; add it to LAYERS in tests/layering.rs",
                s.file,
                top(&s.module)
            )
            .unwrap();
        }
    }
    if !report.is_empty() {
        return report;
    }

    // Upward imports.
    let mut violations: BTreeMap<(String, String), String> = BTreeMap::new();
    for i in &imports {
        let (from, to) = (
            layer_of[top(&i.from).as_str()],
            layer_of[top(&i.to).as_str()],
        );
        if to > from {
            violations.insert(
                (i.from.clone(), i.to.clone()),
                format!(
                    "up from {} to {}: {}:{}: {}",
                    layers[from].0, layers[to].0, i.file, i.line, i.text
                ),
            );
        }
    }
    // Circles: every import inside a strongly connected set of modules lies on one.
    for set in circles(&imports) {
        let circle = shortest_circle(&set, &imports);
        for i in imports
            .iter()
            .filter(|i| set.contains(&i.from) && set.contains(&i.to) && !nested(&i.from, &i.to))
        {
            violations
                .entry((i.from.clone(), i.to.clone()))
                .or_insert_with(|| {
                    format!(
                        "in the circle {}: {}:{}: {}",
                        circle.join(" -> "),
                        i.file,
                        i.line,
                        i.text
                    )
                });
        }
    }

    let mut known: BTreeSet<(String, String)> = BTreeSet::new();
    for entry in baseline {
        match entry.split_once(" -> ") {
            Some((from, to)) if !known.insert((from.into(), to.into())) => {
                writeln!(report, "baseline entry `{entry}` is listed twice").unwrap();
            }
            Some(_) => {}
            None => writeln!(report, "baseline entry `{entry}` is not `from -> to`").unwrap(),
        }
    }
    for ((from, to), why) in &violations {
        if !known.contains(&(from.clone(), to.clone())) {
            writeln!(report, "new: {from} -> {to}: {why}").unwrap();
        }
    }
    for (from, to) in &known {
        if !violations.contains_key(&(from.clone(), to.clone())) {
            writeln!(
                report,
                "fixed: {from} -> {to} breaks no rule any more; remove it from BASELINE"
            )
            .unwrap();
        }
    }
    if !report.is_empty() {
        report.push_str("\nThe violations now (BASELINE may only lose entries):\n");
        for (from, to) in violations.keys() {
            writeln!(report, "    \"{from} -> {to}\",").unwrap();
        }
    }
    report
}

/// Whether one module is the other's ancestor (`dialect` and `dialect::anthropic`).
fn nested(a: &str, b: &str) -> bool {
    let under = |child: &str, parent: &str| {
        child.len() > parent.len()
            && child.starts_with(parent)
            && child[parent.len()..].starts_with("::")
    };
    under(a, b) || under(b, a)
}

/// The sets of two or more modules that reach each other (Tarjan's algorithm), over the
/// imports between modules neither of which contains the other.
fn circles(imports: &[Import]) -> Vec<BTreeSet<String>> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in imports.iter().filter(|i| !nested(&i.from, &i.to)) {
        next.entry(&i.from).or_default().insert(&i.to);
        next.entry(&i.to).or_default();
    }
    struct Tarjan<'a> {
        next: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for &w in &self.next[v] {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut set = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    set.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if set.len() > 1 {
                    self.out.push(set);
                }
            }
        }
    }
    let mut t = Tarjan {
        next: &next,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in next.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

/// A shortest circle through the set's first module, for the message: `a -> b -> a`.
fn shortest_circle(set: &BTreeSet<String>, imports: &[Import]) -> Vec<String> {
    let start = set.iter().next().cloned().unwrap_or_default();
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    while let Some(v) = queue.pop_front() {
        for i in imports
            .iter()
            .filter(|i| i.from == v && set.contains(&i.to) && !nested(&i.from, &i.to))
        {
            if i.to == start {
                let mut path = vec![v.clone()];
                let mut at = v.clone();
                while at != start {
                    at = came_from[&at].clone();
                    path.push(at.clone());
                }
                path.reverse();
                path.push(start.clone());
                return path;
            }
            if !came_from.contains_key(&i.to) && i.to != start {
                came_from.insert(i.to.clone(), v.clone());
                queue.push_back(i.to.clone());
            }
        }
    }
    set.iter().cloned().collect()
}

// ---- reading the imports -----------------------------------------------------------------

/// Every import between two different modules, the first line each pair occurs on.
fn imports_of(sources: &[Source]) -> Vec<Import> {
    let modules: BTreeSet<&str> = sources.iter().map(|s| s.module.as_str()).collect();
    let test_only: BTreeSet<String> = sources
        .iter()
        .flat_map(|s| {
            test_only_children(&code_only(&s.text))
                .into_iter()
                .map(move |c| child_of(&s.module, &c))
        })
        .collect();
    let reexports = sources
        .iter()
        .find(|s| s.module == "lib")
        .map(|lib| reexports(&code_only(&lib.text), &modules))
        .unwrap_or_default();
    let mut seen: BTreeMap<(String, String), Import> = BTreeMap::new();
    for s in sources {
        if test_only
            .iter()
            .any(|t| s.module == *t || s.module.starts_with(&format!("{t}::")))
        {
            continue;
        }
        let code = without_test_items(&code_only(&s.text));
        for (offset, path) in paths(&s.module, &code) {
            let to = resolve(&path, &modules, &reexports);
            if to == s.module {
                continue;
            }
            let line = code[..offset].matches('\n').count() + 1;
            seen.entry((s.module.clone(), to.clone()))
                .or_insert_with(|| Import {
                    from: s.module.clone(),
                    to,
                    file: s.file.clone(),
                    line,
                    text: s
                        .text
                        .lines()
                        .nth(line - 1)
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                });
        }
    }
    seen.into_values().collect()
}

/// `parent`'s child `name` (the crate root's children are top-level modules).
fn child_of(parent: &str, name: &str) -> String {
    if parent == "lib" || parent == "main" {
        name.to_string()
    } else {
        format!("{parent}::{name}")
    }
}

/// The module a path (after `crate::`) names: the deepest known module it walks through, a
/// re-exported name's module, or the crate root (`lib`).
fn resolve(
    path: &[String],
    modules: &BTreeSet<&str>,
    reexports: &BTreeMap<String, String>,
) -> String {
    for n in (1..=path.len()).rev() {
        let m = path[..n].join("::");
        if modules.contains(m.as_str()) {
            return m;
        }
    }
    path.first()
        .and_then(|first| reexports.get(first))
        .cloned()
        .unwrap_or_else(|| "lib".to_string())
}

/// The names the crate root re-exports (`pub use config::Config;`) and their modules.
fn reexports(lib: &str, modules: &BTreeSet<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let bytes = lib.as_bytes();
    let mut from = 0;
    while let Some(at) = lib[from..].find("pub use ") {
        let mut i = from + at + "pub use ".len();
        from = i;
        let mut paths = Vec::new();
        parse_tree(bytes, &mut i, Vec::new(), &mut paths);
        for p in paths {
            if let Some(name) = p.last() {
                let to = resolve(&p, modules, &BTreeMap::new());
                if to != "lib" {
                    out.insert(name.clone(), to);
                }
            }
        }
    }
    out
}

/// The code of a file with comments, string and character literals blanked out (newlines
/// kept, so offsets still give line numbers).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < b.len() {
        let prev_ident = i > 0 && ident(b[i - 1]);
        let raw_end = (!prev_ident && (b[i] == b'r' || b[i..].starts_with(b"br")))
            .then(|| raw_string_at(b, i))
            .flatten();
        if b[i..].starts_with(b"//") {
            let end = b[i..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |n| i + n);
            blank(&mut out, i, end);
            i = end;
        } else if b[i..].starts_with(b"/*") {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some(end) = raw_end {
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '"'); otherwise a lifetime, left as it is.
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|n| i + 2 + n + 1)
            } else {
                let len = std::str::from_utf8(&b[i + 1..(i + 5).min(b.len())])
                    .ok()
                    .or_else(|| std::str::from_utf8(&b[i + 1..(i + 2).min(b.len())]).ok())
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 2 + len)
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Spaces over `out[from..to]` (clamped to its length), newlines kept.
fn blank(out: &mut [u8], from: usize, to: usize) {
    let to = to.min(out.len());
    for c in &mut out[from..to] {
        if *c != b'\n' {
            *c = b' ';
        }
    }
}

/// The end of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) starting at `i`, if one does.
fn raw_string_at(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + if b[i] == b'b' { 2 } else { 1 };
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    j += hashes;
    if b.get(j) != Some(&b'"') {
        return None;
    }
    let close: Vec<u8> = std::iter::once(b'"')
        .chain(std::iter::repeat_n(b'#', hashes))
        .collect();
    b[j + 1..]
        .windows(close.len())
        .position(|w| w == close.as_slice())
        .map(|n| j + 1 + n + close.len())
}

/// The names of child modules declared test-only (`#[cfg(test)] mod name;`).
fn test_only_children(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in cfg_test_items(code) {
        let words: Vec<&str> = code[item.0..item.1]
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ';'))
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(pos) = words.iter().position(|w| *w == "mod") {
            if let Some(name) = words.get(pos + 1).and_then(|w| w.strip_suffix(';')) {
                out.push(name.to_string());
            } else if words.get(pos + 2) == Some(&";") {
                out.push(words[pos + 1].to_string());
            }
        }
    }
    out
}

/// The code with every `#[cfg(test)]` item blanked out.
fn without_test_items(code: &str) -> String {
    let mut out = code.as_bytes().to_vec();
    for (from, to) in cfg_test_items(code) {
        blank(&mut out, from, to);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The byte ranges of the items under a `#[cfg(test)]` attribute (the attribute included):
/// up to the first `;` at depth 0, or through the first `{ … }` block.
fn cfg_test_items(code: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(test)]") {
        let start = from + at;
        let end = item_end(code.as_bytes(), start + "#[cfg(test)]".len());
        out.push((start, end));
        from = end;
    }
    out
}

/// The end (exclusive) of the item from `i`: just past the first `;` outside braces, or
/// past the `}` closing the first `{`.
fn item_end(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            b';' if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The paths a file names, each with its offset: after `crate::` (or `llmtap::` in the
/// binary, `main`), as crate paths; after `super::`, made absolute from `module`. Paths in
/// an inline module's `super::` that stay in the file are left out.
fn paths(module: &str, code: &str) -> Vec<(usize, Vec<String>)> {
    let b = code.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
    let inline_mods = inline_modules(code);
    let roots: &[&str] = if module == "main" {
        &["crate::", "llmtap::"]
    } else {
        &["crate::", "super::"]
    };
    let mut out = Vec::new();
    for i in 0..b.len() {
        if i > 0 && (ident(b[i - 1]) || b[i - 1] == b':') {
            continue;
        }
        let Some(root) = roots.iter().find(|r| b[i..].starts_with(r.as_bytes())) else {
            continue;
        };
        let mut j = i + root.len();
        let prefix = if *root == "super::" {
            let mut ups = 1;
            while b[j..].starts_with(b"super::") {
                ups += 1;
                j += "super::".len();
            }
            let depth = inline_mods
                .iter()
                .filter(|(s, e)| (*s..*e).contains(&i))
                .count();
            if ups <= depth {
                continue;
            }
            let mut segs: Vec<String> = if module == "lib" {
                Vec::new()
            } else {
                module.split("::").map(str::to_string).collect()
            };
            for _ in 0..ups - depth {
                if segs.pop().is_none() {
                    break;
                }
            }
            segs
        } else {
            Vec::new()
        };
        let mut found = Vec::new();
        parse_tree(b, &mut j, prefix, &mut found);
        out.extend(found.into_iter().map(|p| (i, p)));
    }
    out
}

/// The byte ranges of inline `mod name { … }` blocks.
fn inline_modules(code: &str) -> Vec<(usize, usize)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("mod ") {
        let start = from + at;
        from = start + 4;
        if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            continue;
        }
        let mut i = from;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b' ') {
            i += 1;
        }
        if b.get(i) != Some(&b'{') {
            continue;
        }
        out.push((start, item_end(b, i)));
    }
    out
}

/// Parses a use tree or a path at `i` (`a::b`, `a::{b, c::d}`, `a::*`, `self`), pushing
/// each full path (`prefix` + segments) to `out`.
fn parse_tree(b: &[u8], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut path = prefix;
    loop {
        skip_ws(i);
        match b.get(*i) {
            Some(b'{') => {
                *i += 1;
                loop {
                    skip_ws(i);
                    match b.get(*i) {
                        None => return,
                        Some(b'}') => {
                            *i += 1;
                            return;
                        }
                        Some(b',') => *i += 1,
                        _ => {
                            let before = *i;
                            parse_tree(b, i, path.clone(), out);
                            // Past `as name` or anything else up to the next `,` or `}`.
                            while *i < b.len() && b[*i] != b',' && b[*i] != b'}' {
                                *i += 1;
                            }
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
            }
            Some(b'*') => {
                *i += 1;
                out.push(path);
                return;
            }
            _ => {}
        }
        let start = *i;
        while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_') {
            *i += 1;
        }
        let seg = String::from_utf8_lossy(&b[start..*i]).into_owned();
        if seg.is_empty() {
            out.push(path);
            return;
        }
        if seg != "self" {
            path.push(seg);
        }
        skip_ws(i);
        if b[*i..].starts_with(b"::") {
            *i += 2;
        } else {
            out.push(path);
            return;
        }
    }
}

// ---- the checker checked -----------------------------------------------------------------

fn synthetic(files: &[(&str, &str)]) -> Vec<Source> {
    files
        .iter()
        .map(|(rel, text)| Source {
            module: module_of(rel),
            file: format!("toy/{rel}"),
            text: text.to_string(),
        })
        .collect()
}

const TOY_LAYERS: &[(&str, &[&str])] = &[
    ("vocabulary", &["vocab"]),
    ("config", &["config", "state"]),
    ("dialects", &["dialect"]),
    ("ui", &["ui", "lib"]),
];

/// A tiny tree with one upward import (`vocab` → `config`) and one circle (`dialect::a` ⇄
/// `dialect::b`), and imports that are none: in comments, strings, test items, relative to
/// a folder, `super` inside an inline module; and some that are: through the crate root's
/// re-exports, `super::super` out of an inline module, from a folder to its own files.
fn toy_tree() -> Vec<Source> {
    synthetic(&[
        ("lib.rs", "pub mod config;\npub mod dialect;\npub use config::Config;\n"),
        ("vocab.rs", "use std::fmt;\nuse crate::config::Config;\n"),
        (
            "config.rs",
            "// use crate::ui::View;\npub const S: &str = \"crate::ui::View\";\npub const R: &str = r#\"crate::ui\"#;\nfn f<'a>(c: char) -> bool { c == '\"' }\npub struct Config;\n",
        ),
        (
            "state.rs",
            "use crate::Config;\nmod inner {\n    use super::Config;\n    use super::super::vocab::V;\n}\n",
        ),
        (
            "dialect/mod.rs",
            "pub mod a;\npub mod b;\nuse a::A;\nuse crate::dialect::b::B;\n#[cfg(test)]\nmod tests {\n    use crate::ui::View;\n}\n#[cfg(test)]\nmod fixtures;\n",
        ),
        ("dialect/fixtures.rs", "use crate::ui::View;\n"),
        ("dialect/a.rs", "use super::{b::B, Dialect};\npub struct A;\n"),
        (
            "dialect/b.rs",
            "pub struct B;\nfn f() -> crate::dialect::a::A { crate::dialect::a::A }\n",
        ),
        (
            "ui/mod.rs",
            "use crate::{config::{self, Config}, dialect::{a::A as Alpha, b}};\nuse super::vocab::*;\n",
        ),
    ])
}

#[test]
fn the_checker_reads_paths_the_way_rust_does() {
    let imports: BTreeSet<String> = imports_of(&toy_tree())
        .iter()
        .map(|i| format!("{} -> {} @{}", i.from, i.to, i.line))
        .collect();
    let expected: BTreeSet<String> = [
        "vocab -> config @2",
        "state -> config @1",
        "state -> vocab @4",
        "dialect -> dialect::b @4",
        "dialect::a -> dialect::b @1",
        "dialect::a -> dialect @1",
        "dialect::b -> dialect::a @2",
        "ui -> config @1",
        "ui -> dialect::a @1",
        "ui -> dialect::b @1",
        "ui -> vocab @2",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(imports, expected);
}

#[test]
fn the_checker_fails_an_upward_import_and_a_circle_and_a_stale_baseline() {
    let tree = toy_tree();
    let report = check(&tree, TOY_LAYERS, &[]);
    assert!(
        report.contains("new: vocab -> config: up from vocabulary to config: toy/vocab.rs:2: use crate::config::Config;"),
        "{report}"
    );
    assert!(
        report.contains("new: dialect::a -> dialect::b: in the circle dialect::a -> dialect::b -> dialect::a: toy/dialect/a.rs:1:"),
        "{report}"
    );
    assert!(
        report.contains("new: dialect::b -> dialect::a: in the circle"),
        "{report}"
    );
    assert_eq!(report.matches("new: ").count(), 3, "{report}");
    assert!(report.contains("    \"vocab -> config\",\n"), "{report}");

    let known = [
        "dialect::a -> dialect::b",
        "dialect::b -> dialect::a",
        "vocab -> config",
    ];
    assert_eq!(check(&tree, TOY_LAYERS, &known), "");

    let stale = [&known[..], &["ui -> config"]].concat();
    let report = check(&tree, TOY_LAYERS, &stale);
    assert!(
        report.contains("fixed: ui -> config breaks no rule any more"),
        "{report}"
    );

    let mut unknown = toy_tree();
    unknown.extend(synthetic(&[("extra.rs", "")]));
    assert!(check(&unknown, TOY_LAYERS, &known).contains("module `extra` is in no declared layer"));
}
