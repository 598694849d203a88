//! The `passwd-file` driver over [`crate::auth::passwd_file::PasswdFile`].

use super::{DbError, Fields, PassDb, PassEntry, PassReply, Request, UserDb, UserEntry, UserReply};
use crate::auth::passwd_file::{PasswdEntry, PasswdFile};
use std::path::PathBuf;

pub struct PasswdDb {
    file: PasswdFile,
}

impl PasswdDb {
    pub fn new(path: PathBuf) -> PasswdDb {
        PasswdDb {
            file: PasswdFile::new(path),
        }
    }

    fn find(&self, req: &Request) -> Result<Option<PasswdEntry>, DbError> {
        let (_, users) = self.file.users().map_err(|e| DbError(e.to_string()))?;
        Ok(std::iter::once(&req.user)
            .chain(&req.alternatives)
            .find_map(|c| users.get(c).cloned()))
    }
}

impl PassDb for PasswdDb {
    fn name(&self) -> &'static str {
        "passwd-file"
    }

    fn lookup(&self, req: &Request, _password: Option<&str>) -> Result<PassReply, DbError> {
        Ok(match self.find(req)? {
            None => PassReply::Unknown,
            Some(e) => PassReply::Found(PassEntry {
                user: e.user,
                password: (!e.password.is_empty()).then_some(e.password),
                verified: false,
                fields: Fields(e.extra),
            }),
        })
    }

    fn generation(&self) -> Result<u64, DbError> {
        Ok(self.file.users().map_err(|e| DbError(e.to_string()))?.0)
    }
}

impl UserDb for PasswdDb {
    fn name(&self) -> &'static str {
        "passwd-file"
    }

    fn lookup(&self, req: &Request) -> Result<UserReply, DbError> {
        let Some(e) = self.find(req)? else {
            return Ok(UserReply::Unknown);
        };
        let mut fields = Fields::default();
        for (k, v) in [("uid", &e.uid), ("gid", &e.gid), ("home", &e.home)] {
            if !v.is_empty() {
                fields.push(k, v.clone());
            }
        }
        for (k, v) in e.extra {
            fields.push(k.strip_prefix("userdb_").unwrap_or(&k), v);
        }
        Ok(UserReply::Found(UserEntry {
            user: e.user,
            fields,
        }))
    }

    fn generation(&self) -> Result<u64, DbError> {
        Ok(self.file.users().map_err(|e| DbError(e.to_string()))?.0)
    }

    fn iterate(&self) -> Result<Option<Vec<String>>, DbError> {
        let (_, users) = self.file.users().map_err(|e| DbError(e.to_string()))?;
        Ok(Some(users.keys().cloned().collect()))
    }
}
