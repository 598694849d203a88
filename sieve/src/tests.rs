//! Scripts run end to end against small messages.

use crate::*;
use std::collections::HashMap;

const MSG: &[u8] = b"From: Ann <ann@example.org>\r\nTo: bob+lists@example.com\r\nSubject: [list] Hello there\r\nDate: Tue, 01 Jan 2008 14:05:06 +0100\r\nMessage-ID: <1@example.org>\r\n\r\nThe body text.\r\n";

#[derive(Default)]
struct TestHost {
    scripts: HashMap<String, String>,
}

impl Host for TestHost {
    fn mailbox_exists(&mut self, name: &str) -> bool {
        name == "INBOX"
    }
    fn load_script(&mut self, _global: bool, name: &str) -> Result<Option<String>, String> {
        Ok(self.scripts.get(name).cloned())
    }
}

fn run_with(src: &str, host: &mut TestHost) -> Result<(Vec<Action>, Runtime), RuntimeError> {
    let c = Compiler::new();
    let script = c.compile(src).unwrap_or_else(|e| panic!("compile: {e}"));
    let env = Envelope {
        from: "ann@example.org".into(),
        to: "bob+lists@example.com".into(),
        auth: None,
    };
    let mut rt = Runtime::new(c, Config::default(), Message::parse(MSG), env);
    rt.run(host, &script)?;
    Ok((rt.result(), rt))
}

fn run(src: &str) -> Vec<Action> {
    run_with(src, &mut TestHost::default()).unwrap().0
}

fn names(a: &[Action]) -> Vec<&'static str> {
    a.iter().map(Action::name).collect()
}

#[test]
fn implicit_keep_and_fileinto() {
    assert_eq!(names(&run("")), ["keep"]);
    assert_eq!(names(&run("discard;")), ["discard"]);
    let a = run("require [\"fileinto\", \"copy\"]; if header :contains \"subject\" \"[list]\" { fileinto \"Lists\"; }");
    assert!(matches!(&a[..], [Action::FileInto { mailbox, .. }] if mailbox == "Lists"));
    let a = run("require [\"fileinto\", \"copy\"]; fileinto :copy \"A\";");
    assert_eq!(names(&a), ["store", "keep"]);
    let a = run("if false { discard; } elsif true { stop; } else { discard; } discard;");
    assert_eq!(names(&a), ["keep"]);
}

#[test]
fn variables_and_match_values() {
    let a = run(
        "require [\"fileinto\", \"variables\"];\n\
         if header :matches \"subject\" \"[*] *\" { set :upperfirst \"box\" \"${1}\"; fileinto \"INBOX.${box}\"; }",
    );
    assert!(matches!(&a[..], [Action::FileInto { mailbox, .. }] if mailbox == "INBOX.List"));
}

#[test]
fn address_parts_envelope_and_relational() {
    let a = run(
        "require [\"subaddress\", \"envelope\", \"relational\", \"comparator-i;ascii-numeric\"];\n\
         if allof (address :detail \"to\" \"lists\", address :domain \"from\" \"example.org\",\n\
                   envelope :user \"to\" \"bob\", header :count \"eq\" :comparator \"i;ascii-numeric\" \"to\" \"1\",\n\
                   not size :over 1K, exists [\"from\", \"date\"]) { discard; }",
    );
    assert_eq!(names(&a), ["discard"]);
}

#[test]
fn flags_body_date_and_editheader() {
    let a = run(
        "require [\"imap4flags\", \"body\", \"date\", \"editheader\", \"fileinto\"];\n\
         addflag \"\\\\Seen\"; addflag [\"$a $b\"]; removeflag \"$b\";\n\
         if allof (body :contains \"body text\", date :zone \"+0000\" \"date\" \"hour\" \"13\", hasflag \"$a\") {\n\
           addheader \"X-Sieve\" \"yes\"; deleteheader \"subject\"; fileinto \"F\"; }",
    );
    assert!(
        matches!(&a[..], [Action::FileInto { flags, .. }] if flags == &["\\Seen".to_string(), "$a".to_string()])
    );
    let (_, rt) = run_with(
        "require \"editheader\"; addheader \"X-Sieve\" \"yes\"; deleteheader \"subject\";",
        &mut TestHost::default(),
    )
    .unwrap();
    assert!(rt.message.edited && rt.message.exists("x-sieve") && !rt.message.exists("subject"));
}

