//! IMAP extensions as a real client uses them: Python's imaplib for THREAD (RFC 5256) and
//! QUOTA (RFC 9208), and a COMPRESS=DEFLATE session (RFC 4978) driven through Python's zlib
//! (raw deflate both ways, a sync flush per command as clients do).

use std::time::Duration;
use tests::*;

#[test]
fn imaplib_thread_references_and_orderedsubject() {
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        ..Default::default()
    })
    .expect("start node");
    server.python(
        r#"
import imaplib, os, re
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
typ, _ = M.login(os.environ['USER'], os.environ['PASS']); assert typ == 'OK'
typ, caps = M.capability()
assert b'THREAD=REFERENCES' in caps[0] and b'THREAD=ORDEREDSUBJECT' in caps[0], caps
M.create('thr')
def msg(subject, mid, refs, day):
    h = "From: a@example.org\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: %02d Nov 2026 05:00:00 +0000\r\n" % (subject, mid, day)
    if refs:
        h += "References: %s\r\n" % ' '.join('<%s>' % r for r in refs)
    return (h + "\r\nbody\r\n").encode()
# 1 starts a thread, 2 and 3 answer it, 4 answers 2; 5 is alone; 6 shares 5's subject.
for m in [msg('plan', 'p1@x', [], 1), msg('Re: plan', 'p2@x', ['p1@x'], 2),
          msg('Re: plan', 'p3@x', ['p1@x'], 3), msg('Re: plan', 'p4@x', ['p1@x', 'p2@x'], 4),
          msg('lunch', 'l1@x', [], 5), msg('Re: lunch', 'l2@x', [], 6)]:
    typ, data = M.append('thr', None, None, m); assert typ == 'OK', data
typ, _ = M.select('thr'); assert typ == 'OK'
typ, data = M.thread('REFERENCES', 'UTF-8', 'ALL'); assert typ == 'OK', data
assert data[0] == b'(1 (2 4)(3))(5 6)', data
typ, data = M.uid('THREAD', 'REFERENCES', 'UTF-8', 'NOT', 'SUBJECT', 'lunch'); assert typ == 'OK', data
assert data[0] == b'(1 (2 4)(3))', data
typ, data = M.thread('ORDEREDSUBJECT', 'UTF-8', 'ALL'); assert typ == 'OK', data
assert data[0] == b'(1 (2)(3)(4))(5 6)', data
try:
    M.thread('NOSUCH', 'UTF-8', 'ALL'); raise SystemExit('unknown algorithm accepted')
except imaplib.IMAP4.error:
    pass
M.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn imaplib_quota_reports_the_users_limits() {
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        extra_toml: "quota_rule = \"*:storage=1M:messages=50\"".into(),
        ..Default::default()
    })
    .expect("start node");
    server.python(
        r#"
import imaplib, os, re
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
typ, _ = M.login(os.environ['USER'], os.environ['PASS']); assert typ == 'OK'
typ, caps = M.capability(); assert b' QUOTA ' in caps[0] + b' ', caps
body = b"From: a@example.org\r\nSubject: q\r\n\r\n" + b"x" * 3000 + b"\r\n"
for _ in range(2):
    typ, data = M.append('INBOX', None, None, body); assert typ == 'OK', data
typ, data = M.getquotaroot('INBOX'); assert typ == 'OK', data
roots, quotas = data
assert roots == [b'INBOX "User quota"'], data
m = re.match(rb'^"User quota" \(STORAGE (\d+) 1024 MESSAGE 2 50\)$', quotas[0])
assert m and 5 <= int(m.group(1)) <= 7, data
typ, data = M.getquota('"User quota"'); assert typ == 'OK', data
assert data[0] == quotas[0], data
typ, data = M._simple_command('GETQUOTA', '"nosuch"'); assert typ == 'NO', data
typ, data = M.setquota('"User quota"', '(STORAGE 99999)')
assert typ == 'NO', data
typ, data = M.status('INBOX', '(MESSAGES SIZE DELETED DELETED-STORAGE)'); assert typ == 'OK', data
assert b'DELETED 0' in data[0] and b'DELETED-STORAGE 0' in data[0], data
M.select('INBOX'); M.store('1', '+FLAGS', r'(\Deleted)')
typ, data = M.status('INBOX', '(DELETED DELETED-STORAGE)'); assert typ == 'OK', data
assert b'(DELETED 1 DELETED-STORAGE 3)' in data[0], data
M.close()
typ, data = M.status('INBOX', '(DELETED DELETED-STORAGE)'); assert typ == 'OK', data
assert b'DELETED 0' in data[0], ('CLOSE expunged it', data)
M.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn compress_deflate_session_round_trip_with_python_zlib() {
    let server = Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        ..Default::default()
    })
    .expect("start node");
    server.python(
        r#"
import os, socket, zlib
s = socket.create_connection(('127.0.0.1', int(os.environ['IMAP_PORT'])), timeout=20)
f = s.makefile('rb')
def plain(tag, cmd):
    s.sendall(('%s %s\r\n' % (tag, cmd)).encode())
    lines = []
    while True:
        l = f.readline(); assert l, lines; lines.append(l)
        if l.startswith(tag.encode() + b' '): return lines
assert f.readline().startswith(b'* OK')
r = plain('l', 'LOGIN %s %s' % (os.environ['USER'], os.environ['PASS'])); assert b'l OK' in r[-1], r
r = plain('c', 'CAPABILITY'); assert b'COMPRESS=DEFLATE' in r[0], r
r = plain('z', 'COMPRESS DEFLATE'); assert r[-1].startswith(b'z OK'), r
# From here on raw deflate (wbits=-15), read from the socket itself: the server sent
# nothing after the OK, so the file's buffer holds nothing more.
comp = zlib.compressobj(6, zlib.DEFLATED, -15)
decomp = zlib.decompressobj(-15)
pending = b''
wire_in = 0
def send(data):
    s.sendall(comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH))
