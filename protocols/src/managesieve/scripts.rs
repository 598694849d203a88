//! The script commands of an authenticated session: HAVESPACE, PUTSCRIPT, CHECKSCRIPT,
//! LISTSCRIPTS, SETACTIVE, GETSCRIPT, DELETESCRIPT and RENAMESCRIPT.

use super::attrs::{self, Active, Attrs};
use super::parse::{quote, Command};
use super::session::Session;
use super::storage::{valid_name, StoreError};
use super::ManageSieveConfig;
use crate::mail::{UserMail, WriteError};

/// A reply: OK or NO with an optional response code and text.
fn no(code: Option<&str>, text: &str) -> String {
    match code {
        Some(c) => format!("NO ({c}) {}", quote(text)),
        None => format!("NO {}", quote(text)),
    }
}

/// RFC 5804 section 1.3: a script that compiled with warnings is accepted with the WARNINGS
/// response code and their text.
fn ok_warnings(text: &str) -> String {
    format!("OK (WARNINGS) {}", quote(text))
}

fn store_error(e: &StoreError) -> String {
    match e {
        StoreError::NoSuchScript => no(Some("NONEXISTENT"), &e.to_string()),
        StoreError::Exists => no(Some("ALREADYEXISTS"), &e.to_string()),
        StoreError::Active => no(Some("ACTIVE"), &e.to_string()),
        StoreError::BadName => no(None, &e.to_string()),
        StoreError::TooLarge => no(Some("QUOTA/MAXSIZE"), &e.to_string()),
        StoreError::Io(io) => {
            tracing::error!("managesieve: script storage: {io}");
            no(Some("TRYLATER"), "Internal error.")
        }
    }
}

impl Session {
    /// Compiles a script: its warnings' text (empty when none), or the error text when it
    /// does not compile.
    fn check(script: &[u8]) -> Result<String, String> {
        let src =
            std::str::from_utf8(script).map_err(|_| "Script is not valid UTF-8.".to_string())?;
        sieve::Compiler::new()
            .compile(src)
            .map(|s| {
                s.warnings
                    .iter()
                    .map(|w| format!("{}: warning: {}", w.line, w.message))
                    .collect::<Vec<_>>()
                    .join("\r\n")
            })
            .map_err(|e| {
                e.errors
                    .iter()
                    .map(|e| format!("{}: error: {}", e.line, e.message))
                    .collect::<Vec<_>>()
                    .join("\r\n")
            })
    }

