//! Dovecot's `{CRAM-MD5}` stored scheme: the two HMAC-MD5 intermediate states (after the
//! key XOR opad block, then after the key XOR ipad block), each as four little-endian
//! 32-bit words, in hex. A password is checked by computing the same states.

use md5::block_api::compress;
use md5::{Digest, Md5};

const INIT: [u32; 4] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476];

/// The 32-byte context of `password`.
pub fn context(password: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 64];
    if password.len() > 64 {
        key[..16].copy_from_slice(&Md5::digest(password));
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let state = |pad: u8| {
        let mut block = [0u8; 64];
        for (b, k) in block.iter_mut().zip(key) {
            *b = k ^ pad;
        }
        let mut s = INIT;
        compress(&mut s, &[block]);
        s
    };
    let mut out = [0u8; 32];
    for (i, word) in state(0x5c).iter().chain(state(0x36).iter()).enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}

pub fn to_hex(ctx: &[u8; 32]) -> String {
    ctx.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `password` matches the stored hex context; None when it is not one.
pub fn verify(stored: &str, password: &[u8]) -> Option<bool> {
    let stored = stored.trim();
    if stored.len() != 64 || !stored.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let made = to_hex(&context(password));
    Some(super::schemes::constant_time_eq(
        made.as_bytes(),
        stored.to_ascii_lowercase().as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_doveadm_pw() {
        // doveadm pw -s CRAM-MD5 -p 'Sup3r secret' (Dovecot 2.3.19).
        let stored = "5e5c2bc1d99dfbf9dea773ddc04fd33a99d57930fec9a7af9e197a9b54f616d7";
        assert_eq!(verify(stored, b"Sup3r secret"), Some(true));
        assert_eq!(verify(stored, b"Sup3r secreT"), Some(false));
        assert_eq!(verify("zz", b"x"), None);
    }
}
