//! The history of a run: every operation as an invoke followed by ok, fail or info (unknown
//! outcome: a timeout or a lost connection), with monotonic times from the start of the run,
//! the client (process) that made it and the node that answered. Written as JSON lines.

use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    /// The outcome is unknown: the operation may or may not have taken effect.
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum F {
    Deliver,
    Append,
    Store,
    Expunge,
    Move,
    Read,
    Nemesis,
}

/// One message as a client saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub uid: u32,
    /// None when the server sent no Message-ID (a flag-only FETCH after QRESYNC).
    pub msgid: Option<String>,
    pub modseq: Option<u64>,
    pub flags: Vec<String>,
}

/// What a reader saw in one resynchronisation of one mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub mailbox: String,
    pub uidvalidity: u32,
    pub highestmodseq: Option<u64>,
    pub messages: Vec<Seen>,
    pub vanished: Vec<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Microseconds since the start of the run (monotonic clock).
    pub t_us: u64,
    pub process: u32,
    pub kind: Kind,
    pub f: F,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
    /// Append: the acknowledged (UIDVALIDITY, UID). Store/expunge/move: the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uidvalidity: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The node that answered (from its greeting), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Observation>,
    /// Nemesis: the fault's description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    pub fn new(process: u32, kind: Kind, f: F) -> Event {
        Event {
            t_us: 0,
            process,
            kind,
            f,
            msgid: None,
            mailbox: None,
            uidvalidity: None,
            uid: None,
            node: None,
            read: None,
            fault: None,
            error: None,
        }
    }
    pub fn msgid(mut self, id: &str) -> Event {
        self.msgid = Some(id.to_string());
        self
    }
}

/// The shared, append-only history of a run. Cheap to clone (one lock around a Vec).
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            events: Arc::default(),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    /// Stamps `e` with the time now and appends it; returns the stamp.
    pub fn record(&self, mut e: Event) -> u64 {
        let t = self.start.elapsed().as_micros() as u64;
        e.t_us = t;
        // A poisoned lock only means another recorder thread panicked: keep its events.
        let mut v = self.events.lock().unwrap_or_else(|p| p.into_inner());
        v.push(e);
        t
    }

    pub fn snapshot(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// (ok, fail, info) completions so far.
    pub fn counts(&self) -> (usize, usize, usize) {
        let v = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let mut c = (0, 0, 0);
        for e in v.iter().filter(|e| e.f != F::Nemesis) {
            match e.kind {
                Kind::Ok => c.0 += 1,
                Kind::Fail => c.1 += 1,
                Kind::Info => c.2 += 1,
                Kind::Invoke => {}
            }
        }
        c
    }
}

pub fn write_jsonl(events: &[Event], path: &Path) -> anyhow::Result<()> {
    let f = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::new(f);
    for e in events {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

pub fn read_jsonl(path: &Path) -> anyhow::Result<Vec<Event>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// Completed operations paired with their invocations: (invoke, completion) per process in
/// order. An invoke with no completion (the run ended first) pairs with None.
pub fn pairs(events: &[Event]) -> Vec<(&Event, Option<&Event>)> {
    let mut open: std::collections::HashMap<u32, usize> = Default::default();
    let mut out: Vec<(&Event, Option<&Event>)> = Vec::new();
    for e in events.iter().filter(|e| e.f != F::Nemesis) {
        if e.kind == Kind::Invoke {
            open.insert(e.process, out.len());
            out.push((e, None));
        } else if let Some(i) = open.remove(&e.process) {
            out[i].1 = Some(e);
        }
    }
    out
}