    pub(super) async fn script_command(&mut self, store: UserMail, cmd: Command) {
        let user = store.user().to_string();
        let reader = store.reader().clone();
        let quota = self.ctx.config.clone();
        let reply = match cmd {
            Command::HaveSpace { name, size } => {
                if !valid_name(&name) {
                    no(None, "Invalid script name.")
                } else {
                    match crate::blocking::run(move || refusal(&quota, &reader, &name, size)).await
                    {
                        Ok(None) => "OK \"Putscript would succeed.\"".to_string(),
                        Ok(Some(r)) => r,
                        Err(e) => no(Some("TRYLATER"), &e),
                    }
                }
            }
            Command::CheckScript(script) => match Self::check(&script) {
                Ok(w) if w.is_empty() => "OK \"Script is valid.\"".to_string(),
                Ok(w) => ok_warnings(&w),
                Err(e) => no(None, &e),
            },
            Command::PutScript { name, script } => {
                if !valid_name(&name) {
                    no(None, "Invalid script name.")
                } else {
                    match Self::check(&script) {
                        Err(e) => no(None, &e),
                        Ok(warnings) => {
                            let n = name.clone();
                            let r = store
                                .write(move |st| {
                                    if let Some(refusal) =
                                        refusal(&quota, st, &n, script.len() as u64)
                                    {
                                        return Ok(Some(refusal));
                                    }
                                    attrs::put(st, &n, &script).map(|()| None)
                                })
                                .await;
                            match r {
                                Ok(Ok(None)) => {
                                    tracing::info!("managesieve({user}): stored script {name}");
                                    if warnings.is_empty() {
                                        "OK \"Putscript completed.\"".to_string()
                                    } else {
                                        ok_warnings(&warnings)
                                    }
                                }
                                Ok(Ok(Some(refusal))) => refusal,
                                Ok(Err(e)) => store_error(&e),
                                Err(e) => write_error(&e),
                            }
                        }
                    }
                }
            }
            Command::ListScripts => {
                let r = crate::blocking::run(move || {
                    Ok::<_, StoreError>((attrs::list(&reader)?, attrs::active(&reader)?))
                })
                .await;
                match r {
                    Ok(Ok((list, active))) => {
                        for (name, _) in list {
                            if active == Active::Name(name.clone()) {
                                self.io.send_line(&format!("{} ACTIVE", quote(&name)));
                            } else {
                                self.io.send_line(&quote(&name));
                            }
                        }
                        "OK \"Listscripts completed.\"".to_string()
                    }
                    Ok(Err(e)) => store_error(&e),
                    Err(e) => no(Some("TRYLATER"), &e),
                }
            }
            Command::GetScript(name) => {
                match crate::blocking::run(move || attrs::get(&reader, &name)).await {
                    Ok(Ok(script)) => {
                        self.io.send(format!("{{{}}}\r\n", script.len()).as_bytes());
                        self.io.send(&script);
                        self.io.send(b"\r\n");
                        "OK \"Getscript completed.\"".to_string()
                    }
                    Ok(Err(e)) => store_error(&e),
                    Err(e) => no(Some("TRYLATER"), &e),
                }
            }
            Command::SetActive(name) => {
                let n = name.clone();
                let r = store
                    .write(move |st| attrs::set_active(st, (!n.is_empty()).then_some(n.as_str())))
                    .await;
                match r {
                    Ok(Ok(())) => {
                        tracing::info!("managesieve({user}): active script is now {name:?}");
                        "OK \"Setactive completed.\"".to_string()
                    }
                    Ok(Err(e)) => store_error(&e),
                    Err(e) => write_error(&e),
                }
            }
            Command::DeleteScript(name) => {
                match store.write(move |st| attrs::delete(st, &name)).await {
                    Ok(Ok(())) => "OK \"Deletescript completed.\"".to_string(),
                    Ok(Err(e)) => store_error(&e),
                    Err(e) => write_error(&e),
                }
            }
            Command::RenameScript { from, to } => {
                match store.write(move |st| attrs::rename(st, &from, &to)).await {
                    Ok(Ok(())) => "OK \"Renamescript completed.\"".to_string(),
                    Ok(Err(e)) => store_error(&e),
                    Err(e) => write_error(&e),
                }
            }
            _ => no(None, "Unexpected command."),
        };
        self.io.send_line(&reply);
    }
}

fn write_error(e: &WriteError) -> String {
    tracing::warn!("managesieve: script write: {e}");
    no(
        Some("TRYLATER"),
        "Scripts cannot be changed on this server now.",
    )
}

/// Why storing `size` bytes as script `name` would exceed the quotas, if it would.
fn refusal(c: &ManageSieveConfig, a: &dyn Attrs, name: &str, size: u64) -> Option<String> {
    // A script is one attribute value: the change log bounds it too.
    if size > c.max_script_size.min(attrs::MAX_SCRIPT) {
        return Some(no(
            Some("QUOTA/MAXSIZE"),
            "Script is larger than the maximum size.",
        ));
    }
    let list = attrs::list(a).unwrap_or_default();
    let others: Vec<&(String, u64)> = list.iter().filter(|(n, _)| n != name).collect();
    if c.max_scripts > 0 && others.len() >= c.max_scripts {
        return Some(no(Some("QUOTA/MAXSCRIPTS"), "Too many scripts."));
    }
    let used: u64 = others.iter().map(|(_, s)| *s).sum();
    if c.max_storage > 0 && used + size > c.max_storage {
        return Some(no(
            Some("QUOTA/MAXSTORAGE"),
            "Not enough script storage left.",
        ));
    }
    None
}

#[cfg(test)]
mod warning_tests {
    use super::*;

    #[test]
    fn warnings_come_back_with_ok() {
        let w =
            Session::check(b"require \"editheader\";\naddheader \"X-A\" \"a\x07b\";\n").unwrap();
        assert!(w.starts_with("2: warning: addheader"), "{w}");
        assert!(ok_warnings(&w).starts_with("OK (WARNINGS) \"2: warning:"));
        assert_eq!(Session::check(b"keep;").unwrap(), "");
        assert!(Session::check(b"frop;").unwrap_err().contains("1: error"));
    }
}
