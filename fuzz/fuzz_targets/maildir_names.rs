//! `node import`'s Maildir parsers (node/src/migrate/maildir_names.rs) on arbitrary text:
//! message file names, dovecot-uidlist, dovecot-keywords, mbsync's .uidvalidity,
//! subscriptions and Maildir++ folder names. Nothing may panic; what is written back is
//! read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../node/src/migrate/maildir_names.rs"]
#[allow(dead_code)]
mod maildir_names;

use maildir_names::*;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = parse_file_name(text);
    assert!(text.starts_with(&f.base));
    let info = info_part(&f.flags, &f.keyword_letters);
    let again = parse_file_name(&format!("x{info}"));
    assert_eq!(again.keyword_letters.len(), f.keyword_letters.len());
    if let Ok(list) = parse_uidlist(text) {
        assert!(list.uidvalidity > 0);
        assert!(list.entries.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(list.entries.iter().all(|(u, _)| *u < list.next_uid || *u == u32::MAX));
        let written = write_uidlist(&list);
        // Names of the usual alphabet read back the same (odd ones may lose a second `:2,`
        // or a trailing CR, as Dovecot's reader would).
        let plain = |n: &str| {
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".,=_-".contains(c))
        };
        if list.entries.iter().all(|(_, n)| plain(n)) {
            assert_eq!(parse_uidlist(&written).ok(), Some(list));
        }
    }
    let k = parse_keywords(text);
    assert!(k.len() <= MAX_KEYWORDS);
    let _ = parse_mbsync_uidvalidity(text);
    let _ = parse_subscriptions(text, '.');
    if let Some(name) = folder_to_mailbox(text) {
        let _ = mailbox_to_folder(&name);
    }
    if let Some(s) = decode_mutf7(text) {
        let _ = encode_mutf7(&s);
    }
    assert_eq!(decode_mutf7(&encode_mutf7(text)).as_deref(), Some(text));
});
