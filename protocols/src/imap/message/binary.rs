//! BINARY[part]<partial> and BINARY.SIZE[part] (RFC 3516): the part's content with its
//! Content-Transfer-Encoding removed.

use super::section::{apply_partial, resolve, Partial};
use super::text::decode_transfer;
use storage::mime::MessageFacts;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// The part's encoding is not one this server decodes: `NO [UNKNOWN-CTE]`.
    #[error("Unknown Content-Transfer-Encoding")]
    UnknownCte,
}

/// The decoded content of a part (then cut by `partial`). The whole message (empty path),
/// multiparts and message/rfc822 parts are sent as they are; a part that does not exist is empty.
pub fn decode_binary(
    raw: &[u8],
    facts: &MessageFacts,
    part: &[u32],
    partial: Option<Partial>,
) -> Result<Vec<u8>, BinaryError> {
    let whole = decoded(raw, facts, part)?;
    Ok(match partial {
        None => whole,
        Some(p) => apply_partial(&whole, p).to_vec(),
    })
}

/// BINARY.SIZE: the length of the decoded part.
pub fn binary_size(raw: &[u8], facts: &MessageFacts, part: &[u32]) -> Result<u64, BinaryError> {
    Ok(decoded(raw, facts, part)?.len() as u64)
}

fn decoded(raw: &[u8], facts: &MessageFacts, part: &[u32]) -> Result<Vec<u8>, BinaryError> {
    if part.is_empty() {
        return Ok(raw.to_vec());
    }
    let Some(p) = resolve(&facts.body, part) else {
        return Ok(Vec::new());
    };
    let body = p.body.slice(raw);
    if p.is_multipart() || p.is_message() {
        return Ok(body.to_vec());
    }
    decode_transfer(&p.encoding, body).ok_or(BinaryError::UnknownCte)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::mime::parse_facts;

    #[test]
    fn base64_part_and_unknown_cte() {
        let raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nzzz\r\n--b--\r\n";
        let f = parse_facts(raw);
        assert_eq!(decode_binary(raw, &f, &[1], None).unwrap(), b"hello");
        assert_eq!(binary_size(raw, &f, &[1]).unwrap(), 5);
        assert_eq!(
            decode_binary(
                raw,
                &f,
                &[1],
                Some(Partial {
                    origin: 1,
                    count: 2
                })
            )
            .unwrap(),
            b"el"
        );
        assert_eq!(
            decode_binary(raw, &f, &[2], None),
            Err(BinaryError::UnknownCte)
        );
        assert_eq!(decode_binary(raw, &f, &[9], None).unwrap(), b"");
        assert_eq!(binary_size(raw, &f, &[]).unwrap(), raw.len() as u64);
    }
}
