//! What challenge-response SASL mechanisms (SCRAM, CRAM-MD5, APOP) need from the passdb: the
//! stored credential instead of a password check, and the end of a login whose proof the
//! protocol checked.

use super::db::{ChainResult, PassReply, Request};
use super::{schemes, with_policy, Authenticator, Verdict};
use protocols::sasl::scram::ScramSecret;
use protocols::{AuthOutcome, Credential, CredentialKind, CredentialsLookup, Service};
use std::net::IpAddr;
use std::sync::Arc;

impl Authenticator {
    /// Whether a `deny` passdb lists the user (refused whatever the mechanism). Blocking.
    fn denied_blocking(&self, req: &Request) -> Result<bool, String> {
        for (db, rules) in self.passdbs.iter().zip(&self.pass_rules) {
            if rules.deny {
                match db.lookup(req, None) {
                    Ok(PassReply::Found(_)) => return Ok(true),
                    Ok(_) => {}
                    Err(e) => return Err(format!("{}: {e}", db.name())),
                }
            }
        }
        Ok(false)
    }

    /// The passdb's credential of `user` in the form `kind` asks. A `{PLAIN}` entry serves
    /// every kind; a `{SCRAM-SHA-*}` entry serves its own SCRAM hash; other hashes, and
    /// drivers that check passwords themselves (PAM, LDAP auth_bind, checkpassword), serve
    /// none. Blocking (driver I/O).
    pub fn credentials_blocking(&self, user: &str, kind: CredentialKind) -> CredentialsLookup {
        let entry = match self.passdb_entry_blocking(user) {
            Ok(Some(e)) => e,
            Ok(None) => return CredentialsLookup::UnknownUser,
            Err(e) => return CredentialsLookup::TempFail(e),
        };
        let user = entry.user.clone();
        let Some(stored) = entry.password.as_deref().filter(|p| !p.is_empty()) else {
            return CredentialsLookup::Unusable { user };
        };
        let (scheme, stored) = schemes::split_scheme(stored);
        let credential = match (schemes::Scheme::parse(scheme), kind) {
            (Ok(schemes::Scheme::Plain), _) => Credential::Plaintext(stored.to_string()),
            (Ok(s), CredentialKind::Scram(wanted)) if schemes::scram_hash(s) == Some(wanted) => {
                match ScramSecret::parse_dovecot(wanted, stored) {
                    Ok(secret) => Credential::Scram(secret),
                    // A broken entry is the operator's to fix, not a wrong password.
                    Err(e) => return CredentialsLookup::TempFail(format!("user {user}: {e}")),
                }
            }
            _ => {
                if self.settings.verbose {
                    tracing::info!(target: "auth", "passdb({user}): {scheme} password scheme cannot serve {kind:?}");
                }
                return CredentialsLookup::Unusable { user };
            }
        };
        CredentialsLookup::Found { user, credential }
    }

    /// Ends a login whose proof a mechanism checked: deny passdbs and the passdb's refusals
    /// (`nologin`, `allow_nets`) apply to a right proof, and everything
    /// [`Authenticator::authenticate`] does around a password check (rate limit, logs,
    /// counters, failure delay) to both.
    pub async fn complete_login(
        self: &Arc<Self>,
        service: Service,
        user: &str,
        proof_ok: bool,
        rip: IpAddr,
        session: &str,
    ) -> AuthOutcome {
        let this = self.clone();
        let name = user.to_string();
        let check = async move {
            let looked_up = tokio::task::spawn_blocking(move || {
                let req = this.request(&name, service.as_str(), Some(rip));
                match this.denied_blocking(&req) {
                    Ok(true) => {
                        return Verdict::Refused {
                            user: req.user,
                            reason: "listed in a deny passdb".into(),
                        }
                    }
                    Ok(false) => {}
                    Err(e) => return Verdict::TempFail(e),
                }
                match this.passdb_entry_blocking(&name) {
                    Ok(Some(entry)) if proof_ok => {
                        this.conclude(ChainResult::from_step(with_policy(entry, Some(rip))), &req)
                    }
                    Ok(Some(_)) => Verdict::Mismatch,
                    Ok(None) => Verdict::UnknownUser,
                    Err(e) => Verdict::TempFail(e),
                }
            })
            .await;
            looked_up.unwrap_or_else(|e| Verdict::TempFail(format!("internal error: {e}")))
        };
        self.authenticate_with(service, user, rip, session, check)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(lines: &str) -> (tempfile::TempDir, Arc<Authenticator>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, lines).unwrap();
        let config = crate::config::Config {
            passdb: vec![crate::config::DbConfig::passwd_file(path)],
            auth_failure_delay: crate::config::values::DurationSetting(
                std::time::Duration::from_millis(1),
            ),
            ..crate::config::Config::default()
        };
        let settings = super::super::AuthSettings::from_config(&config).unwrap();
        (dir, Authenticator::new(settings, &config))
    }

