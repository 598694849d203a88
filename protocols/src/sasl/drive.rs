//! The backend's part of an exchange, shared by the protocols: passdb lookups for
//! challenge-response mechanisms and the final password check or login completion.

use super::{Mechanism, ProofResult, SaslError, SaslExchange, SaslStep};
use crate::backend::{AuthOutcome, AuthRequest, Backend, ConnInfo, Service, VerifiedLogin};

/// Where an exchange stands after the backend had its say.
#[derive(Debug)]
pub enum Resolved {
    /// Send this (base64) challenge to the client and feed its answer to the exchange.
    Challenge(String),
    /// The login's outcome.
    Outcome(AuthOutcome),
}

/// Runs the backend steps that follow `step`, until the client must answer or the login ended.
pub async fn advance(
    backend: &dyn Backend,
    service: Service,
    conn: &ConnInfo,
    mechanism: Mechanism,
    exchange: &mut SaslExchange,
    mut step: SaslStep,
) -> Result<Resolved, SaslError> {
    loop {
        step = match step {
            SaslStep::Challenge(c) => return Ok(Resolved::Challenge(c)),
            SaslStep::NeedCredentials { user, kind } => {
                let found = backend.lookup_credentials(service, &user, kind).await;
                // SCRAM against a plaintext entry (or an unknown user) derives a secret: PBKDF2,
                // thousands of HMACs, kept off the async threads like other hashing.
                let mut owned = exchange.clone();
                let supplied = crate::blocking::run(move || {
                    let step = owned.supply(found);
                    (owned, step)
                })
                .await;
                match supplied {
                    Ok((owned, step)) => {
                        *exchange = owned;
                        step?
                    }
                    Err(e) => return Ok(Resolved::Outcome(AuthOutcome::TempFail(e))),
                }
            }
            SaslStep::NeedToken { user, token } => {
                let check = backend.validate_token(service, &user, &token).await;
                exchange.supply_token(check)?
            }
            SaslStep::External { authzid } => {
                // The certificate names the user; another authorization identity would be a
                // master-user login, which is not supported.
                let (user, proof_ok) = match &conn.tls_client_user {
                    Some(u) if authzid.is_empty() || authzid.eq_ignore_ascii_case(u) => {
                        (u.clone(), true)
                    }
                    Some(u) => (u.clone(), false),
                    None => return Ok(Resolved::Outcome(AuthOutcome::Failed)),
                };
                let outcome = backend
                    .complete_login(VerifiedLogin {
                        service,
                        user: &user,
                        authzid: None,
                        mechanism: mechanism.as_str(),
                        proof_ok,
                        conn,
                    })
                    .await;
                return Ok(Resolved::Outcome(outcome));
            }
            SaslStep::Done(c) => {
                let outcome = backend
                    .authenticate(AuthRequest {
                        service,
                        user: &c.authcid,
                        password: &c.password,
                        authzid: c.authzid.as_deref(),
                        mechanism: mechanism.as_str(),
                        conn,
                    })
                    .await;
                return Ok(Resolved::Outcome(outcome));
            }
            SaslStep::Verified(v) => {
                let proof_ok = match v.result {
                    ProofResult::Ok => true,
                    ProofResult::Failed => false,
                    ProofResult::TempFail(why) => {
                        return Ok(Resolved::Outcome(AuthOutcome::TempFail(why)))
                    }
                };
                let outcome = backend
                    .complete_login(VerifiedLogin {
                        service,
                        user: &v.user,
                        authzid: v.authzid.as_deref(),
                        mechanism: mechanism.as_str(),
                        proof_ok,
                        conn,
                    })
                    .await;
                return Ok(Resolved::Outcome(outcome));
            }
        }
    }
}
