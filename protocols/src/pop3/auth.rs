//! The AUTHORIZATION state's logins: USER/PASS, APOP and AUTH (the crate::sasl mechanisms,
//! with SASL-IR), then the start of the TRANSACTION state (session registration, the POP3 lock, INBOX's snapshot).

use super::lock::Pop3Lock;
use super::maildrop::Maildrop;
use super::session::{Session, Stop, Transaction};
use crate::backend::{
    AuthOutcome, AuthRequest, Credential, CredentialKind, CredentialsLookup, Service, VerifiedLogin,
};
use crate::sasl::{self, cram, Mechanism, Resolved, SaslError, SaslExchange};

const PLAINTEXT_DISALLOWED: &str =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.";

impl Session {
    fn plaintext_allowed(&mut self) -> bool {
        if self.ctx.backend.allow_plaintext(&self.info) {
            return true;
        }
        self.io.send_line(PLAINTEXT_DISALLOWED);
        false
    }

    pub(super) fn cmd_user(&mut self, user: String) {
        if self.plaintext_allowed() {
            self.user = Some(user);
            self.io.send_line("+OK");
        }
    }

    pub(super) async fn cmd_pass(&mut self, password: String) -> Result<(), Stop> {
        let Some(user) = self.user.take() else {
            self.io.send_line("-ERR No username given.");
            return self.bad_command();
        };
        if !self.plaintext_allowed() {
            return Ok(());
        }
        self.login(&user, &password, None, Mechanism::Plain).await
    }

    pub(super) async fn cmd_auth(&mut self, mech: String, ir: Option<String>) -> Result<(), Stop> {
        // A mechanism we implement but the configuration leaves out is as unknown as any other.
        let offered = Mechanism::parse(&mech)
            .ok()
            .filter(|m| self.ctx.config.mechanisms().contains(m))
            .ok_or(SaslError::UnsupportedMechanism);
        let mechanism = match offered {
            Ok(m) => m,
            Err(e) => {
                self.io.send_line(&format!("-ERR {e}"));
                return Ok(());
            }
        };
        if mechanism.carries_plaintext() && !self.plaintext_allowed() {
            return Ok(());
        }
        let backend = self.ctx.backend.clone();
        let info = self.info.clone();
        let mut step = SaslExchange::start(mechanism, ir.as_deref());
        loop {
            let resolved = match step {
                Ok((mut ex, st)) => {
                    sasl::advance(&*backend, Service::Pop3, &info, mechanism, &mut ex, st)
                        .await
                        .map(|r| (ex, r))
                }
                Err(e) => Err(e),
            };
            match resolved {
                Ok((mut exchange, Resolved::Challenge(challenge))) => {
                    self.io.send_line(&format!("+ {challenge}"));
                    let Some(line) = self.read_input().await? else {
                        self.io.send_line("-ERR [AUTH] Response too long.");
                        self.auth_failures += 1;
                        return Err(Stop::TooLong);
                    };
                    let line = String::from_utf8_lossy(&line).into_owned();
                    step = exchange.step(&line).map(|s| (exchange, s));
                }
                Ok((_, Resolved::Outcome(outcome))) => {
                    return self.login_outcome(outcome, mechanism.as_str()).await;
                }
                Err(SaslError::Cancelled) => {
                    self.io.send_line("-ERR Authentication aborted by client.");
                    return Ok(());
                }
                Err(e) => {
                    self.io.send_line(&format!("-ERR [AUTH] {e}"));
                    return self.auth_failed();
                }
            }
        }
    }

    /// APOP (RFC 1939): MD5 of the greeting's timestamp and the password, so the passdb must
    /// hold the plaintext.
    pub(super) async fn cmd_apop(&mut self, user: String, digest: String) -> Result<(), Stop> {
        let Some(timestamp) = self.apop_timestamp.clone() else {
            self.io.send_line("-ERR APOP not enabled.");
            return self.bad_command();
        };
        let backend = self.ctx.backend.clone();
        let found = backend
            .lookup_credentials(Service::Pop3, &user, CredentialKind::Plaintext)
            .await;
        let (user, proof_ok) = match found {
            CredentialsLookup::Found {
                user,
                credential: Credential::Plaintext(pw),
            } => {
                let ok = cram::apop_matches(&pw, &timestamp, &digest);
                (user, ok)
            }
            CredentialsLookup::Found { user, .. } | CredentialsLookup::Unusable { user } => {
                (user, false)
            }
            CredentialsLookup::UnknownUser => (user, false),
            CredentialsLookup::TempFail(why) => {
                return self.login_outcome(AuthOutcome::TempFail(why), "APOP").await;
            }
        };
        let outcome = backend
            .complete_login(VerifiedLogin {
                service: Service::Pop3,
                user: &user,
                authzid: None,
                mechanism: "APOP",
                proof_ok,
                conn: &self.info,
            })
            .await;
        self.login_outcome(outcome, "APOP").await
    }

