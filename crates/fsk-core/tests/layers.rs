//! The core's modules are layers: each imports only the modules of the layers before it, and
//! the submodules inside a layer import each other without cycles. This test reads the
//! sources (comments, doc links and the `#[cfg(test)]` modules at the end of files aside:
//! a unit test may build its fixture with a higher layer) and fails naming the import that
//! breaks either rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, lowest layer first (the order of `lib.rs`'s documentation).
const LAYERS: &[&str] = &[
    "error", "value", "stream", "tasks", "progress", "dataset", "expr", "plan", "commit", "write",
    "engine", "ops",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `dataset/listing.rs` is `["dataset", "listing"]`,
/// `ops/mod.rs` is `["ops"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every `crate::a::b` path in the code (not in comments), as `[a, b]` (at most two parts).
fn imports(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `fsk_core::` or `my_crate::`
            }
            let path: Vec<String> = rest
                .split("::")
                .take(2)
                .map(|p| {
                    p.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .take_while(|p| !p.is_empty() && p.chars().next().unwrap().is_lowercase())
                .collect();
            if !path.is_empty() {
                out.push((number + 1, path));
            }
        }
    }
    out
}

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|m| *m == module)
        .unwrap_or_else(|| panic!("module `{module}` is not in LAYERS: place it in a layer"))
}

#[test]
fn modules_import_only_lower_layers_and_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    // Edges between submodules of one layer (`dataset::listing` -> `dataset::storage`).
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == ["lib"] {
            continue;
        }
        let own = layer(&module[0]);
        let text = std::fs::read_to_string(file).unwrap();
        for (line, path) in imports(&text) {
            let target = layer(&path[0]);
            let shown = format!(
                "{}:{line} imports crate::{}",
                file.display(),
                path.join("::")
            );
            if target > own {
                violations.push(format!("{shown}, a higher layer than `{}`", module[0]));
            }
            if target == own && module.len() > 1 && path.len() > 1 && path[1] != module[1] {
                let from = format!("{}::{}", module[0], module[1]);
                let to = format!("{}::{}", path[0], path[1]);
                if file
                    .parent()
                    .unwrap()
                    .join(format!("{}.rs", path[1]))
                    .exists()
                    || file.parent().unwrap().join(&path[1]).is_dir()
                {
                    edges.entry(from).or_default().insert(to);
                }
            }
        }
    }
    // A cycle among submodules: depth-first search with colours.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    cycles.push(format!("{} -> {next}", stack[from..].join(" -> ")));
                }
                Some(_) => {}
                None => visit(next, edges, state, stack, cycles),
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for node in edges.keys() {
        if !state.contains_key(node.as_str()) {
            visit(node, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    for cycle in cycles {
        violations.push(format!("module cycle: {cycle}"));
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // The test sees the imports it judges: the dataset layer's listing reads footers' names.
    assert!(edges.values().map(BTreeSet::len).sum::<usize>() > 0);
}
