//! The library's modules form layers: no module uses another that uses it back, at the
//! top (`describe` and `train` both sit on `models`; `session` registers `ops`, which
//! `select` runs) and among the files of each folder. A new `use` that closes a cycle
//! fails here with the cycle spelled out. See docs/architecture.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The module path of a source file: `src/ops/goal_select.rs` -> `[ops, goal_select]`,
/// `src/ops/mod.rs` -> `[ops]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The code of a file without comments and without its unit tests (whose `super::`
/// means the file itself).
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn ident(s: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&s[start..i]).into_owned(), i)
}

/// The paths a `crate::...`, `super::...` or `self::...` reference at `i` names, as
/// segments after the prefix (a `{...}` group gives one path per item).
fn paths_at(s: &[u8], mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        if s.get(i) == Some(&b'{') {
            i += 1;
            loop {
                while i < s.len() && (s[i].is_ascii_whitespace() || s[i] == b',') {
                    i += 1;
                }
                if i >= s.len() || s[i] == b'}' {
                    return i + 1;
                }
                i = paths_at(s, i, path.clone(), out);
            }
        }
        let (name, j) = ident(s, i);
        if name.is_empty() {
            out.push(path);
            return i.max(j) + 1;
        }
        path.push(name);
        i = j;
        if s[i..].starts_with(b"::") {
            i += 2;
        } else {
            out.push(path);
            return i;
        }
    }
}

/// Every module path a file refers to, absolute (`super::x` resolved).
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code = code(text);
    let s = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_' || s[i - 1] == b':');
        let prefix = if !boundary {
            None
        } else if s[i..].starts_with(b"crate::") {
            Some((7, Vec::new()))
        } else if s[i..].starts_with(b"super::") {
            Some((7, module[..module.len().saturating_sub(1)].to_vec()))
        } else if s[i..].starts_with(b"self::") {
            Some((6, module.to_vec()))
        } else {
            None
        };
        match prefix {
            Some((len, base)) => i = paths_at(s, i + len, base, &mut out),
            None => i += 1,
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A cycle in `edges`, as the nodes along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        stack.push(n.to_owned());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|x| x == m).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n.as_str())
            && let Some(c) = visit(n, edges, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

/// For every folder of modules (the crate root included): which child uses which.
fn graphs(src: &Path) -> BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in files {
        let module = module_path(src, &file);
        let text = std::fs::read_to_string(&file).unwrap();
        for target in references(&module, &text) {
            // The deepest folder both sit in: there `module` and `target` are children.
            let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < module.len() && common < target.len() {
                let folder = module[..common].to_vec();
                let edges = out.entry(folder).or_default();
                edges.entry(module[common].clone()).or_default().insert(target[common].clone());
            }
        }
    }
    out
}

#[test]
fn modules_form_layers_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graphs = graphs(&src);
    let top = graphs.get(&Vec::new()).expect("the crate root's modules");
    // The check sees the edges it must: the stages sit on the layers below them.
    for (from, to) in [("describe", "models"), ("train", "models"), ("session", "ops"), ("select", "ops")] {
        assert!(top.get(from).is_some_and(|t| t.contains(to)), "{from} -> {to} not seen: {top:?}");
    }
    let cycles: Vec<String> = graphs
        .iter()
        .filter_map(|(folder, edges)| {
            let place = if folder.is_empty() { "crate".to_owned() } else { folder.join("::") };
            find_cycle(edges).map(|c| format!("{place}: {}", c.join(" -> ")))
        })
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "pub mod x;\npub mod y;\n").unwrap();
    std::fs::write(src.join("a/x.rs"), "use super::y::Y;\n// use crate::b;\n").unwrap();
    std::fs::write(src.join("a/y.rs"), "use crate::{b::{B, C},\n  error::E};\n").unwrap();
    std::fs::write(src.join("b.rs"), "fn f() { crate::a::x::g() }\n#[cfg(test)]\nmod t { use super::*; }\n").unwrap();
    let g = graphs(src);
    assert_eq!(g[&Vec::new()]["a"], BTreeSet::from(["b".to_owned(), "error".to_owned()]));
    assert_eq!(g[&vec!["a".to_owned()]]["x"], BTreeSet::from(["y".to_owned()]));
    assert_eq!(find_cycle(&g[&Vec::new()]), Some(vec!["a".to_owned(), "b".to_owned(), "a".to_owned()]));
    assert_eq!(find_cycle(&g[&vec!["a".to_owned()]]), None);
}