    fn auth_failed(&mut self) -> Result<(), Stop> {
        self.auth_failures += 1;
        if self.auth_failures >= self.ctx.config.max_auth_failures {
            return Err(Stop::Said);
        }
        Ok(())
    }

    async fn login(
        &mut self,
        user: &str,
        password: &str,
        authzid: Option<&str>,
        mechanism: Mechanism,
    ) -> Result<(), Stop> {
        let outcome = self
            .ctx
            .backend
            .authenticate(AuthRequest {
                service: Service::Pop3,
                user,
                password,
                authzid,
                mechanism: mechanism.as_str(),
                conn: &self.info,
            })
            .await;
        self.login_outcome(outcome, mechanism.as_str()).await
    }

    async fn login_outcome(
        &mut self,
        outcome: AuthOutcome,
        mechanism: &'static str,
    ) -> Result<(), Stop> {
        match outcome {
            AuthOutcome::Ok { user } => self.start_transaction(user, mechanism).await,
            AuthOutcome::Proxy { user, target } => self.proxy(user, *target, mechanism).await,
            AuthOutcome::Failed => {
                self.io.send_line("-ERR [AUTH] Authentication failed.");
                self.auth_failed()
            }
            AuthOutcome::RateLimited => {
                self.auth_failures += 1;
                self.io.send_line(
                    "-ERR [SYS/TEMP] Too many authentication failures, try again later.",
                );
                Err(Stop::Said)
            }
            AuthOutcome::TempFail(why) => {
                tracing::warn!("pop3-login: temporary authentication failure: {why}");
                self.io
                    .send_line("-ERR [SYS/TEMP] Temporary authentication failure.");
                Ok(())
            }
        }
    }

    async fn start_transaction(
        &mut self,
        user: String,
        mechanism: &'static str,
    ) -> Result<(), Stop> {
        let backend = self.ctx.backend.clone();
        let guard = match backend.register_session(Service::Pop3, &user, self.info.remote.ip()) {
            Ok(g) => g,
            Err(why) => {
                self.io.send_line(&format!("-ERR [IN-USE] {why}"));
                return Ok(());
            }
        };
        let store = match crate::mail::UserMail::open(&backend, &user).await {
            Ok(s) => s,
            Err(why) => {
                tracing::error!("pop3({user}): cannot open the user's store: {why}");
                self.io.send_line("-ERR [SYS/TEMP] Couldn't open INBOX.");
                return Ok(());
            }
        };
        let lock = if self.ctx.config.lock_session {
            match Pop3Lock::try_acquire(store.reader()) {
                Some(lock) => Some(lock),
                None => {
                    self.io
                        .send_line("-ERR [IN-USE] Mailbox is locked by another POP3 session.");
                    return Ok(());
                }
            }
        } else {
            None
        };
        let snapshot = {
            let store = store.reader().clone();
            crate::blocking::run(move || store.messages("INBOX")).await
        };
        let messages = match snapshot {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::error!("pop3({user}): cannot list INBOX: {e}");
                self.io.send_line("-ERR [SYS/TEMP] Couldn't open INBOX.");
                return Ok(());
            }
            Err(e) => {
                tracing::error!("pop3({user}): cannot list INBOX: {e}");
                self.io.send_line("-ERR [SYS/TEMP] Couldn't open INBOX.");
                return Ok(());
            }
        };
        tracing::Span::current().record("user", user.as_str());
        tracing::info!(
            "pop3-login: Login: user=<{user}>, method={}, rip={}, lip={}, {}session=<{}>",
            mechanism,
            self.info.remote.ip(),
            self.info.local.ip(),
            if self.info.tls { "TLS, " } else { "" },
            self.info.session_id
        );
        self.tx = Some(Transaction {
            user,
            store,
            maildrop: Maildrop::new(messages),
            top: (0, 0),
            retr: (0, 0),
            expunged: 0,
            lock,
            session: Some(guard),
        });
        self.io.send_line("+OK Logged in.");
        Ok(())
    }
}
