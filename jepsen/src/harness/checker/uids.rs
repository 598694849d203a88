//! Invariant 2: within one UIDVALIDITY a UID names one message forever. Every
//! (mailbox, UIDVALIDITY, UID) -> Message-ID that any client saw (APPENDUID acknowledgements,
//! readers' FETCHes) or that a node holds at the end must agree.

use super::{Input, Verdict};
use crate::harness::history::{Kind, F};
use std::collections::BTreeMap;

pub fn check(input: &Input) -> Verdict {
    let mut v = Verdict::new("uid-reuse", "2: a UID names one message forever");
    // key -> (Message-ID, who first said so)
    let mut named: BTreeMap<(String, u32, u32), (String, String)> = BTreeMap::new();
    let mut claim = |v: &mut Verdict, key: (String, u32, u32), msgid: &str, who: String| match named
        .get(&key)
    {
        Some((m, first)) if m != msgid => v.fail(format!(
            "{}/{}/{}: {m} ({first}) and {msgid} ({who})",
            key.0, key.1, key.2
        )),
        Some(_) => {}
        None => {
            named.insert(key, (msgid.to_string(), who));
        }
    };
    for e in input.history.iter().filter(|e| e.kind == Kind::Ok) {
        if e.f == F::Append {
            if let (Some(m), Some(uv), Some(uid)) = (&e.msgid, e.uidvalidity, e.uid) {
                v.count("appenduid_acks", 1);
                claim(
                    &mut v,
                    ("INBOX".into(), uv, uid),
                    m,
                    format!("APPENDUID to process {}", e.process),
                );
            }
        }
        if let Some(obs) = &e.read {
            for s in &obs.messages {
                if let Some(m) = &s.msgid {
                    v.count("uids_seen_by_readers", 1);
                    claim(
                        &mut v,
                        (obs.mailbox.clone(), obs.uidvalidity, s.uid),
                        m,
                        format!("read by process {} at {} ms", e.process, e.t_us / 1000),
                    );
                }
            }
        }
    }
    for (id, d) in input.dumps {
        let Ok(d) = d else { continue };
        for (name, mb) in d {
            for s in &mb.messages {
                if let Some(m) = &s.msgid {
                    claim(
                        &mut v,
                        (name.clone(), mb.uidvalidity, s.uid),
                        m,
                        format!("node {id} at the end"),
                    );
                }
            }
        }
    }
    v.count("distinct_uids", named.len() as u64);
    v
}
