//! MD5-crypt (`$1$`, Dovecot's `{MD5-CRYPT}`), the FreeBSD/glibc algorithm: weak, but what
//! Postfixadmin installs have stored for years. Only for reading existing hashes; `node pw`
//! writes it only when asked by name.

use md5::{Digest, Md5};

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `$1$salt$hash` for `password` with `salt` (at most 8 characters are used, up to a `$`).
pub fn crypt(password: &[u8], salt: &str) -> String {
    let salt = salt.strip_prefix("$1$").unwrap_or(salt);
    let salt = salt.split('$').next().unwrap_or_default();
    let salt = salt.get(..salt.len().min(8)).unwrap_or(salt).as_bytes();
    let alt = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(b"$1$")
        .chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    let f = |i: usize| u32::from(fin[i]);
    let mut out = String::with_capacity(34);
    out.push_str("$1$");
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (f(a) << 16) | (f(b) << 8) | f(c), 4);
    }
    to64(&mut out, f(11), 2);
    out
}

fn to64(out: &mut String, mut v: u32, n: usize) {
    for _ in 0..n {
        out.push(char::from(ITOA64[(v & 0x3f) as usize]));
        v >>= 6;
    }
}

/// Whether `password` matches a stored `$1$salt$hash`; None when it is not one.
pub fn verify(stored: &str, password: &[u8]) -> Option<bool> {
    let rest = stored.strip_prefix("$1$")?;
    let (salt, hash) = rest.split_once('$')?;
    if hash.len() != 22 || salt.len() > 8 {
        return None;
    }
    let made = crypt(password, salt);
    Some(super::schemes::constant_time_eq(
        made.as_bytes(),
        stored.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_openssl_passwd_1() {
        // `openssl passwd -1 -salt SALT PASSWORD` (OpenSSL 3, Debian).
        for (pw, salt, want) in [
            ("password", "saltsalt", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"),
            ("p w", "ab", "$1$ab$GANrQKiTk3kvAvju/4wkk1"),
            ("", "12345678", "$1$12345678$xek.CpjQUVgdf/P2N9KQf/"),
        ] {
            assert_eq!(crypt(pw.as_bytes(), salt), want);
            assert_eq!(verify(want, pw.as_bytes()), Some(true));
            assert_eq!(verify(want, b"other"), Some(false));
        }
        assert_eq!(verify("$1$x", b"p"), None);
        assert_eq!(verify("$6$abc$def", b"p"), None);
    }
}
