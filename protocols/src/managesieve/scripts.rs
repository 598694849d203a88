//! The script commands of an authenticated session: HAVESPACE, PUTSCRIPT, CHECKSCRIPT,
//! LISTSCRIPTS, SETACTIVE, GETSCRIPT, DELETESCRIPT and RENAMESCRIPT.

use super::parse::{quote, Command};
use super::session::Session;
use super::storage::{valid_name, ScriptDir, StoreError};
use std::sync::Arc;

/// A reply: OK or NO with an optional response code and text.
fn no(code: Option<&str>, text: &str) -> String {
    match code {
        Some(c) => format!("NO ({c}) {}", quote(text)),
        None => format!("NO {}", quote(text)),
    }
}

fn store_error(e: &StoreError) -> String {
    match e {
        StoreError::NoSuchScript => no(Some("NONEXISTENT"), &e.to_string()),
        StoreError::Exists => no(Some("ALREADYEXISTS"), &e.to_string()),
        StoreError::Active => no(Some("ACTIVE"), &e.to_string()),
        StoreError::BadName => no(None, &e.to_string()),
        StoreError::Io(io) => {
            tracing::error!("managesieve: script storage: {io}");
            no(Some("TRYLATER"), "Internal error.")
        }
    }
}

impl Session {
    /// Compiles a script; the error text when it does not.
    fn check(script: &[u8]) -> Result<(), String> {
        let src =
            std::str::from_utf8(script).map_err(|_| "Script is not valid UTF-8.".to_string())?;
        sieve::Compiler::new()
            .compile(src)
            .map(|_| ())
            .map_err(|e| {
                e.0.iter()
                    .map(|e| format!("{}: error: {}", e.line, e.message))
                    .collect::<Vec<_>>()
                    .join("\r\n")
            })
    }

    pub(super) async fn script_command(&mut self, dir: Arc<ScriptDir>, cmd: Command) {
        let user = self
            .user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_default();
        let reply = match cmd {
            Command::HaveSpace { name, size } => {
                if !valid_name(&name) {
                    no(None, "Invalid script name.")
                } else {
                    let d = dir.clone();
                    let this = self.quota_check_fn();
                    match crate::blocking::run(move || this(&d, &name, size)).await {
                        Ok(None) => "OK \"Putscript would succeed.\"".to_string(),
                        Ok(Some(r)) => r,
                        Err(e) => no(Some("TRYLATER"), &e),
                    }
                }
            }
            Command::CheckScript(script) => match Self::check(&script) {
                Ok(()) => "OK \"Script is valid.\"".to_string(),
                Err(e) => no(None, &e),
            },
            Command::PutScript { name, script } => {
                if !valid_name(&name) {
                    no(None, "Invalid script name.")
                } else if let Err(e) = Self::check(&script) {
                    no(None, &e)
                } else {
                    let this = self.quota_check_fn();
                    let d = dir.clone();
                    let n = name.clone();
                    let r = crate::blocking::run(move || {
                        if let Some(refusal) = this(&d, &n, script.len() as u64) {
                            return Ok(Some(refusal));
                        }
                        d.put(&n, &script).map(|()| None)
                    })
                    .await;
                    match r {
                        Ok(Ok(None)) => {
                            tracing::info!("managesieve({user}): stored script {name}");
                            "OK \"Putscript completed.\"".to_string()
                        }
                        Ok(Ok(Some(refusal))) => refusal,
                        Ok(Err(e)) => store_error(&e),
                        Err(e) => no(Some("TRYLATER"), &e),
                    }
                }
            }
            Command::ListScripts => {
                let d = dir.clone();
                match crate::blocking::run(move || d.list().map(|l| (l, d.active()))).await {
                    Ok(Ok((list, active))) => {
                        for (name, _) in list {
                            if active.as_deref() == Some(name.as_str()) {
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
                let d = dir.clone();
                match crate::blocking::run(move || d.get(&name)).await {
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
                let d = dir.clone();
                let n = name.clone();
                let r = crate::blocking::run(move || {
                    d.set_active((!n.is_empty()).then_some(n.as_str()))
                })
                .await;
                match r {
                    Ok(Ok(())) => {
                        tracing::info!("managesieve({user}): active script is now {name:?}");
                        "OK \"Setactive completed.\"".to_string()
                    }
                    Ok(Err(e)) => store_error(&e),
                    Err(e) => no(Some("TRYLATER"), &e),
                }
            }
            Command::DeleteScript(name) => {
                let d = dir.clone();
                match crate::blocking::run(move || d.delete(&name)).await {
                    Ok(Ok(())) => "OK \"Deletescript completed.\"".to_string(),
                    Ok(Err(e)) => store_error(&e),
                    Err(e) => no(Some("TRYLATER"), &e),
                }
            }
            Command::RenameScript { from, to } => {
                let d = dir.clone();
                match crate::blocking::run(move || d.rename(&from, &to)).await {
                    Ok(Ok(())) => "OK \"Renamescript completed.\"".to_string(),
                    Ok(Err(e)) => store_error(&e),
                    Err(e) => no(Some("TRYLATER"), &e),
                }
            }
            _ => no(None, "Unexpected command."),
        };
        self.io.send_line(&reply);
    }

    /// The quota check as a function the blocking pool can run.
    #[allow(clippy::type_complexity)]
    fn quota_check_fn(&self) -> Box<dyn Fn(&ScriptDir, &str, u64) -> Option<String> + Send> {
        let c = self.ctx.config.clone();
        Box::new(move |d: &ScriptDir, name: &str, size: u64| {
            let s = QuotaView { c: &c };
            s.refusal(d, name, size)
        })
    }
}

struct QuotaView<'a> {
    c: &'a super::ManageSieveConfig,
}

impl QuotaView<'_> {
    fn refusal(&self, dir: &ScriptDir, name: &str, size: u64) -> Option<String> {
        let c = self.c;
        if size > c.max_script_size {
            return Some(no(
                Some("QUOTA/MAXSIZE"),
                "Script is larger than the maximum size.",
            ));
        }
        let list = dir.list().unwrap_or_default();
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
}
