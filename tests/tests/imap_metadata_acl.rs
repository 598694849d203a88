//! SAVEDATE (RFC 8514), METADATA (RFC 5464) and ACL (RFC 4314) as a real client uses them:
//! Python's imaplib sending the commands against the node binary.

use std::time::Duration;
use tests::*;

fn server() -> Server {
    Server::start(ServerSpec {
        wait_for: vec![Proto::Imap],
        ..Default::default()
    })
    .expect("start node")
}

#[test]
fn imaplib_savedate_fetch_and_search() {
    server().python(
        r#"
import imaplib, os, re, time
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
typ, _ = M.login(os.environ['USER'], os.environ['PASS']); assert typ == 'OK'
typ, caps = M.capability(); assert b' SAVEDATE ' in caps[0] + b' ', caps
msg = b"From: a@example.org\r\nSubject: old\r\n\r\nbody\r\n"
typ, data = M.append('INBOX', None, imaplib.Time2Internaldate(time.mktime((2001, 2, 3, 4, 5, 6, 0, 0, -1))), msg)
assert typ == 'OK', data
M.select('INBOX')
typ, data = M.fetch('1', '(SAVEDATE INTERNALDATE)'); assert typ == 'OK', data
today = time.strftime('%d-%b-%Y', time.gmtime())
m = re.search(rb'SAVEDATE "([^"]+)"', data[0]); assert m, data
assert m.group(1).decode().startswith(today), (data, today)
assert b'INTERNALDATE "03-Feb-2001' in data[0], data
typ, data = M.search(None, 'SAVEDON', today); assert data == [b'1'], data
typ, data = M.search(None, 'SAVEDBEFORE', today); assert data == [b''], data
typ, data = M.search(None, 'BEFORE', today, 'SAVEDSINCE', today); assert data == [b'1'], data
typ, data = M.uid('SEARCH', 'SAVEDATESUPPORTED'); assert typ == 'OK' and data[0] != b'', data
try:
    M.search(None, 'SAVEDON', 'notadate'); raise SystemExit('bad date accepted')
except imaplib.IMAP4.error:
    pass
M.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn imaplib_metadata_on_mailboxes_and_server() {
    server().python(
        r#"
import imaplib, os
for c in ('GETMETADATA', 'SETMETADATA'):
    imaplib.Commands[c] = ('AUTH', 'SELECTED')
M = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
typ, _ = M.login(os.environ['USER'], os.environ['PASS']); assert typ == 'OK'
typ, caps = M.capability()
assert b' METADATA ' in caps[0] and b' METADATA-SERVER' in caps[0], caps
def cmd(*args):
    typ, data = M._simple_command(*args)
    return typ, M._untagged_response(typ, data, 'METADATA')[1]
typ, data = cmd('SETMETADATA', 'INBOX', '(/private/comment "my inbox" /shared/comment "ours")')
assert typ == 'OK', data
typ, data = cmd('SETMETADATA', '""', '(/private/vendor/test/motd "hello")'); assert typ == 'OK', data
typ, data = cmd('GETMETADATA', 'INBOX', '(/private/comment /shared/comment)')
assert typ == 'OK' and data == [b'INBOX (/private/comment "my inbox" /shared/comment "ours")'], data
typ, data = cmd('GETMETADATA', '(DEPTH infinity)', '""', '/private'); assert typ == 'OK', data
assert data == [b'"" (/private/vendor/test/motd "hello")'], data
# A second session sees them: they are in the store, not in the session.
N = imaplib.IMAP4('127.0.0.1', int(os.environ['IMAP_PORT']))
N.login(os.environ['USER'], os.environ['PASS'])
typ, data = N._simple_command('GETMETADATA', '(MAXSIZE 3)', 'INBOX', '(/private/comment /shared/comment)')
assert typ == 'OK' and b'LONGENTRIES 8' in data[0], data
typ, data = N._simple_command('SETMETADATA', 'INBOX', '(/shared/comment NIL)'); assert typ == 'OK', data
typ, data = cmd('GETMETADATA', 'INBOX', '/shared/comment')
assert data == [b'INBOX (/shared/comment NIL)'], data
typ, data = cmd('GETMETADATA', 'NoSuchBox', '/shared/comment'); assert typ == 'NO', data
try:
    cmd('SETMETADATA', 'INBOX', '(/bad/entry "x")'); raise SystemExit('bad entry accepted')
except imaplib.IMAP4.error as e:
    assert 'Invalid arguments' in str(e), e
M.logout(); N.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

#[test]
fn imaplib_acl_alice_shares_a_mailbox_with_bob() {
    server().python(
        r#"
import imaplib, os
port = int(os.environ['IMAP_PORT'])
A = imaplib.IMAP4('127.0.0.1', port); A.login('alice', 'alicepw')
typ, caps = A.capability(); assert b' ACL ' in caps[0] and b'RIGHTS=texk' in caps[0], caps
typ, data = A.create('Team'); assert typ == 'OK', data
msg = b"From: alice@example.org\r\nSubject: plan\r\n\r\nthe plan\r\n"
typ, data = A.append('Team', None, None, msg); assert typ == 'OK', data
typ, data = A.setacl('Team', 'bob', 'lr'); assert typ == 'OK', data
typ, data = A.getacl('Team'); assert typ == 'OK', data
assert data == [b'Team alice lrswipkxtea bob lr'], data
B = imaplib.IMAP4('127.0.0.1', port); B.login('bob', 'bobpw')
typ, data = B.namespace(); assert data == [b'(("" "/")) (("shared/" "/")) NIL'], data
typ, data = B.myrights('shared/alice/Team'); assert data == [b'shared/alice/Team lr'], data
typ, data = B.list('""', 'shared/*'); assert typ == 'OK', data
assert data == [b'(\\Noselect \\HasChildren) "/" shared/alice', b'(\\HasNoChildren) "/" shared/alice/Team'], data
# lr only: read-only (imaplib's select() would raise on READ-ONLY, so EXAMINE).
typ, data = B.select('shared/alice/Team', readonly=True); assert typ == 'OK' and data == [b'1'], data
typ, data = B.fetch('1', '(BODY.PEEK[TEXT])'); assert typ == 'OK' and data[0][1] == b'the plan\r\n', data
typ, data = B.store('1', '+FLAGS', '(\\Flagged)'); assert typ == 'NO', data
typ, data = B.getacl('shared/alice/Team'); assert typ == 'NO', data
typ, data = B.select('shared/alice/INBOX'); assert typ == 'NO', data
typ, data = B.append('shared/alice/Team', None, None, msg); assert typ == 'NO', data
# alice grants more: bob may now insert, flag and expunge.
typ, data = A.setacl('Team', 'bob', '+iwte'); assert typ == 'OK', data
typ, data = B.select('shared/alice/Team'); assert typ == 'OK', data
typ, data = B.store('1', '+FLAGS', '(\\Flagged \\Deleted)'); assert typ == 'OK', data
typ, data = B.expunge(); assert typ == 'OK' and data == [b'1'], data
typ, data = B.append('shared/alice/Team', None, None, msg); assert typ == 'OK', data
B.close()
typ, data = A.select('Team'); assert typ == 'OK' and data == [b'1'], data
typ, data = A.deleteacl('Team', 'bob'); assert typ == 'OK', data
typ, data = B.select('shared/alice/Team'); assert typ == 'NO', data
A.logout(); B.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

/// bob copies a message out of alice's shared mailbox into his own (a new message in his
/// store); MOVE needs the expunge right, and with it the original leaves alice's mailbox.
#[test]
fn imaplib_bob_copies_out_of_alices_shared_mailbox() {
    server().python(
        r#"
import imaplib, os
imaplib.Commands.setdefault('MOVE', ('SELECTED',))
port = int(os.environ['IMAP_PORT'])
A = imaplib.IMAP4('127.0.0.1', port); A.login('alice', 'alicepw')
typ, data = A.create('Team'); assert typ == 'OK', data
msg = b"From: alice@example.org\r\nSubject: plan\r\n\r\nthe plan\r\n"
for _ in range(2):
    typ, data = A.append('Team', '(\\Flagged)', None, msg); assert typ == 'OK', data
typ, data = A.setacl('Team', 'bob', 'lrswt'); assert typ == 'OK', data
B = imaplib.IMAP4('127.0.0.1', port); B.login('bob', 'bobpw')
typ, data = B.create('Kept'); assert typ == 'OK', data
typ, data = B.select('shared/alice/Team'); assert typ == 'OK' and data == [b'2'], data
typ, data = B.copy('1', 'Kept'); assert typ == 'OK' and data[0].startswith(b'[COPYUID '), data
typ, data = B._simple_command('MOVE', '2', 'Kept'); assert typ == 'NO' and b'NOPERM' in data[0], data
typ, data = B.status('Kept', '(MESSAGES)'); assert data == [b'Kept (MESSAGES 1)'], data
typ, data = A.setacl('Team', 'bob', '+e'); assert typ == 'OK', data
typ, data = B._simple_command('MOVE', '2', 'Kept'); assert typ == 'OK', data
B.close()
typ, data = B.select('Kept'); assert typ == 'OK' and data == [b'2'], data
typ, data = B.fetch('1:2', '(FLAGS BODY.PEEK[TEXT])'); assert typ == 'OK', data
assert [d[1] for d in data if isinstance(d, tuple)] == [b'the plan\r\n'] * 2, data
assert all(b'\\Flagged' in d[0] for d in data if isinstance(d, tuple)), data
typ, data = A.status('Team', '(MESSAGES)'); assert data == [b'Team (MESSAGES 1)'], data
A.logout(); B.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}

/// An ACL set on node A is honoured on node B once replicated: bob reads alice's mailbox
/// there, and loses it there when alice takes the grant back on A. METADATA travels the same
/// way.
#[test]
fn acl_and_metadata_set_on_one_node_are_honoured_on_the_other() {
    use std::time::Instant;
    use tests::cluster::{imap_login, imap_ok, Cluster, ClusterSpec};
    let c = Cluster::start(ClusterSpec {
        durability: "replicated",
        sync_timeout: "30s",
        ..ClusterSpec::default()
    })
    .unwrap();
    let mut a = imap_login(&c.nodes[0]).unwrap();
    imap_ok(&mut a, "c", "CREATE Team").unwrap();
    imap_ok(
        &mut a,
        "m",
        "SETMETADATA Team (/shared/comment \"team box\")",
    )
    .unwrap();
    imap_ok(&mut a, "g", "SETACL Team bob lr").unwrap();
    let bob = |node: &Server| {
        let mut b = LineConn::connect(node.addr(Proto::Imap)).unwrap();
        b.line().unwrap();
        imap_ok(&mut b, "l", "LOGIN bob bobpw").unwrap();
        b
    };
    // Replicated durability: the OKs above came after B held the records.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut b = bob(&c.nodes[1]);
    loop {
        let r = b.imap("m", "MYRIGHTS shared/alice/Team").unwrap();
        if r.first()
            .is_some_and(|l| l == "* MYRIGHTS shared/alice/Team lr")
        {
            break;
        }
        assert!(Instant::now() < deadline, "rights not on B: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = imap_ok(&mut b, "x", "EXAMINE shared/alice/Team").unwrap();
    assert!(r.iter().any(|l| l == "* 0 EXISTS"), "{r:?}");
    let r = imap_ok(&mut b, "l", "LIST \"\" shared/alice/*").unwrap();
    assert!(r.iter().any(|l| l.ends_with(" shared/alice/Team")), "{r:?}");
    let mut a_on_b = imap_login(&c.nodes[1]).unwrap();
    let r = imap_ok(&mut a_on_b, "g", "GETMETADATA Team /shared/comment").unwrap();
    assert_eq!(
        r[0], "* METADATA Team (/shared/comment \"team box\")",
        "{r:?}"
    );
    imap_ok(&mut a, "d", "DELETEACL Team bob").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = b.imap("s", "SELECT shared/alice/Team").unwrap();
        if r.last()
            .is_some_and(|l| l.starts_with("s NO [NONEXISTENT]"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "revocation not on B: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn imaplib_urlauth_alice_signs_a_url_bob_fetches() {
    server().python(
        r#"
import imaplib, os
for c in ('GENURLAUTH', 'URLFETCH', 'RESETKEY'):
    imaplib.Commands[c] = ('AUTH', 'SELECTED')
port = int(os.environ['IMAP_PORT'])
A = imaplib.IMAP4('127.0.0.1', port); A.login('alice', 'alicepw')
typ, caps = A.capability(); assert b' URLAUTH' in caps[0], caps
msg = b"From: alice@example.org\r\nSubject: report\r\n\r\nquarterly numbers\r\n"
typ, data = A.append('INBOX', None, None, msg); assert typ == 'OK', data
typ, data = A._simple_command('GENURLAUTH', '"imap://alice@example.org/INBOX/;uid=1;urlauth=user+bob"', 'INTERNAL')
assert typ == 'OK', data
url = A._untagged_response(typ, data, 'GENURLAUTH')[1][0].strip(b'"').decode()
assert url.startswith('imap://alice@example.org/INBOX/;uid=1;urlauth=user+bob:internal:'), url
B = imaplib.IMAP4('127.0.0.1', port); B.login('bob', 'bobpw')
typ, data = B._simple_command('URLFETCH', url); assert typ == 'OK', data
got = B._untagged_response(typ, data, 'URLFETCH')[1]
assert got[0][1] == msg, got
typ, data = A._simple_command('RESETKEY'); assert typ == 'OK', data
typ, data = B._simple_command('URLFETCH', url); assert typ == 'OK', data
got = B._untagged_response(typ, data, 'URLFETCH')[1]
assert got[0].endswith(b' NIL'), got
A.logout(); B.logout()
print('ok')
"#,
        Duration::from_secs(60),
    );
}
