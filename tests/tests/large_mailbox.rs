//! What a client lists, searches and sorts a folder with, answered from the header cache
//! (issue 18): the answers must be those of the message itself. Each message is checked against
//! its own bytes (BODY[HEADER], HEADER.FIELDS, RFC822.SIZE), its ENVELOPE against the one the
//! body parser makes of the same message wrapped as a message/rfc822 attachment (that envelope
//! comes from the whole-message parse, not from the cache), and SEARCH, SORT and THREAD
//! against answers computed here from the messages.

use std::time::Duration;
use tests::*;

fn spec() -> ServerSpec {
    ServerSpec {
        wait_for: vec![Proto::Imap],
        ..Default::default()
    }
}

#[test]
fn header_cache_answers_equal_the_messages() {
    let server = Server::start(spec()).expect("start node");
    server.python(SCRIPT, Duration::from_secs(120));
}

const SCRIPT: &str = r#"
import imaplib, os, re, email.utils, random
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
assert M.login(os.environ['USER'], os.environ['PASS'])[0] == 'OK'
for box in ('Big', 'Wrapped', 'Thread'):
    assert M.create(box)[0] == 'OK'

def crlf(s):
    return s.replace('\r\n', '\n').replace('\n', '\r\n').encode()

rng = random.Random(18)
msgs = []
words = ['alpha', 'Bravo', 'charlie', 'DELTA', 'echo']
for i in range(40):
    w = words[i % 5]
    date = '' if i % 7 == 3 else 'Date: %s\n' % email.utils.formatdate(1700000000 + rng.randrange(10**7), localtime=False)
    subj = ['Subject: %s report %d\n' % (w, i),
            'Subject: Re: %s report %d\n' % (w, i),
            'Subject: =?UTF-8?B?w6ljaG8=?= %s %d\n' % (w, i),
            'Subject: folded %s\n  continued %d\n' % (w, i),
            ''][i % 5]
    frm = ['From: "Ann %d" <ann%d@example.org>\n' % (i, i),
           'From: bob%d@example.net\n' % i,
           'From: group%d: a@b.c, d@e.f;\n' % i][i % 3]
    to = 'To: team@example.org, "X, Y" <xy@example.com>\n' if i % 2 else 'To: undisclosed-recipients:;\n'
    cc = 'Cc: cc%d@example.org\n' % i if i % 4 == 0 else ''
    ref = 'In-Reply-To: <m%d@t>\nReferences: <m%d@t>\n' % (i - 1, i - 1) if i % 6 == 5 else ''
    pad = ''.join('X-Pad-%d: %s\n' % (k, 'p' * 60) for k in range(i % 3))
    hdr = date + subj + frm + to + cc + 'Message-ID: <m%d@t>\n' % i + ref + pad
    kind = i % 4
    if kind == 0:
        body = 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\nplain body %s %d\n' % (w, i)
    elif kind == 1:
        body = ('MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="b%d"\n\n'
                '--b%d\nContent-Type: text/plain\n\ntext part %d\n--b%d\nContent-Type: text/html\n\n'
                '<p>html part %d</p>\n--b%d--\n') % (i, i, i, i, i, i)
    elif kind == 2:
        body = ('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="m%d"\n\n--m%d\n'
                'Content-Type: text/plain\n\nsee attached %d\n--m%d\nContent-Type: application/octet-stream; name="f%d.bin"\n'
                'Content-Disposition: attachment; filename="f%d.bin"\nContent-Transfer-Encoding: base64\n\nAAECAwQFBgcICQ==\n--m%d--\n') % (i, i, i, i, i, i, i)
    else:
        body = '\nno MIME at all %d\n' % i
    msgs.append(crlf(hdr + body))
# A header longer than the cache keeps (64 KiB): answered from the message itself.
big = crlf('Subject: huge header\nFrom: big@example.org\n' + ''.join('X-Long-%d: %s\n' % (k, 'q' * 200) for k in range(400)) + '\nbody\n')
msgs.append(big)

def internal(i):
    return imaplib.Time2Internaldate(1600000000 + 3600 * i)

for i, m in enumerate(msgs):
    typ, data = M.append('Big', None, internal(i), m)
    assert typ == 'OK', data
    wrapper = crlf('Subject: wrapper %d\nFrom: w@example.org\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\n') + m
    typ, data = M.append('Wrapped', None, internal(i), wrapper)
    assert typ == 'OK', data