#[test]
fn vacation_and_reject() {
    let a = run("require \"vacation\"; vacation :days 3 :subject \"away\" \"I am away\";");
    match &a[..] {
        [Action::Vacation(v), Action::Keep { .. }] => {
            assert_eq!(v.period, 3 * 86_400);
            assert_eq!(v.subject.as_deref(), Some("away"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        names(&run("require \"reject\"; reject \"no\";")),
        ["reject"]
    );
    let e = run_with(
        "require [\"reject\", \"fileinto\"]; fileinto \"a\"; reject \"no\";",
        &mut TestHost::default(),
    );
    assert!(e.is_err());
}

#[test]
fn include_and_its_limits() {
    let mut h = TestHost::default();
    h.scripts.insert("a".into(), "require [\"include\", \"variables\"]; global \"x\"; set \"x\" \"from-a\"; return; discard;".into());
    h.scripts.insert(
        "loop".into(),
        "require \"include\"; include \"loop\";".into(),
    );
    let (a, _) = run_with(
        "require [\"include\", \"variables\", \"fileinto\"]; global \"x\"; include \"a\"; fileinto \"${x}\";",
        &mut h,
    )
    .unwrap();
    assert!(matches!(&a[..], [Action::FileInto { mailbox, .. }] if mailbox == "from-a"));
    let e = run_with("require \"include\"; include \"loop\";", &mut h)
        .err()
        .unwrap();
    assert!(e.message.contains("recursion"), "{e}");
    assert!(run_with("require \"include\"; include \"missing\";", &mut h).is_err());
    assert!(run_with(
        "require \"include\"; include :optional \"missing\";",
        &mut h
    )
    .is_ok());
}

#[test]
fn redirect_and_step_limits() {
    let e = run_with(
        "redirect \"a@x.example\"; redirect \"b@x.example\"; redirect \"c@x.example\"; redirect \"d@x.example\"; redirect \"e@x.example\";",
        &mut TestHost::default(),
    );
    assert!(e.is_err());
    let big = "if true { keep; }\n".repeat(60_000);
    let e = run_with(&big, &mut TestHost::default()).err().unwrap();
    assert!(e.message.contains("limit"));
}

#[test]
fn regex_and_mailboxexists() {
    let a = run(
        "require [\"regex\", \"variables\", \"fileinto\", \"mailbox\"];\n\
         if allof (mailboxexists \"INBOX\", header :regex \"subject\" \"^\\\\[([a-z]+)\\\\]\") { fileinto :create \"${1}\"; }",
    );
    assert!(
        matches!(&a[..], [Action::FileInto { mailbox, create: true, .. }] if mailbox == "list")
    );
}

#[test]
fn slow_matches_hit_the_time_limit() {
    let c = Compiler::new();
    let script = c
        .compile(&"if header :matches \"subject\" \"*a*a*a*a*a*a*a*b\" { discard; }\n".repeat(2000))
        .unwrap();
    let msg = format!("Subject: {}\r\n\r\n", "a".repeat(3000));
    let mut config = Config::default();
    config.limits.max_time = std::time::Duration::from_millis(20);
    let mut rt = Runtime::new(
        c,
        config,
        Message::parse(msg.as_bytes()),
        Envelope::default(),
    );
    let start = std::time::Instant::now();
    let e = rt.run(&mut NoHost, &script).err().unwrap();
    assert!(e.message.contains("time limit"), "{e}");
    // Far less than the 2000 slow matches would take (one step may overshoot).
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn a_chain_stops_once_the_message_is_no_longer_kept() {
    let c = Compiler::new();
    let chain = |srcs: &[&str]| {
        let scripts: Vec<Script> = srcs.iter().map(|s| c.compile(s).unwrap()).collect();
        let refs: Vec<&Script> = scripts.iter().collect();
        let mut rt = Runtime::new(
            c.clone(),
            Config::default(),
            Message::parse(MSG),
            Envelope::default(),
        );
        rt.run_chain(&mut TestHost::default(), &refs)
            .map(|()| rt.result())
    };
    // A keep (explicit or implicit) lets the next script decide.
    let r = chain(&["keep;", "require \"fileinto\"; fileinto \"A\";"]).unwrap();
    assert_eq!(names(&r), ["store"]);
    // A script that files the message ends the chain: the later script never runs.
    let r = chain(&["require \"fileinto\"; fileinto \"A\";", "discard;"]).unwrap();
    assert_eq!(names(&r), ["store"]);
    // Flags and edits made earlier carry on; the error names the failing script.
    let r = chain(&["require \"imap4flags\"; addflag \"x\";", ""]).unwrap();
    assert!(matches!(&r[..], [Action::Keep { flags, .. }] if flags == &["x"]));
    let e = chain(&["keep;", "require \"ihave\"; error \"no\";"]).unwrap_err();
    assert_eq!(e.0, 1);
}

#[test]
fn a_later_script_may_reject_after_an_earlier_one_filed_a_copy() {
    let c = Compiler::new();
    let scripts: Vec<Script> = [
        "require [\"fileinto\", \"copy\"]; fileinto :copy \"Archive\";",
        "require \"reject\"; reject \"no\";",
    ]
    .iter()
    .map(|s| c.compile(s).unwrap())
    .collect();
    let refs: Vec<&Script> = scripts.iter().collect();
    let mut rt = Runtime::new(
        c.clone(),
        Config::default(),
        Message::parse(MSG),
        Envelope::default(),
    );
    rt.run_chain(&mut TestHost::default(), &refs).unwrap();
    assert_eq!(names(&rt.result()), ["store", "reject"]);
    // Within one script the two still conflict (RFC 5429 2.3).
    assert!(run_with(
        "require [\"fileinto\", \"copy\", \"reject\"]; fileinto :copy \"A\"; reject \"no\";",
        &mut TestHost::default()
    )
    .is_err());
}

#[test]
fn edited_copies_are_shared_and_bounded() {
    let src = "require [\"editheader\", \"fileinto\", \"copy\"];\n\
               addheader \"X-A\" \"1\"; fileinto :copy \"A\"; fileinto :copy \"B\";\n\
               addheader \"X-B\" \"2\"; fileinto :copy \"C\";";
    let (a, _) = run_with(src, &mut TestHost::default()).unwrap();
    let copies: Vec<&std::sync::Arc<Vec<u8>>> = a
        .iter()
        .filter_map(|x| match x {
            Action::FileInto { message, .. } => message.as_ref(),
            _ => None,
        })
        .collect();
    assert_eq!(copies.len(), 3);
    // Two actions in one edited state share one copy; the next edit makes another.
    assert!(std::sync::Arc::ptr_eq(copies[0], copies[1]));
    assert!(!std::sync::Arc::ptr_eq(copies[1], copies[2]));
    // A tight bound stops a script that keeps editing and filing.
    let c = Compiler::new();
    let script = c.compile(src).unwrap();
    let mut config = Config::default();
    config.limits.max_snapshot_bytes = MSG.len() + 20;
    let mut rt = Runtime::new(c, config, Message::parse(MSG), Envelope::default());
    let e = rt.run(&mut TestHost::default(), &script).unwrap_err();
    assert!(e.message.contains("memory limit"), "{e}");
}
