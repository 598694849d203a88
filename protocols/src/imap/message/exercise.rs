//! Every view of a message that FETCH and SEARCH can produce, from arbitrary bytes: the body of
//! the `mime_facts` fuzz target (fuzz/), and of a test that replays its seed corpus so the same
//! checks run in CI where a fuzzer cannot.

use super::search::{matches, LazyContent, MessageCtx, SearchKey};
use super::section::{Partial, SectionSpec, SectionText};
use super::{binary_size, decode_binary, extract, render_body, render_envelope};
use storage::mime::{parse_facts, BodyPart};

/// Parses `raw` and renders/extracts everything from the facts. Panics only on a broken
/// invariant (a range outside the message), which is what the fuzzer looks for.
pub fn exercise(raw: &[u8]) {
    let facts = parse_facts(raw);
    let mut out = Vec::new();
    render_envelope(&facts.envelope, &mut out);
    render_body(&facts.body, false, &mut out);
    render_body(&facts.body, true, &mut out);
    let mut paths = Vec::new();
    collect_paths(&facts.body, &mut Vec::new(), &mut paths, 0);
    paths.truncate(64);
    paths.push(Vec::new());
    for path in &paths {
        for text in [
            None,
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::Mime),
            Some(SectionText::HeaderFields(vec![
                b"subject".to_vec(),
                b"from".to_vec(),
            ])),
            Some(SectionText::HeaderFieldsNot(vec![b"subject".to_vec()])),
        ] {
            if path.is_empty() && text == Some(SectionText::Mime) {
                continue;
            }
            let spec = SectionSpec {
                part: path.clone(),
                text,
                partial: Some(Partial {
                    origin: 1,
                    count: 7,
                }),
            };
            let got = extract(raw, &facts, &spec);
            assert!(got.len() <= 7);
        }
        let _ = decode_binary(raw, &facts, path, None);
        let _ = binary_size(raw, &facts, path);
    }
    let meta = storage::MessageMeta {
        uid: 1,
        guid: storage::Guid::default(),
        object: storage::ObjectId([0; 32]),
        flags: Default::default(),
        modseq: 1,
        internal_date: 0,
        internal_date_tz_min: 0,
        size: raw.len() as u64,
        saved_ms: 0,
    };
    let content = LazyContent::new(|| Some(raw.to_vec()), || None);
    let ctx = MessageCtx::new(1, &meta, false, 1, 1, &content);
    let key = SearchKey::Or(
        Box::new(SearchKey::Text("zz".to_string())),
        Box::new(SearchKey::And(vec![
            SearchKey::From("a".to_string()),
            SearchKey::SentSince(chrono::NaiveDate::MIN),
        ])),
    );
    let _ = matches(&key, &ctx);
}

fn collect_paths(part: &BodyPart, prefix: &mut Vec<u32>, out: &mut Vec<Vec<u32>>, depth: usize) {
    if depth > 8 || out.len() > 64 {
        return;
    }
    let children: Vec<&BodyPart> = if part.is_multipart() {
        part.children.iter().collect()
    } else if let Some(m) = &part.message {
        if depth == 0 {
            vec![part]
        } else if m.1.is_multipart() {
            m.1.children.iter().collect()
        } else {
            vec![&m.1]
        }
    } else if depth == 0 {
        vec![part]
    } else {
        Vec::new()
    };
    for (i, c) in children.into_iter().enumerate() {
        prefix.push(i as u32 + 1);
        out.push(prefix.clone());
        if !std::ptr::eq(c, part) {
            collect_paths(c, prefix, out, depth + 1);
        } else if let Some(m) = &c.message {
            collect_paths(&m.1, prefix, out, depth + 1);
        }
        prefix.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's seed corpus, replayed: it lives in the repository, so this always runs.
    #[test]
    fn fuzz_seed_corpus_replays() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/mime_facts");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz corpus directory") {
            let path = entry.expect("corpus entry").path();
            // Only the committed seeds: a running fuzzer adds (and removes) other entries here.
            let is_seed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            if !is_seed {
                continue;
            }
            let raw = std::fs::read(&path).expect("corpus file");
            exercise(&raw);
            // Every prefix too: truncated messages are the common real-world breakage.
            for cut in (0..raw.len()).step_by(7) {
                exercise(&raw[..cut]);
            }
            n += 1;
        }
        assert!(n >= 5, "only {n} seeds in {}", dir.display());
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_through_every_view(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..1024)) {
            exercise(&raw);
        }
    }
}