def line():
    global pending, wire_in
    while b'\r\n' not in pending:
        chunk = s.recv(65536); assert chunk, pending
        wire_in += len(chunk)
        pending += decomp.decompress(chunk)
    l, pending = pending.split(b'\r\n', 1)
    return l
def read_exact(n):
    global pending, wire_in
    while len(pending) < n:
        chunk = s.recv(65536); assert chunk
        wire_in += len(chunk)
        pending += decomp.decompress(chunk)
    d, pending = pending[:n], pending[n:]
    return d
def cmd(tag, c):
    send(('%s %s\r\n' % (tag, c)).encode())
    out = []
    while True:
        l = line(); out.append(l)
        if l.startswith(tag.encode() + b' '): return out
body = b"From: a@example.org\r\nSubject: zipped\r\n\r\n" + b"compressible line\r\n" * 5000
send(b'a APPEND INBOX {%d}\r\n' % len(body))
assert line().startswith(b'+'), 'continuation'
send(body + b'\r\n')
l = line(); assert l.startswith(b'a OK'), l
r = cmd('s', 'SELECT INBOX'); assert r[-1].startswith(b's OK'), r
n = [x for x in r if x.endswith(b'EXISTS')][0].split()[1].decode()
send(('f FETCH %s BODY.PEEK[]\r\n' % n).encode())
head = line(); assert head.endswith(b'{%d}' % len(body)), head
assert read_exact(len(body)) == body
rest = line(); assert rest == b')', rest
l = line(); assert l.startswith(b'f OK'), l
r = cmd('z2', 'COMPRESS DEFLATE'); assert r[-1].startswith(b'z2 NO [COMPRESSIONACTIVE]'), r
r = cmd('o', 'LOGOUT'); assert r[0].startswith(b'* BYE') and r[-1].startswith(b'o OK'), r
# The 95 KB body came back compressed: far fewer bytes crossed the wire.
assert wire_in < len(body) // 10, (wire_in, len(body))
print('ok')
"#,
        Duration::from_secs(60),
    );
}