    #[tokio::test]
    async fn credentials_by_scheme() {
        let scram = schemes::hash(schemes::Scheme::ScramSha256, "pencil").unwrap();
        let argon = "{SHA256-CRYPT}$5$irrdusuLWeD9g2ta$mxJ.gVxf/Z3e7aPCCEblUdRZHjHc16pPKZxYjpZwvT9";
        let (_d, auth) = setup(&format!(
            "plain:{{PLAIN}}pencil::::\nscram:{scram}::::\nhashed:{argon}::::\n\
             off:{{PLAIN}}pencil::::::nologin reason=gone\nbroken:{{SCRAM-SHA-256}}1,2,3::::\n"
        ));
        let sha256 = CredentialKind::Scram(protocols::sasl::scram::ScramHash::Sha256);
        let sha1 = CredentialKind::Scram(protocols::sasl::scram::ScramHash::Sha1);
        assert_eq!(
            auth.credentials_blocking("PLAIN", CredentialKind::Plaintext),
            CredentialsLookup::Found {
                user: "plain".into(),
                credential: Credential::Plaintext("pencil".into())
            }
        );
        match auth.credentials_blocking("scram", sha256) {
            CredentialsLookup::Found {
                credential: Credential::Scram(s),
                ..
            } => assert!(s.matches_password("pencil")),
            other => panic!("{other:?}"),
        }
        for (user, kind) in [
            ("scram", sha1),
            ("scram", CredentialKind::Plaintext),
            ("hashed", sha256),
        ] {
            assert_eq!(
                auth.credentials_blocking(user, kind),
                CredentialsLookup::Unusable { user: user.into() }
            );
        }
        assert_eq!(
            auth.credentials_blocking("nobody", sha256),
            CredentialsLookup::UnknownUser
        );
        assert!(matches!(
            auth.credentials_blocking("broken", sha256),
            CredentialsLookup::TempFail(_)
        ));

        // The SCRAM entry also serves PLAIN logins, as in Dovecot.
        let rip: IpAddr = "192.0.2.1".parse().unwrap();
        let ok = auth
            .authenticate(Service::Imap, "scram", "pencil", rip, "s")
            .await;
        assert_eq!(
            ok,
            AuthOutcome::Ok {
                user: "scram".into()
            }
        );

        // A right proof still meets nologin; a wrong one is a failure.
        assert_eq!(
            auth.complete_login(Service::Imap, "plain", true, rip, "s")
                .await,
            AuthOutcome::Ok {
                user: "plain".into()
            }
        );
        for (user, proof) in [("off", true), ("plain", false), ("nobody", true)] {
            assert_eq!(
                auth.complete_login(Service::Imap, user, proof, rip, "s")
                    .await,
                AuthOutcome::Failed,
                "{user}"
            );
        }
    }

    /// A deny passdb refuses a user whatever the mechanism proved.
    #[tokio::test]
    async fn deny_passdb_holds_for_verified_logins() {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users");
        let denied = dir.path().join("denied");
        std::fs::write(&users, "demo:{PLAIN}demo::::::\nbad:{PLAIN}bad::::::\n").unwrap();
        std::fs::write(&denied, "bad:::::::\n").unwrap();
        let config = crate::config::parse_str(
            &format!(
                "auth_failure_delay = \"0\"\n[[passdb]]\ndriver = \"passwd-file\"\nargs = {:?}\ndeny = true\n\
                 [[passdb]]\ndriver = \"passwd-file\"\nargs = {:?}\n",
                denied.display().to_string(),
                users.display().to_string()
            ),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let settings = super::super::AuthSettings::from_config(&config).unwrap();
        let auth = Authenticator::new(settings, &config);
        let rip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            auth.complete_login(Service::Imap, "demo", true, rip, "s")
                .await,
            AuthOutcome::Ok {
                user: "demo".into()
            }
        );
        assert_eq!(
            auth.complete_login(Service::Imap, "bad", true, rip, "s")
                .await,
            AuthOutcome::Failed
        );
    }
}
