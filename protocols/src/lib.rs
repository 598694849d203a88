//! IMAP, POP3 and LMTP sessions: parsing, state machines and responses. They speak to the store
//! through [`mail::UserMail`] (whose writes wait for replicated durability themselves) and to the rest of the node through [`backend::Backend`]; they
//! know nothing of listeners, TLS configuration or replication.

pub mod backend;
pub mod blocking;
pub mod deflate;
pub mod imap;
/// The line reader POP3 and LMTP share.
mod line;
pub mod lmtp;
pub mod mail;
pub mod managesieve;
pub mod pop3;
pub mod proxy;
pub mod sasl;
pub mod stream;
#[cfg(test)]
mod testing;

pub use backend::{
    AuthOutcome, AuthRequest, Backend, ConnInfo, Credential, CredentialKind, CredentialsLookup,
    Service, SessionGuard, TokenCheck, UserInfo, VerifiedLogin, WriteRefused,
};
pub use stream::{AsyncStream, BoxStream, TlsUpgrade};
