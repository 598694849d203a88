//! The per-user change log: numbered segment files of framed, checksummed entries
//! (`<user>/log/NNNNNNNN.seg`). The log is the truth; everything else is derived from it.
//!
//! An entry's payload starts with a tag: [`TAG_RECORD`] then a bincode [`Record`], or
//! [`TAG_OBJECT`] then a message object (as in a pack). Objects of a group commit travel in the
//! log beside their records, so one fdatasync makes a whole batch durable; purge later moves
//! them into packs and rewrites closed segments without them (records byte for byte).

use crate::error::{Result, StoreError};
use crate::framed::{self, Kind, ScanEnd, HEADER_LEN};
use crate::record::Record;
use std::path::Path;

pub const KIND: Kind = Kind {
    magic: *b"MLOGSEG\0",
    version: 2,
    max_frame: MAX_RECORD as u32,
    first_chunk: 64 << 10,
    max_chunk: 4 << 20,
};
pub const EXT: &str = "seg";
/// A segment is closed and a new one started once it passes this size.
pub const SEGMENT_MAX: u64 = 64 << 20;
/// Largest encoded record accepted (from disk or a peer).
pub const MAX_RECORD: usize = 64 << 20;

pub const TAG_RECORD: u8 = 0;
pub const TAG_OBJECT: u8 = 1;

pub fn encode_record(r: &Record) -> Vec<u8> {
    let mut out = vec![TAG_RECORD];
    // Encoding plain in-memory structs cannot fail.
    let _ = bincode::serde::encode_into_std_write(r, &mut out, bincode::config::standard());
    out
}

/// Decodes one record payload (tag and bincode), refusing trailing bytes and anything over
/// [`MAX_RECORD`].
pub fn decode_record(payload: &[u8]) -> std::result::Result<Record, String> {
    match payload.split_first() {
        Some((&TAG_RECORD, bytes)) => decode_record_body(bytes),
        Some((t, _)) => Err(format!("not a record (tag {t})")),
        None => Err("empty entry".into()),
    }
}

fn decode_record_body(bytes: &[u8]) -> std::result::Result<Record, String> {
    let cfg = bincode::config::standard().with_limit::<MAX_RECORD>();
    match bincode::serde::decode_from_slice::<Record, _>(bytes, cfg) {
        Ok((r, n)) if n == bytes.len() => Ok(r),
        Ok((_, n)) => Err(format!("{} trailing bytes after record", bytes.len() - n)),
        Err(e) => Err(format!("undecodable record: {e}")),
    }
}

/// A position in the log: segment number and byte offset.
pub type Pos = (u32, u64);

/// One entry of the log.
pub enum Entry {
    Record(Record),
    /// A message object at this frame offset of this segment.
    Object {
        id: crate::types::ObjectId,
        raw_len: u64,
    },
}

/// Reads records from `from` up to `until` (a bound on the end offset of entries read in that
/// segment), calling `f(position after the record, record)`. Returns the end of the last
/// segment and whether its tail was torn.
pub fn read(
    log_dir: &Path,
    user: &str,
    from: Pos,
    until: Option<Pos>,
    mut f: impl FnMut(Pos, Record) -> Result<()>,
) -> Result<Option<(u32, ScanEnd)>> {
    read_entries(log_dir, user, from, until, |pos, _, e| match e {
        Entry::Record(r) => f(pos, r),
        Entry::Object { .. } => Ok(()),
    })
}

/// Like [`read`], for every entry: `f(position after it, (segment, frame offset), entry)`. A
/// torn tail in a segment that is not the last one, or an entry that does not decode, is
/// corruption.
pub fn read_entries(
    log_dir: &Path,
    user: &str,
    from: Pos,
    until: Option<Pos>,
    mut f: impl FnMut(Pos, Pos, Entry) -> Result<()>,
) -> Result<Option<(u32, ScanEnd)>> {
    read_entries_while(
        log_dir,
        user,
        from,
        until,
        |_| false,
        |a, b, e| f(a, b, e).map(|()| true),
    )
}

