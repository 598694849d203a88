//! Runs Pigeonhole's own test suite (`shared/pigeonhole-tests`, LGPL test data kept outside the
//! product) through the interpreter and prints per file passed / failed / skipped and a total.
//!
//! Files that need an extension this interpreter does not claim are skipped with that reason.
//! Files listed in `pigeonhole-known-failures.txt` may fail (the list is the honest state of
//! the work); any other failure, and any listed file that now passes, fails this test so the
//! list stays exact.

mod testsuite;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn suite_dir() -> PathBuf {
    if let Ok(d) = std::env::var("PIGEONHOLE_TESTS") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/pigeonhole-tests/tests")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "svtest") {
            out.push(p);
        }
    }
}

/// Folders of extensions this interpreter does not claim (their error tests compile scripts
/// that require them).
const UNCLAIMED_DIRS: &[(&str, &str)] = &[
    ("extensions/enotify/", "enotify (RFC 5435)"),
    ("extensions/extlists/", "extlists (RFC 6134)"),
    (
        "extensions/metadata/",
        "mboxmetadata/servermetadata (RFC 5490)",
    ),
    (
        "extensions/mime/",
        "mime/foreverypart/extracttext (RFC 5703)",
    ),
    ("extensions/vnd.dovecot/", "vnd.dovecot.* (Dovecot-only)"),
];

/// The capabilities a file's `require` commands name (a light scan of its text).
fn required(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stmt in src.split(';') {
        let s = stmt.trim_start();
        if let Some(rest) = s.strip_prefix("require") {
            let mut in_str = false;
            let mut cur = String::new();
            for c in rest.chars() {
                match (c, in_str) {
                    ('"', false) => in_str = true,
                    ('"', true) => {
                        in_str = false;
                        out.push(std::mem::take(&mut cur));
                    }
                    (c, true) => cur.push(c),
                    _ => {}
                }
            }
        }
    }
    out
}

/// The scripts a file compiles with `test_script_compile "PATH"` (their requires count too).
fn compiled_scripts(src: &str) -> Vec<String> {
    src.match_indices("test_script_compile")
        .filter_map(|(i, m)| {
            let rest = src[i + m.len()..].trim_start().strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

#[test]
fn pigeonhole_test_suite() {
    let dir = suite_dir();
    if !dir.is_dir() {
        // The suite is test data kept beside the repository (LGPL, not in it); CI has it.
        eprintln!(
            "SKIPPED: Pigeonhole test suite not found at {} (CI has ../shared beside the \
             repository; or set PIGEONHOLE_TESTS)",
            dir.display()
        );
        return;
    }
    let mut files = Vec::new();
    collect(&dir, &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no .svtest files under {} (set PIGEONHOLE_TESTS)",
        dir.display()
    );
    let known: BTreeSet<String> = include_str!("pigeonhole-known-failures.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let caps = testsuite::compiler();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&dir).unwrap_or(f).display().to_string();
        let src = match std::fs::read(f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => panic!("{rel}: {e}"),
        };
        if rel.starts_with("plugins/") {
            println!("skipped {rel}: Dovecot-only plugin (extprograms: pipe, filter, execute)");
            skipped += 1;
            continue;
        }
        if let Some((_, ext)) = UNCLAIMED_DIRS.iter().find(|(d, _)| rel.starts_with(d)) {
            println!("skipped {rel}: extension not claimed: {ext}");
            skipped += 1;
            continue;
        }
        if rel == "execute/examples.svtest" {
            println!("skipped {rel}: its input scripts (Pigeonhole's examples/ folder) are not in the copy");
            skipped += 1;
            continue;
        }
        let base = f.parent().unwrap_or(&dir);
        let mut missing: Vec<String> = required(&src)
            .into_iter()
            .chain(compiled_scripts(&src).iter().flat_map(|p| {
                let text = std::fs::read(base.join(p)).unwrap_or_default();
                required(&String::from_utf8_lossy(&text))
            }))
            .filter(|c| !caps.supports(c))
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            println!(
                "skipped {rel}: extension(s) not claimed: {}",
                missing.join(", ")
            );
            skipped += 1;
            continue;
        }
        let mut suite = testsuite::Suite::new(f.parent().unwrap_or(&dir));
        let outcome = suite.run_file(&src);
        let ok = outcome.is_ok() && suite.failures.is_empty() && suite.tests > 0;
        if ok {
            passed += 1;
            println!("passed  {rel} ({} tests)", suite.tests);
            if known.contains(&rel) {
                now_passing.push(rel);
            }
        } else {
            failed += 1;
            let mut why: Vec<String> = suite.failures.clone();
            if let Err(e) = outcome {
                why.push(e);
            }
            if suite.tests == 0 && why.is_empty() {
                why.push("no test ran".into());
            }
            println!("FAILED  {rel}: {}", why.join(" | "));
            if !known.contains(&rel) {
                unexpected.push(rel);
            }
        }
    }
    println!("pigeonhole: {passed} passed, {failed} failed, {skipped} skipped");
    assert!(unexpected.is_empty(), "unexpected failures: {unexpected:?}");
    assert!(
        now_passing.is_empty(),
        "listed as known failures but passing now (remove them from the list): {now_passing:?}"
    );
}
