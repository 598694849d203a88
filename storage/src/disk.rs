//! Free space on the store's filesystem, checked before every group commit
//! (`StoreConfig::min_free_bytes`).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes an unprivileged writer can still use on the filesystem of `path`; None if unknown
/// (then the write is tried, and a real failure is handled as one).
#[allow(unsafe_code)]
pub fn available(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs reads the NUL-terminated path and writes only the struct it is given,
    // which is zero-initialised plain data.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reports_some_space_here() {
        let d = tempfile::tempdir().unwrap();
        assert!(super::available(d.path()).is_some_and(|b| b > 0));
        assert!(super::available(&d.path().join("missing")).is_none());
    }
}