def parse(b, i=0):
    """One IMAP value at b[i:]: list, quoted string, literal, NIL or atom; (value, next i)."""
    while b[i:i+1] == b' ':
        i += 1
    c = b[i:i+1]
    if c == b'(':
        out, i = [], i + 1
        while True:
            while b[i:i+1] == b' ':
                i += 1
            if b[i:i+1] == b')':
                return out, i + 1
            v, i = parse(b, i)
            out.append(v)
    if c == b'"':
        out, i = b'', i + 1
        while b[i:i+1] != b'"':
            if b[i:i+1] == b'\\':
                i += 1
            out += b[i:i+1]
            i += 1
        return out, i + 1
    if c == b'{':
        j = b.index(b'}', i)
        n = int(b[i+1:j])
        return b[j+3:j+3+n], j + 3 + n
    j, depth = i, 0
    while j < len(b):
        d = b[j:j+1]
        if d == b'[':
            depth += 1
        elif d == b']':
            depth -= 1
        elif depth == 0 and d in (b' ', b'(', b')'):
            break
        j += 1
    atom = b[i:j]
    return (None if atom == b'NIL' else atom), j

def fetch_all(box, items):
    typ, data = M.select(box)
    assert typ == 'OK', data
    typ, data = M.fetch('1:*', items)
    assert typ == 'OK', data
    out, cur = [], b''
    for part in data:
        if isinstance(part, tuple):
            cur += part[0] + b'\r\n' + part[1]
            continue
        # imaplib: a response's literals come as tuples, the rest of its line as bytes.
        cur += part
        lst, _ = parse(cur, cur.index(b'('))
        out.append({lst[k].upper(): lst[k + 1] for k in range(0, len(lst), 2)})
        cur = b''
    return out

# 1. Header sections against the message's own bytes.
fields = ['From', 'To', 'Cc', 'Subject', 'Date', 'Message-ID', 'In-Reply-To', 'References']
lines = fetch_all('Big', '(UID RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (%s)] BODY.PEEK[HEADER.FIELDS.NOT (X-Pad-0 Subject)] BODY.PEEK[HEADER.FIELDS (SUBJECT)]<3.7> BODY.PEEK[])' % ' '.join(fields))
assert len(lines) == len(msgs), (len(lines), len(msgs))

def header_of(m):
    i = m.find(b'\r\n\r\n')
    return m if i < 0 else m[:i + 4]

def field_list(h):
    out = []
    for line in h.split(b'\r\n')[:-2]:
        if line[:1] in (b' ', b'\t') and out:
            out[-1] += b'\r\n' + line
        else:
            out.append(line)
    return out

def filtered(m, names, keep):
    names = [n.lower() for n in names]
    out = b''
    for f in field_list(header_of(m)):
        name = f.split(b':', 1)[0].strip().lower().decode()
        if (name in names) == keep:
            out += f + b'\r\n'
    return out + b'\r\n'

names = ' '.join(fields).upper().encode()
for i, (f, m) in enumerate(zip(lines, msgs)):
    assert f[b'RFC822.SIZE'] == str(len(m)).encode(), (i, f[b'RFC822.SIZE'])
    assert f[b'BODY[]'] == m, i
    assert f[b'BODY[HEADER]'] == header_of(m), (i, f[b'BODY[HEADER]'][:200])
    only = f[b'BODY[HEADER.FIELDS (' + names + b')]']
    assert only == filtered(m, fields, True), (i, only, filtered(m, fields, True))
    not_ = f[b'BODY[HEADER.FIELDS.NOT (X-PAD-0 SUBJECT)]']
    assert not_ == filtered(m, ['X-Pad-0', 'Subject'], False), (i, not_[:300])
    part = f[b'BODY[HEADER.FIELDS (SUBJECT)]<3>']
    assert part == filtered(m, ['Subject'], True)[3:10], (i, part)

# 2. ENVELOPE from the cache equals the body parser's envelope of the same message wrapped.
env_big = fetch_all('Big', '(ENVELOPE)')
bs_wrapped = fetch_all('Wrapped', '(BODYSTRUCTURE)')
assert len(env_big) == len(bs_wrapped) == len(msgs)

# message/rfc822: type, subtype, params, id, description, encoding, size, ENVELOPE, body, lines
for i, (a, b) in enumerate(zip(env_big, bs_wrapped)):
    inner = b[b'BODYSTRUCTURE']
    assert inner[0].upper() == b'MESSAGE' and inner[1].upper() == b'RFC822', (i, inner[:2])
    assert a[b'ENVELOPE'] == inner[7], (i, a[b'ENVELOPE'], inner[7])

# BODYSTRUCTURE of each message equals the one inside its wrapper's (the facts path both,
# the inner one with ranges shifted: sizes and lines are the same).
bs_big = fetch_all('Big', '(BODYSTRUCTURE)')
for i, (a, b) in enumerate(zip(bs_big, bs_wrapped)):
    assert a[b'BODYSTRUCTURE'] == b[b'BODYSTRUCTURE'][8], (i, a, b)

# 3. SEARCH on header fields against what the messages say.
M.select('Big')
def search(*crit):
    typ, data = M.uid('SEARCH', *crit)
    assert typ == 'OK', (crit, data)
    return [int(x) for x in data[0].split()]

uids = search('ALL')
assert len(uids) == len(msgs)
def expect(pred):
    return [u for u, m in zip(uids, msgs) if pred(header_of(m).decode('latin-1'))]
