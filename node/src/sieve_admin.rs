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

/// Runs `op` on the scripts under `home` (the user's directory), with the path templates of
/// the configuration (`sieve`, `sieve_dir`).
pub fn execute(
    home: &std::path::Path,
    user: &str,
    active_path: &str,
    script_dir: &str,
    op: &SieveOp,
) -> Result<serde_json::Value, String> {
    use protocols::managesieve::storage::ScriptDir;
    let dir = ScriptDir {
        dir: protocols::lmtp::expand_path(script_dir, user, home),
        active_link: protocols::lmtp::expand_path(active_path, user, home),
    };
    let e = |e: protocols::managesieve::storage::StoreError| e.to_string();
    match op {
        SieveOp::List => {
            let active = dir.active();
            let list: Vec<ScriptEntry> = dir
                .list()
                .map_err(e)?
                .into_iter()
                .map(|(name, _)| ScriptEntry {
                    active: active.as_deref() == Some(name.as_str()),
                    name,
                })
                .collect();
            serde_json::to_value(list).map_err(|e| e.to_string())
        }
        SieveOp::Get { name } => {
            let bytes = dir.get(name).map_err(e)?;
            Ok(serde_json::Value::String(
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        }
        SieveOp::Put { name, script } => {
            sieve::Compiler::new()
                .compile(script)
                .map_err(|e| format!("script {name} does not compile: {e}"))?;
            dir.put(name, script.as_bytes()).map_err(e)?;
            Ok(serde_json::Value::Null)
        }
        SieveOp::Activate { name } => dir
            .set_active(Some(name))
            .map(|()| serde_json::Value::Null)
            .map_err(e),
        SieveOp::Deactivate => dir
            .set_active(None)
            .map(|()| serde_json::Value::Null)
            .map_err(e),
        SieveOp::Delete { name } => dir
            .delete(name)
            .map(|()| serde_json::Value::Null)
            .map_err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_on_a_users_scripts() {
        let d = tempfile::tempdir().unwrap();
        let run = |op: SieveOp| execute(d.path(), "demo", "~/.dovecot.sieve", "~/sieve", &op);
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
