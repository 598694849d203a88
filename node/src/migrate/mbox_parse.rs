//! mbox files as Dovecot, mutt and Thunderbird write them: messages start at `From ` lines
//! (`From sender asctime-date`); the flags are in `Status:` (R seen, O old) and `X-Status:`
//! (A answered, F flagged, T draft, D deleted) headers, keywords in `X-Keywords:`, and
//! Dovecot keeps UIDs in `X-UID:` and the UIDVALIDITY in the first message's
//! `X-IMAPbase: UIDVALIDITY NEXTUID [KEYWORDS]`. Those headers (and `Content-Length:`, which
//! only frames the mbox) are taken out of the stored message, as Dovecot does when it serves
//! one. A `>From ` line in a body is unquoted one level (mboxrd).
//!
//! Pure functions over bytes, std only (the fuzz target includes this file); never panics.

/// One message of an mbox file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MboxMessage {
    /// The message with the mbox-only headers taken out, lines ending as in the file.
    pub raw: Vec<u8>,
    /// System flags (IMAP spelling) and keywords.
    pub flags: Vec<String>,
    pub uid: Option<u32>,
    /// Seconds since the epoch, from the `From ` line's date (UTC), if it parses.
    pub date: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mbox {
    /// From the first message's `X-IMAPbase:`.
    pub uidvalidity: Option<u32>,
    pub next_uid: Option<u32>,
    pub messages: Vec<MboxMessage>,
}

/// Headers that belong to the mbox file, not to the message.
const MBOX_HEADERS: [&str; 7] = [
    "status",
    "x-status",
    "x-keywords",
    "x-uid",
    "x-imap",
    "x-imapbase",
    "content-length",
];

/// Splits and parses an mbox file. Text before the first `From ` line is ignored; an empty
/// input is an mbox with no messages. Err when the input does not start like an mbox.
pub fn parse(data: &[u8]) -> Result<Mbox, String> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    if !data.is_empty() && !data.starts_with(b"From ") {
        return Err("not an mbox file: it does not start with a \"From \" line".into());
    }
    let mut starts = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        if data[pos..].starts_with(b"From ") {
            starts.push(pos);
        }
        match data[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => pos += i + 1,
            None => break,
        }
    }
    let mut out = Mbox::default();
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(data.len());
        let chunk = &data[s..end];
        let (from_line, rest) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], &chunk[i + 1..]),
            None => (chunk, &chunk[chunk.len()..]),
        };
        let mut msg = parse_message(rest, n == 0, &mut out);
        msg.date = parse_from_date(&String::from_utf8_lossy(from_line));
        out.messages.push(msg);
    }
    Ok(out)
}

fn parse_message(chunk: &[u8], first: bool, mbox: &mut Mbox) -> MboxMessage {
    // The blank line before the next "From " belongs to the mbox.
    let chunk = chunk
        .strip_suffix(b"\r\n\r\n")
        .map(|c| &chunk[..c.len() + 2])
        .or_else(|| chunk.strip_suffix(b"\n\n").map(|c| &chunk[..c.len() + 1]))
        .unwrap_or(chunk);
    let mut msg = MboxMessage::default();
    let lines = split_lines(chunk);
    let mut i = 0;
    let mut in_header = true;
    let mut status = String::new();
    let mut xstatus = String::new();
    while i < lines.len() {
        let line = lines[i];
        if in_header {
            if line == b"\n" || line == b"\r\n" {
                in_header = false;
                msg.raw.extend_from_slice(line);
                i += 1;
                continue;
            }
            // A header and its continuation lines.
            let mut j = i + 1;
            while j < lines.len() && matches!(lines[j].first(), Some(b' ' | b'\t')) {
                j += 1;
            }
            let text = String::from_utf8_lossy(&lines[i..j].concat()).into_owned();
            let (name, value) = text.split_once(':').unwrap_or((&text, ""));
            let lname = name.trim().to_ascii_lowercase();
            let value = value.trim();
            if MBOX_HEADERS.contains(&lname.as_str()) {
                match lname.as_str() {
                    "status" => status.push_str(value),
                    "x-status" => xstatus.push_str(value),
                    "x-keywords" => msg.flags.extend(
                        value
                            .split(|c: char| c == ',' || c.is_whitespace())
                            .filter(|k| !k.is_empty())
                            .map(str::to_string),
                    ),
                    "x-uid" => msg.uid = value.parse().ok().filter(|u| *u > 0),
                    "x-imapbase" if first => {
                        let mut f = value.split_whitespace();
                        mbox.uidvalidity = f.next().and_then(|v| v.parse().ok()).filter(|v| *v > 0);
                        mbox.next_uid = f.next().and_then(|v| v.parse().ok());
                    }
                    _ => {}
                }
            } else {
                for l in &lines[i..j] {
                    msg.raw.extend_from_slice(l);
                }
            }
            i = j;
            continue;
        }
        // mboxrd: one level of ">From " quoting comes off.
        let unq = line.strip_prefix(b">").filter(|l| {
            let l = l
                .iter()
                .position(|&b| b != b'>')
                .map_or(&l[l.len()..], |p| &l[p..]);
            l.starts_with(b"From ")
        });
        msg.raw.extend_from_slice(unq.unwrap_or(line));
        i += 1;
    }
    if status.contains('R') {
        msg.flags.insert(0, "\\Seen".to_string());
    }
    for (c, f) in [
        ('A', "\\Answered"),
        ('F', "\\Flagged"),
        ('T', "\\Draft"),
        ('D', "\\Deleted"),
    ] {
        if xstatus.contains(c) {
            msg.flags.push(f.to_string());
        }
    }
    msg
}

