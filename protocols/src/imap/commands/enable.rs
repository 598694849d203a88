//! ENABLE (RFC 5161): CONDSTORE, QRESYNC, UTF8=ACCEPT, IMAP4rev2.

use crate::imap::reply::{Done, Reply};
use crate::imap::response::Untagged;
use crate::imap::session::Session;
use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;

pub(crate) fn enable(s: &mut Session, caps: Vec1<CapabilityEnable<'static>>) -> Reply {
    let mut enabled = Vec::new();
    let condstore_before = s.enabled.condstore;
    for c in caps.as_ref() {
        let name = c.to_string().to_ascii_uppercase();
        let e = &mut s.enabled;
        let newly = match name.as_str() {
            "CONDSTORE" => !std::mem::replace(&mut e.condstore, true),
            "QRESYNC" => {
                e.condstore = true;
                !std::mem::replace(&mut e.qresync, true)
            }
            "UTF8=ACCEPT" => !std::mem::replace(&mut e.utf8, true),
            "IMAP4REV2" => {
                e.utf8 = true;
                !std::mem::replace(&mut e.rev2, true)
            }
            _ => false,
        };
        if newly {
            enabled.push(if name == "IMAP4REV2" {
                "IMAP4rev2".to_string()
            } else {
                name
            });
        }
    }
    s.send(&Untagged::Enabled(
        enabled.iter().map(String::as_str).collect(),
    ));
    // ENABLE CONDSTORE/QRESYNC is a CONDSTORE-enabling command too: in a selected mailbox
    // the client learns HIGHESTMODSEQ (RFC 7162 3.1), after the ENABLED line.
    if !condstore_before && s.enabled.condstore {
        s.enabled.condstore = false;
        s.enable_condstore();
    }
    Ok(Done::Ok("Enabled.".into()))
}
