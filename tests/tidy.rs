//! Tidiness rules a reviewer would otherwise check by hand: every source module opens with a
//! `//!` doc saying what it is for; no source file grows past the line budget (a few listed
//! exceptions say why; unit-test modules, `tests.rs`, are lists of cases and exempt); and `ARCHITECTURE.md`'s code map names every crate and only files that
//! exist.

use std::fs;
use std::path::{Path, PathBuf};

/// Lines a source file may have before it should be split.
const LINE_BUDGET: usize = 1_100;

/// Files allowed past the budget: (path from the repository root, its ceiling, why).
const OVER_BUDGET: &[(&str, usize, &str)] = &[
    (
        "crates/nnc-kernel/src/interp.rs",
        1_400,
        "one evaluator: statement execution, lock-step lanes and the race/bounds bookkeeping share one state and read best together",
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Every crate's library and binary sources (tests and benches are exempt from the rules).
fn source_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for krate in crate_dirs() {
        rust_files(&krate.join("src"), &mut files);
    }
    files.sort();
    files
}

fn crate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

#[test]
fn every_source_module_opens_with_a_doc_comment() {
    let missing: Vec<String> = source_files()
        .into_iter()
        .filter(|p| !fs::read_to_string(p).expect("source").trim_start().starts_with("//!"))
        .map(|p| relative(&p))
        .collect();
    assert!(missing.is_empty(), "modules without a `//!` doc saying what they are for:\n{}", missing.join("\n"));
}

#[test]
fn source_files_keep_to_the_line_budget() {
    let mut over = Vec::new();
    for path in source_files() {
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let name = relative(&path);
        let lines = fs::read_to_string(&path).expect("source").lines().count();
        let ceiling = OVER_BUDGET.iter().find(|(p, _, _)| *p == name).map_or(LINE_BUDGET, |(_, c, _)| *c);
        if lines > ceiling {
            over.push(format!("{name}: {lines} lines (budget {ceiling})"));
        }
    }
    assert!(over.is_empty(), "split these files into smaller modules:\n{}", over.join("\n"));
    for (path, ceiling, _) in OVER_BUDGET {
        let lines = fs::read_to_string(root().join(path)).map(|s| s.lines().count()).unwrap_or(0);
        assert!(
            lines > LINE_BUDGET,
            "{path} ({lines} lines, ceiling {ceiling}) is within the budget now: drop its exception"
        );
    }
}

/// `ARCHITECTURE.md`'s code map: one "### `crates/NAME`" section per crate, and every `.rs`
/// file a section names in backticks exists under that crate.
#[test]
fn the_code_map_names_every_crate_and_only_files_that_exist() {
    let text = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut problems = Vec::new();
    for krate in crate_dirs() {
        let name = krate.file_name().unwrap().to_string_lossy().to_string();
        let heading = format!("### `crates/{name}`");
        let Some(start) = text.find(&heading) else {
            problems.push(format!("no section {heading}"));
            continue;
        };
        let body = &text[start + heading.len()..];
        let section = &body[..body.find("\n#").unwrap_or(body.len())];
        let mut files = Vec::new();
        rust_files(&krate, &mut files);
        let files: Vec<String> = files.iter().map(|p| relative(p)).collect();
        for token in section.split('`').skip(1).step_by(2) {
            if token.ends_with(".rs")
                && !token.contains(' ')
                && !files.iter().any(|f| f.ends_with(&format!("/{token}")))
            {
                problems.push(format!("the {name} section names `{token}`, which is not a file of crates/{name}"));
            }
        }
    }
    assert!(problems.is_empty(), "ARCHITECTURE.md is out of date:\n{}", problems.join("\n"));
}