fn split_lines(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                out.push(&rest[..=i]);
                rest = &rest[i + 1..];
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

/// The date of a `From sender Mon Dec  7 18:24:32 2026` line (asctime, UTC), in seconds.
pub fn parse_from_date(line: &str) -> Option<i64> {
    let f: Vec<&str> = line.split_whitespace().collect();
    // From, sender, weekday, month, day, time, year (a zone may follow the time or the year).
    let at = f
        .iter()
        .position(|w| MONTHS.contains(&w.get(..3).unwrap_or("")) && w.len() == 3)?;
    let mon = f.get(at)?.get(..3)?;
    let month = MONTHS.iter().position(|m| *m == mon)? as u32 + 1;
    let day: u32 = f.get(at + 1)?.parse().ok()?;
    let hms: Vec<u32> = f
        .get(at + 2)?
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let year: i64 = f[at + 3..]
        .iter()
        .find_map(|w| w.parse::<i64>().ok().filter(|y| (1970..=9999).contains(y)))?;
    let (h, m, s) = match hms.as_slice() {
        [h, m] => (*h, *m, 0),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86400 + (h * 3600 + m * 60 + s) as i64)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The `From ` line for a message stored at `secs` (asctime, UTC).
pub fn from_line(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Inverse of days_from_civil.
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    format!(
        "From MAILER-DAEMON {} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1).clamp(0, 11) as usize],
        d,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        y
    )
}

/// One message as an mbox entry that [`parse`] reads back the same: the `From ` line with
/// its date, the message with LF line ends, Dovecot's `X-UID`, `Status`, `X-Status` and
/// `X-Keywords` (and `X-IMAPbase` on the first) at the end of the header, `>From ` quoting
/// (mboxrd), and the blank line that separates entries.
pub fn write_message(
    uid: u32,
    flags: &[String],
    date: i64,
    raw: &[u8],
    imapbase: Option<(u32, u32)>,
) -> Vec<u8> {
    let lf: Vec<u8> = {
        let mut v = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
                i += 1;
                continue;
            }
            v.push(raw[i]);
            i += 1;
        }
        v
    };
    let (head, body) = match lf.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&lf[..i + 1], &lf[i + 1..]),
        None if lf.first() == Some(&b'\n') => (&lf[..0], &lf[..]),
        None => (&lf[..], &lf[lf.len()..]),
    };
    let mut out = from_line(date).into_bytes();
    out.push(b'\n');
    out.extend_from_slice(head);
    if !head.is_empty() && !head.ends_with(b"\n") {
        out.push(b'\n');
    }
    if let Some((uv, next)) = imapbase {
        out.extend_from_slice(format!("X-IMAPbase: {uv} {next}\n").as_bytes());
    }
    out.extend_from_slice(format!("X-UID: {uid}\n").as_bytes());
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    out.extend_from_slice(if has("\\Seen") {
        b"Status: RO\n"
    } else {
        b"Status: O\n"
    });
    let xs: String = [
        ("\\Answered", 'A'),
        ("\\Flagged", 'F'),
        ("\\Draft", 'T'),
        ("\\Deleted", 'D'),
    ]
    .iter()
    .filter(|(f, _)| has(f))
    .map(|(_, c)| *c)
    .collect();
    if !xs.is_empty() {
        out.extend_from_slice(format!("X-Status: {xs}\n").as_bytes());
    }
    let kws: Vec<&str> = flags
        .iter()
        .filter(|f| !f.starts_with('\\'))
        .map(String::as_str)
        .collect();
    if !kws.is_empty() {
        out.extend_from_slice(format!("X-Keywords: {}\n", kws.join(" ")).as_bytes());
    }
    // The header ends with its blank line: from the body, or one of ours when it has none.
    if body.is_empty() {
        out.push(b'\n');
    }
    for line in split_lines(body) {
        let rest = line
            .iter()
            .position(|&b| b != b'>')
            .map_or(&line[line.len()..], |p| &line[p..]);
        if rest.starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_flags_uids_and_dates() {
        let data = b"From a@b Thu Nov 14 22:13:20 2023\n\
X-IMAPbase: 1700000000 4 $Label1\n\
Status: RO\n\
X-Status: AF\n\
X-Keywords: $Label1 Work\n\
X-UID: 2\n\
Content-Length: 13\n\
Subject: one\n\
\n\
>From here\n\
line two\n\
\n\
From b@c Mon Dec  7 18:24:32 2026\n\
X-UID: 3\n\
Subject: two\n\
\n\
body\n";
        let m = parse(data).unwrap();
        assert_eq!((m.uidvalidity, m.next_uid), (Some(1700000000), Some(4)));
        assert_eq!(m.messages.len(), 2);
        let a = &m.messages[0];
        assert_eq!(a.uid, Some(2));
        assert_eq!(
            a.flags,
            vec!["\\Seen", "$Label1", "Work", "\\Answered", "\\Flagged"]
        );
        assert_eq!(a.raw, b"Subject: one\n\nFrom here\nline two\n".to_vec());
        assert_eq!(a.date, Some(1_700_000_000));
        let b = &m.messages[1];
        assert_eq!((b.uid, b.flags.len()), (Some(3), 0));
        assert_eq!(b.raw, b"Subject: two\n\nbody\n".to_vec());
        assert_eq!(
            parse_from_date(&from_line(1_700_000_000)),
            Some(1_700_000_000)
        );
        assert_eq!(
            from_line(1_700_000_000),
            "From MAILER-DAEMON Tue Nov 14 22:13:20 2023"
        );
        assert!(parse(b"Subject: x\n\nnot an mbox\n").is_err());
        assert_eq!(parse(b"").unwrap().messages.len(), 0);
        assert_eq!(parse_from_date("From x Bogus"), None);
        assert_eq!(parse(b"From x").unwrap().messages.len(), 1);
    }

    #[test]
    fn written_messages_read_back() {
        let raw = b"Subject: a\r\nX: y\r\n\r\nFrom me\r\n>From you\r\nend\r\n";
        let flags: Vec<String> = ["\\Seen", "\\Flagged", "$Label1", "Work"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut file = write_message(7, &flags, 1_700_000_000, raw, Some((42, 9)));
        file.extend(write_message(
            9,
            &[],
            1_700_000_100,
            b"Subject: b\r\n",
            None,
        ));
        let m = parse(&file).unwrap();
        assert_eq!((m.uidvalidity, m.next_uid), (Some(42), Some(9)));
        let a = &m.messages[0];
        assert_eq!(a.uid, Some(7));
        assert_eq!(a.date, Some(1_700_000_000));
        assert_eq!(
            a.raw,
            b"Subject: a\nX: y\n\nFrom me\n>From you\nend\n".to_vec()
        );
        let mut got = a.flags.clone();
        got.sort();
        let mut want = flags.clone();
        want.sort();
        assert_eq!(got, want);
        let b = &m.messages[1];
        assert_eq!((b.uid, b.raw.as_slice()), (Some(9), &b"Subject: b\n\n"[..]));
    }
}
