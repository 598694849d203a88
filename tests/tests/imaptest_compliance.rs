//! Dovecot imaptest's scripted IMAP compliance suite (71 groups; Dovecot 2.3.19 passes
//! all) against the real node binary, interpreted by `tests::imaptest`.
//!
//! The scripts are read at test time from `../shared/imaptest-tests/tests` beside the
//! workspace (or `$IMAPTEST_DIR`); without them the tests say so and pass. The run fails
//! when a group fails that `tests/imaptest-known-failures.txt` does not list, or when a
//! listed group passes (the list only shrinks). `IMAPTEST_ONLY=fetch,select` runs a few
//! groups; `--nocapture` shows the table and imaptest's totals.

// The interpreter is compiled into this test directly (it is also `tests::imaptest`), so
// this test does not depend on a rebuilt harness library in the shared target directory.
#[path = "../src/imaptest/mod.rs"]
#[allow(dead_code)]
mod imaptest;

use imaptest::{script, Config, Outcome};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tests::*;

/// A whole run is bounded: no group starts after this (71 groups take ~1 min here).
const RUN_BUDGET: Duration = Duration::from_secs(600);
/// One reply may take this long before its group fails (debug build, busy machine).
const CMD_TIMEOUT: Duration = Duration::from_secs(15);

fn scripts_dir() -> Option<PathBuf> {
    let dir = imaptest::tests_dir(&workspace_root());
    if dir.is_dir() {
        return Some(dir);
    }
    eprintln!(
        "SKIPPED: imaptest scripts not found at {} (CI has ../shared beside the repository; \
         IMAPTEST_DIR=<dir> points elsewhere)",
        dir.display()
    );
    None
}

fn known_failures_path() -> PathBuf {
    workspace_root().join("tests/imaptest-known-failures.txt")
}

#[test]
fn every_script_parses() {
    let Some(dir) = scripts_dir() else { return };
    let paths = script::list_dir(&dir).expect("list scripts");
    assert!(
        !paths.iter().any(|p| p.ends_with("broken")),
        "subdirectories are skipped"
    );
    let mut errors = Vec::new();
    for p in &paths {
        if let Err(e) = script::load(p) {
            errors.push(e);
        }
    }
    assert!(
        errors.is_empty(),
        "scripts that do not parse:\n{}",
        errors.join("\n")
    );
    assert_eq!(paths.len(), 71, "imaptest ships 71 groups");
}

#[test]
fn known_failures_name_real_groups_with_reasons() {
    let Some(dir) = scripts_dir() else { return };
    let text = std::fs::read_to_string(known_failures_path()).expect("read known failures");
    let names: Vec<String> = script::list_dir(&dir)
        .expect("list scripts")
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for (group, reason) in imaptest::parse_known_failures(&text) {
        assert!(names.contains(&group), "{group} is no imaptest group");
        assert!(!reason.is_empty(), "{group} is listed without a reason");
    }
}

#[test]
fn imaptest_compliance() {
    let Some(dir) = scripts_dir() else { return };
    let password = "imaptest-pw";
    let mut server = Server::start(ServerSpec {
        users: vec![
            User::plain("imaptest1", password),
            User::plain("imaptest2", password),
        ],
        wait_for: vec![Proto::Imap],
        ..Default::default()
    })
    .expect("start node");
    let cfg = Config {
        addr: server.addr(Proto::Imap),
        user: ("imaptest1".into(), password.into()),
        user2: Some(("imaptest2".into(), password.into())),
        mailbox: "imaptest".into(),
        host: "127.0.0.1".into(),
        cmd_timeout: CMD_TIMEOUT,
        deadline: Some(Instant::now() + RUN_BUDGET),
    };
    let only: Option<Vec<String>> = std::env::var("IMAPTEST_ONLY")
        .ok()
        .map(|s| s.split(',').map(|g| g.trim().to_string()).collect());
    let started = Instant::now();
    let reports = imaptest::run_dir(&dir, &cfg, only.as_deref()).expect("run imaptest groups");
    eprintln!("{}", imaptest::table(&reports));
    eprintln!("{}", imaptest::totals(&reports));
    eprintln!("(ran in {:.1?})", started.elapsed());
    for r in reports.iter().filter(|r| r.outcome == Outcome::Failed) {
        eprintln!("--- {} ---\n{}\n", r.name, r.failures.join("\n"));
    }

    assert!(server.is_running(), "the node died during the run");
    let text = std::fs::read_to_string(known_failures_path()).expect("read known failures");
    let mut known = imaptest::parse_known_failures(&text);
    if let Some(only) = &only {
        known.retain(|g, _| only.contains(g));
    }
    let problems = imaptest::judge(&reports, &known);
    assert!(
        problems.is_empty(),
        "{} problem(s) against tests/imaptest-known-failures.txt:\n\n{}\n\n{}",
        problems.len(),
        problems.join("\n\n"),
        imaptest::totals(&reports)
    );
}
