//! Dovecot imaptest's scripted IMAP compliance tests, interpreted in Rust: [`script`]
//! parses the format, [`matcher`] matches replies with imaptest's rules, [`runner`] drives
//! a server, and this module runs a directory of groups and reports in imaptest's words.

pub mod args;
pub mod matcher;
pub mod mbox;
pub mod runner;
pub mod script;

pub use runner::{Config, GroupReport, Outcome};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The test data: `../shared/imaptest-tests/tests` beside the workspace, unless
/// `IMAPTEST_DIR` names another directory.
pub fn tests_dir(workspace_root: &Path) -> PathBuf {
    match std::env::var_os("IMAPTEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => workspace_root.join("../shared/imaptest-tests/tests"),
    }
}

/// Groups written while imaptest's default for `messages:` was `all` and not updated when
/// imaptest commit 0de0dbf (2021) made it 0: urlauth2 (2013) FETCHes `1:2` from a mailbox
/// it never says to fill. They run with the default they were written for.
const OLD_DEFAULT_ALL_MESSAGES: &[&str] = &["urlauth2"];

/// Runs every group in `dir` (sorted, subdirectories skipped); `only` limits the run to
/// the named groups. A script that does not parse is a failed group.
pub fn run_dir(
    dir: &Path,
    cfg: &Config,
    only: Option<&[String]>,
) -> std::io::Result<Vec<GroupReport>> {
    let mut out = Vec::new();
    for path in script::list_dir(dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if only.is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        out.push(match script::load(&path) {
            Ok(mut s) => {
                if OLD_DEFAULT_ALL_MESSAGES.contains(&name.as_str())
                    && s.messages == script::Messages::Count(0)
                {
                    s.messages = script::Messages::All;
                }
                runner::run_script(&s, cfg)
            }
            Err(e) => GroupReport {
                name,
                outcome: Outcome::Failed,
                failures: vec![format!("script does not parse: {e}")],
                commands: 0,
                failed: 1,
                extension: false,
            },
        });
    }
    Ok(out)
}

/// imaptest's closing lines.
pub fn totals(reports: &[GroupReport]) -> String {
    let failed = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .count();
    let skipped = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Skipped { .. }))
        .count();
    let sum = |ext: bool| {
        reports
            .iter()
            .filter(|r| r.extension == ext)
            .fold((0, 0), |(f, n), r| (f + r.failed, n + r.commands))
    };
    let (bf, bn) = sum(false);
    let (ef, en) = sum(true);
    format!(
        "{} test groups: {failed} failed, {skipped} skipped due to missing capabilities\n\
         base protocol: {bf}/{bn} individual commands failed\n\
         extensions: {ef}/{en} individual commands failed",
        reports.len()
    )
}

/// One line per group: `name: pass`, `name: FAIL (first mismatch)`, `name: skipped (..)`.
pub fn table(reports: &[GroupReport]) -> String {
    let width = reports.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in reports {
        let status = match &r.outcome {
            Outcome::Passed => "pass".to_string(),
            Outcome::Skipped { missing } => {
                format!("skipped (missing capability: {})", missing.join(" "))
            }
            Outcome::Failed => {
                let first = r.failures.first().map(String::as_str).unwrap_or("");
                format!(
                    "FAIL ({} of {} commands) {}",
                    r.failed,
                    r.commands,
                    first.replace('\n', "\n      ")
                )
            }
        };
        out.push_str(&format!("{:width$}  {status}\n", r.name));
    }
    out
}

/// `tests/imaptest-known-failures.txt`: `group: reason` per line, `#` comments. A reason
/// starting with `flaky:` marks a group whose result varies from run to run (a server
/// race): it may pass or fail without failing the run.
pub fn parse_known_failures(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(':') {
            Some((g, why)) => (g.trim().to_string(), why.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

fn is_flaky(reason: &str) -> bool {
    reason
        .get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("flaky:"))
}

/// What is wrong with a run given the known failures: groups that fail but are not
/// listed, and listed groups that now pass (the list must shrink as the server improves)
/// or no longer exist.
pub fn judge(reports: &[GroupReport], known: &BTreeMap<String, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for r in reports {
        let listed = known.contains_key(&r.name);
        match (&r.outcome, listed) {
            (Outcome::Failed, false) => problems.push(format!(
                "{} fails and is not in imaptest-known-failures.txt:\n{}",
                r.name,
                r.failures.join("\n")
            )),
            (Outcome::Passed, true) if !is_flaky(&known[&r.name]) => problems.push(format!(
                "{} now passes: remove it from imaptest-known-failures.txt",
                r.name
            )),
            _ => {}
        }
    }
    for name in known.keys() {
        if !reports.iter().any(|r| &r.name == name) {
            problems.push(format!(
                "{name} is in imaptest-known-failures.txt but is no test group"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(name: &str, outcome: Outcome, failed: u32, ext: bool) -> GroupReport {
        GroupReport {
            name: name.into(),
            outcome,
            failures: (0..failed).map(|i| format!("f{i}")).collect(),
            commands: 4,
            failed,
            extension: ext,
        }
    }

    #[test]
    fn totals_in_imaptest_words() {
        let r = vec![
            rep("a", Outcome::Passed, 0, false),
            rep("b", Outcome::Failed, 2, false),
            rep(
                "c",
                Outcome::Skipped {
                    missing: vec!["X".into()],
                },
                0,
                true,
            ),
            rep("d", Outcome::Failed, 1, true),
        ];
        assert_eq!(
            totals(&r),
            "4 test groups: 2 failed, 1 skipped due to missing capabilities\n\
             base protocol: 2/8 individual commands failed\n\
             extensions: 1/8 individual commands failed"
        );
        assert!(table(&r).contains("c  skipped (missing capability: X)"));
    }

    #[test]
    fn known_failures_must_match_exactly() {
        let known = parse_known_failures(
            "# comment\nb: EXPUNGE wrong\n\nz: gone\nf: flaky: \\Recent race\n",
        );
        let r = vec![
            rep("a", Outcome::Failed, 1, false),
            rep("b", Outcome::Passed, 0, false),
            rep("f", Outcome::Passed, 0, false),
        ];
        let p = judge(&r, &known);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].starts_with("a fails"));
        assert!(p[1].starts_with("b now passes"));
        assert!(p[2].starts_with("z is in"));
        let ok = vec![
            rep("f", Outcome::Failed, 1, false),
            rep("b", Outcome::Failed, 1, false),
            rep("z", Outcome::Skipped { missing: vec![] }, 0, false),
        ];
        assert!(judge(&ok, &known).is_empty());
    }
}
