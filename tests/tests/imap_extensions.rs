//! IMAP extensions as a real client uses them: Python's imaplib for THREAD (RFC 5256) and
//! QUOTA (RFC 9208).

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