/// Like [`read_entries`], skipping the segments `skip` names and stopping when `f` returns
/// false (the returned end is then only where reading stopped).
pub fn read_entries_while(
    log_dir: &Path,
    user: &str,
    from: Pos,
    until: Option<Pos>,
    skip: impl Fn(u32) -> bool,
    mut f: impl FnMut(Pos, Pos, Entry) -> Result<bool>,
) -> Result<Option<(u32, ScanEnd)>> {
    let segs = framed::list_numbered(log_dir, EXT)?;
    let mut last = None;
    let n = segs.len();
    for (i, (no, path)) in segs.into_iter().enumerate() {
        if no < from.0 {
            continue;
        }
        if let Some((useg, _)) = until {
            if no > useg {
                break;
            }
        }
        if skip(no) {
            continue;
        }
        let start = if no == from.0 { from.1 } else { HEADER_LEN };
        let limit = until.and_then(|(s, o)| (s == no).then_some(o));
        let mut stopped_by_f = false;
        let corrupt = |offset: u64, what: String| StoreError::Corrupt {
            user: user.to_string(),
            path: path.clone(),
            offset,
            what,
        };
        let end = framed::scan_while(&path, &KIND, user, start, |off, payload| {
            let after = off + framed::FRAME_OVERHEAD + payload.len() as u64;
            if limit.is_some_and(|l| after > l) {
                return Ok(false);
            }
            let entry = match payload.split_first() {
                Some((&TAG_RECORD, body)) => {
                    Entry::Record(decode_record_body(body).map_err(|w| corrupt(off, w))?)
                }
                Some((&TAG_OBJECT, body)) => {
                    let (id, raw_len, _) = crate::pack::parse_payload(body)
                        .ok_or_else(|| corrupt(off, "short object entry".into()))?;
                    Entry::Object { id, raw_len }
                }
                _ => return Err(corrupt(off, "unknown entry tag".into())),
            };
            let go_on = f((no, after), (no, off), entry)?;
            stopped_by_f = !go_on;
            Ok(go_on)
        })?;
        if stopped_by_f {
            return Ok(Some((no, end)));
        }
        if end.torn && i + 1 < n && limit.is_none() {
            return Err(corrupt(
                end.end,
                "bad frame before the end of a closed segment".into(),
            ));
        }
        last = Some((no, end));
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{NewEntry, Op};
    use crate::types::*;

    fn sample_ops() -> Vec<Op> {
        let g = Guid([3; 16]);
        let entry = NewEntry {
            guid: Guid([4; 16]),
            uid: 7,
            object: ObjectId([9; 32]),
            size: 1234,
            internal_date: 1_700_000_000,
            internal_date_tz_min: -300,
            flags: [Flag::Seen, Flag::Keyword("$Label1".into())]
                .into_iter()
                .collect(),
        };
        vec![
            Op::MailboxCreate {
                mailbox: g,
                name: "Ünïcode/Sub".into(),
                uidvalidity: 42,
                special_use: Some(SpecialUse::Archive),
            },
            Op::MailboxRename {
                mailbox: g,
                new_name: "x".into(),
            },
            Op::MailboxDelete { mailbox: g },
            Op::UidValidity {
                mailbox: g,
                uidvalidity: 43,
            },
            Op::Subscribe { name: "a".into() },
            Op::Unsubscribe { name: "a".into() },
            Op::Append {
                mailbox: g,
                entry: entry.clone(),
                modseq: 5,
                delivery_key: Some([1; 32]),
            },
            Op::Copy {
                from: g,
                to: Guid([5; 16]),
                entries: vec![(Guid([6; 16]), entry.clone())],
                modseq: 6,
            },
            Op::Move {
                from: g,
                to: Guid([5; 16]),
                entries: vec![(Guid([6; 16]), entry.clone())],
                modseq: 7,
                from_modseq: 8,
            },
            Op::Flags {
                mailbox: g,
                messages: vec![Guid([6; 16])],
                add: [Flag::Flagged].into_iter().collect(),
                remove: [Flag::Deleted].into_iter().collect(),
                modseq: 9,
            },
            Op::Expunge {
                mailbox: g,
                messages: vec![Guid([6; 16])],
                modseq: 10,
            },
            Op::Renumber {
                mailbox: g,
                moves: vec![(Guid([6; 16]), 99)],
                modseq: 11,
            },
        ]
    }

    #[test]
    fn every_record_type_roundtrips_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = framed::FramedWriter::create(dir.path(), 1, EXT, KIND).unwrap();
        let records: Vec<Record> = sample_ops()
            .into_iter()
            .enumerate()
            .map(|(i, op)| Record {
                origin: 2,
                seq: i as u64 + 1,
                time: HlcTime {
                    wall_ms: 1000 + i as u64,
                    logical: 3,
                    node: 2,
                },
                op,
            })
            .collect();
        let mut buf = Vec::new();
        for r in &records {
            framed::encode_frame(&encode_record(r), &mut buf);
        }
        w.append(&buf).unwrap();
        w.sync().unwrap();
        let mut back = Vec::new();
        read(dir.path(), "u", (0, 0), None, |_, r| {
            back.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(back, records);
        // Every kind is covered.
        let kinds: std::collections::BTreeSet<_> = back.iter().map(|r| r.op.kind()).collect();
        assert_eq!(kinds.len(), 12);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let r = Record {
            origin: 1,
            seq: 1,
            time: HlcTime::default(),
            op: Op::Subscribe { name: "x".into() },
        };
        let mut b = encode_record(&r);
        assert_eq!(decode_record(&b).unwrap(), r);
        b.push(0);
        assert!(decode_record(&b).is_err());
        assert!(decode_record(&[0xff; 3]).is_err());
        assert!(decode_record(&[TAG_RECORD, 0xff, 0xff]).is_err());
        assert!(decode_record(&[]).is_err());
    }
}
