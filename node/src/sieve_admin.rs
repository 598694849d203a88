//! `node sieve list|get|put|activate|deactivate|delete -u USER` (doveadm sieve): the user's
//! scripts in the same place as ManageSieve keeps them, through the admin socket or directly.

use serde::{Deserialize, Serialize};

/// One operation on a user's scripts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum SieveOp {
    List,
    Get { name: String },
    Put { name: String, script: String },
    Activate { name: String },
    Deactivate,
    Delete { name: String },
}

/// A script in `list`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptEntry {
    pub name: String,
    pub active: bool,
}

/// Runs `op` on the user's scripts: attributes of the user's store, as ManageSieve keeps
/// them (`protocols::managesieve::attrs`). Script files in Pigeonhole's layout (the path
/// templates `sieve`, `sieve_dir` under the user's directory) are read while the attributes
/// are unused, and imported by the first change.
pub fn execute(
    us: &storage::UserStore,
    active_path: &str,
    script_dir: &str,
    op: &SieveOp,
) -> Result<serde_json::Value, String> {
    use protocols::managesieve::attrs;
    use protocols::managesieve::storage::ScriptDir;
    let (home, user) = (us.dir(), us.name());
    let files = ScriptDir {
        dir: protocols::lmtp::expand_path(script_dir, user, home),
        active_link: protocols::lmtp::expand_path(active_path, user, home),
    };
    let e = |e: protocols::managesieve::storage::StoreError| e.to_string();
    let in_use = attrs::in_use(us).map_err(e)?;
    match op {
        SieveOp::List => {
            let (list, active) = if in_use {
                let active = match attrs::active(us).map_err(e)? {
                    attrs::Active::Name(n) => Some(n),
                    _ => None,
                };
                (attrs::list(us).map_err(e)?, active)
            } else {
                (files.list().map_err(e)?, files.active())
            };
            let list: Vec<ScriptEntry> = list
                .into_iter()
                .map(|(name, _)| ScriptEntry {
                    active: active.as_deref() == Some(name.as_str()),
                    name,
                })
                .collect();
            serde_json::to_value(list).map_err(|e| e.to_string())
        }
        SieveOp::Get { name } => {
            let bytes = if in_use {
                attrs::get(us, name)
            } else {
                files.get(name)
            }
            .map_err(e)?;
            Ok(serde_json::Value::String(
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        }
        change => {
            let left = attrs::import(us, &files).map_err(e)?;
            if !left.is_empty() {
                tracing::warn!("sieve: scripts too large to import: {left:?}");
            }
            match change {
                SieveOp::Put { name, script } => {
                    sieve::Compiler::new()
                        .compile(script)
                        .map_err(|e| format!("script {name} does not compile: {e}"))?;
                    attrs::put(us, name, script.as_bytes())
                }
                SieveOp::Activate { name } => attrs::set_active(us, Some(name)),
                SieveOp::Deactivate => attrs::set_active(us, None),
                SieveOp::Delete { name } => attrs::delete(us, name),
                SieveOp::List | SieveOp::Get { .. } => Ok(()),
            }
            .map(|()| serde_json::Value::Null)
            .map_err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_on_a_users_scripts() {
        let d = tempfile::tempdir().unwrap();
        let store = storage::Store::open(storage::StoreConfig::new(d.path())).unwrap();
        let us = store.user("demo").unwrap();
        let run = |op: SieveOp| execute(&us, "~/.dovecot.sieve", "~/sieve", &op);
        assert!(run(SieveOp::Put {
            name: "bad".into(),
            script: "frob;".into()
        })
        .is_err());
        run(SieveOp::Put {
            name: "main".into(),
            script: "keep;".into(),
        })
        .unwrap();
        run(SieveOp::Activate {
            name: "main".into(),
        })
        .unwrap();
        let list: Vec<ScriptEntry> = serde_json::from_value(run(SieveOp::List).unwrap()).unwrap();
        assert_eq!(
            list,
            vec![ScriptEntry {
                name: "main".into(),
                active: true
            }]
        );
        assert_eq!(
            run(SieveOp::Get {
                name: "main".into()
            })
            .unwrap(),
            "keep;"
        );
        assert!(run(SieveOp::Delete {
            name: "main".into()
        })
        .is_err());
        run(SieveOp::Deactivate).unwrap();
        run(SieveOp::Delete {
            name: "main".into(),
        })
        .unwrap();
        let r = crate::admin::Request::Sieve {
            user: "demo".into(),
            active_path: "~/.dovecot.sieve".into(),
            script_dir: "~/sieve".into(),
            op: SieveOp::Get { name: "x".into() },
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(
            s,
            r#"{"cmd":"sieve","user":"demo","active_path":"~/.dovecot.sieve","script_dir":"~/sieve","op":"get","name":"x"}"#
        );
        assert_eq!(
            serde_json::from_str::<crate::admin::Request>(&s).unwrap(),
            r
        );
    }
}
