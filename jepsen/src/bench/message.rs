//! Generated messages: plain text below a few KiB, multipart/mixed with a text part and a
//! base64 attachment above, sizes spread log-uniformly over a range (many small, a few large,
//! as in a real mailbox). Every message has unique bytes (its Message-ID) so no server can
//! store it once for two deliveries; attachments are random (they compress as badly as real
//! ones), text is drawn from a word list (it compresses like prose).

use rand::Rng;
use std::sync::Arc;

/// Words of subjects and bodies; SEARCH workloads look for some of them.
pub const WORDS: &[&str] = &[
    "meeting",
    "report",
    "invoice",
    "project",
    "budget",
    "holiday",
    "schedule",
    "review",
    "update",
    "quarterly",
    "contract",
    "proposal",
    "agenda",
    "minutes",
    "draft",
    "final",
    "urgent",
    "reminder",
    "question",
    "answer",
    "lunch",
    "travel",
    "expense",
    "summary",
    "release",
    "deadline",
    "customer",
    "support",
    "ticket",
    "server",
    "backup",
    "network",
    "office",
    "team",
    "weekly",
    "monthly",
    "planning",
    "design",
    "feedback",
    "launch",
    "the",
    "and",
    "for",
    "with",
    "this",
    "that",
    "from",
    "have",
    "will",
    "about",
    "please",
    "thanks",
    "regards",
    "attached",
    "find",
    "below",
    "next",
    "week",
    "call",
    "notes",
];

/// Sender names; SEARCH FROM looks for some of them.
pub const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yvonne",
];

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// Random base64 the attachments are cut from (76 characters and CRLF a line).
const POOL_LINES: usize = 4 * 1024 * 1024 / 78;

/// A message generator; cheap to clone (the attachment pool is shared).
#[derive(Clone)]
pub struct Gen {
    pool: Arc<Vec<u8>>,
    min: usize,
    max: usize,
}

impl Gen {
    pub fn new(min: usize, max: usize, rng: &mut impl Rng) -> Gen {
        let mut pool = Vec::with_capacity(POOL_LINES * 78);
        let mut line = [0u8; 76];
        for _ in 0..POOL_LINES {
            rng.fill_bytes(&mut line);
            // 64 symbols: the low six bits of a random byte pick one uniformly.
            pool.extend(line.iter().map(|b| B64[usize::from(b & 63)]));
            pool.extend_from_slice(b"\r\n");
        }
        Gen {
            pool: Arc::new(pool),
            min: min.max(512),
            max: max.max(min.max(512)),
        }
    }

    /// A size drawn log-uniformly from the range.
    pub fn size(&self, rng: &mut impl Rng) -> usize {
        let (lo, hi) = ((self.min as f64).ln(), (self.max as f64).ln());
        if hi <= lo {
            return self.min;
        }
        rng.gen_range(lo..hi).exp() as usize
    }

    /// A message to `to` of about `size` bytes, unique by `id`.
    pub fn message(&self, rng: &mut impl Rng, to: &str, id: &str, size: usize) -> Vec<u8> {
        let from = NAMES[rng.gen_range(0..NAMES.len())];
        let n = rng.gen_range(3..7);
        let subject = words(rng, n);
        let date = rfc2822_date(1_765_000_000 - rng.gen_range(0..31_536_000i64));
        let mut m = format!(
            "From: {from} <{from}@example.com>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\
             Date: {date}\r\nMessage-ID: <{id}@bench.example>\r\nMIME-Version: 1.0\r\n"
        )
        .into_bytes();
        if size < 4096 {
            m.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii\r\n\r\n");
            text(rng, &mut m, size);
            return m;
        }
        let boundary = format!("=-bench-{id}");
        m.extend_from_slice(
            format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
                 This is a multi-part message in MIME format.\r\n\
                 --{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            )
            .as_bytes(),
        );
        let text_len = m.len() + (size / 8).clamp(512, 4096);
        text(rng, &mut m, text_len);
        let name = format!("{}.pdf", words(rng, 1));
        m.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/pdf; name=\"{name}\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        let want = size.saturating_sub(m.len() + boundary.len() + 8).max(78);
        let lines = (want / 78).clamp(1, POOL_LINES);
        let start = rng.gen_range(0..=POOL_LINES - lines) * 78;
        m.extend_from_slice(&self.pool[start..start + lines * 78]);
        m.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        m
    }
}

fn words(rng: &mut impl Rng, n: usize) -> String {
    let v: Vec<&str> = (0..n)
        .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
        .collect();
    v.join(" ")
}

/// Lines of words appended to `m` until it is `upto` bytes long.
fn text(rng: &mut impl Rng, m: &mut Vec<u8>, upto: usize) {
    while m.len() < upto {
        let line = words(rng, 10);
        m.extend_from_slice(line.as_bytes());
        m.extend_from_slice(b"\r\n");
    }
}

/// Unix time -> "Mon, 7 Dec 2026 10:00:00 +0000".
pub fn rfc2822_date(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day} {} {year} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// SMTP/LMTP DATA transparency (RFC 5321 4.5.2): a line starting with "." gets another, and
/// the terminating ".". The generator makes no such lines, but any message may be sent.
pub fn dot_stuffed(msg: &[u8]) -> Vec<u8> {
    let mut out = ::tests::dot_stuff(msg);
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sizes_and_shapes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let g = Gen::new(1024, 1 << 20, &mut rng);
        for size in [1024, 5000, 100_000, 1 << 20] {
            let m = g.message(&mut rng, "u1@example.org", "x1", size);
            // Within a line or two of the asked size.
            assert!(
                m.len() + 200 >= size && m.len() <= size + 200,
                "{size}: {}",
                m.len()
            );
            let text = String::from_utf8(m).unwrap();
            assert!(text.contains("\r\nMessage-ID: <x1@bench.example>\r\n"));
            assert_eq!(text.contains("multipart/mixed"), size >= 4096, "{size}");
            // Header and body are separated, and every line ends in CRLF.
            assert!(text.contains("\r\n\r\n"));
            assert!(!text.replace("\r\n", "").contains('\n'));
        }
        let sizes: Vec<usize> = (0..1000).map(|_| g.size(&mut rng)).collect();
        assert!(sizes.iter().all(|s| (1024..=1 << 20).contains(s)));
        // Log-uniform: about half below the geometric mean (32 KiB).
        let small = sizes.iter().filter(|s| **s < 32 * 1024).count();
        assert!((400..600).contains(&small), "{small}");
    }

    #[test]
    fn dates_and_stuffing() {
        assert_eq!(rfc2822_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc2822_date(1_796_637_600),
            "Mon, 7 Dec 2026 10:00:00 +0000"
        );
        assert_eq!(dot_stuffed(b".a\r\nb\r\n.\r\n"), b"..a\r\nb\r\n..\r\n.\r\n");
        assert_eq!(dot_stuffed(b"x"), b"x\r\n.\r\n");
    }
}