def subject_of(h):
    f = [x for x in field_list(h.encode('latin-1')) if x.lower().startswith(b'subject:')]
    v = f[0].split(b':', 1)[1].decode().replace('\r\n', '') if f else ''
    return v.replace('=?UTF-8?B?w6ljaG8=?=', '\u00e9cho')
for w in words:
    assert search('SUBJECT', w.lower()) == expect(lambda h: w.lower() in subject_of(h).lower()), w
assert search('SUBJECT', 'continued') == expect(lambda h: 'continued' in subject_of(h)), 'folded'
M.literal = '\u00e9cho'.encode()
assert search('CHARSET', 'UTF-8', 'SUBJECT') == expect(lambda h: '\u00e9cho' in subject_of(h))
assert search('SUBJECT', '"huge header"') == [uids[-1]]
assert search('FROM', 'ann1') == expect(lambda h: 'ann1' in h.split('From:')[1].split('\n')[0])
assert search('FROM', 'example.net') == expect(lambda h: 'example.net' in h.split('From:')[1].split('\n')[0])
assert search('TO', 'xy@example.com') == expect(lambda h: 'xy@example.com' in h)
assert search('CC', 'cc8@') == expect(lambda h: 'Cc: cc8@' in h)
assert search('HEADER', 'Message-ID', '<m17@t>') == expect(lambda h: 'Message-ID: <m17@t>\r' in h)
assert search('HEADER', 'X-Pad-1', '""') == expect(lambda h: 'X-Pad-1:' in h)
assert search('HEADER', 'X-Long-399', 'qqq') == [uids[-1]]
assert search('NOT', 'HEADER', 'Date', '""') == expect(lambda h: 'Date:' not in h)
assert search('LARGER', '5000') == [u for u, m in zip(uids, msgs) if len(m) > 5000]
# Body keys still read the message.
assert search('BODY', '"html part 9"') == [uids[9]]
got = search('TEXT', '"no MIME at all 3"')
assert got == [u for u, m in zip(uids, msgs) if b'no MIME at all 3' in m], got

# 4. SORT by DATE (the Date header, else the internal date) and by SUBJECT (base subject).
def sent(i, m):
    h = header_of(m).decode('latin-1')
    for line in h.split('\r\n'):
        if line.lower().startswith('date:'):
            return email.utils.parsedate_to_datetime(line[5:].strip()).timestamp()
    return 1600000000 + 3600 * i
typ, data = M.uid('SORT', '(DATE)', 'UTF-8', 'ALL')
assert typ == 'OK', data
want = [u for _, _, u in sorted((sent(i, m), i, u) for i, (u, m) in enumerate(zip(uids, msgs)))]
assert [int(x) for x in data[0].split()] == want, (data, want)
typ, data = M.uid('SORT', '(REVERSE ARRIVAL)', 'UTF-8', 'SUBJECT', 'report')
assert typ == 'OK', data
got = [int(x) for x in data[0].split()]
assert sorted(got) == search('SUBJECT', 'report') and got == sorted(got, key=lambda u: -u), got
def base(i, m):
    s = subject_of(header_of(m).decode('latin-1'))
    s = re.sub(r'\s+', ' ', s).strip()
    while s.lower().startswith('re:'):
        s = s[3:].strip()
    return s.upper()
typ, data = M.uid('SORT', '(SUBJECT)', 'UTF-8', 'ALL')
assert typ == 'OK', data
want = [u for _, _, u in sorted((base(i, m), i, u) for i, (u, m) in enumerate(zip(uids, msgs)))]
assert [int(x) for x in data[0].split()] == want, (data, want)

# 5. THREAD REFERENCES from the cached References and Message-ID.
M.select('Thread')
chain = [crlf('Subject: root\nMessage-ID: <r1@t>\nDate: Mon, 7 Dec 2026 10:00:00 +0000\n\nroot\n'),
         crlf('Subject: Re: root\nMessage-ID: <r2@t>\nReferences: <r1@t>\nDate: Mon, 7 Dec 2026 11:00:00 +0000\n\nreply\n'),
         crlf('Subject: other\nMessage-ID: <o1@t>\nDate: Mon, 7 Dec 2026 11:30:00 +0000\n\nother\n'),
         crlf('Subject: Re: Re: root\nMessage-ID: <r3@t>\nReferences: <r1@t>\n <r2@t>\nDate: Mon, 7 Dec 2026 12:00:00 +0000\n\nreply 2\n')]
for m in chain:
    assert M.append('Thread', None, None, m)[0] == 'OK'
M.select('Thread')
typ, data = M._simple_command('THREAD', 'REFERENCES', 'UTF-8', 'ALL')
assert typ == 'OK', data
typ, data = M._untagged_response(typ, data, 'THREAD')
assert data[0] == b'(1 2 4)(3)', data
print('ok')
"#;
