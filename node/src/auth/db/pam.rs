//! The `pam` passdb: the password is checked by the system's PAM stack for a service
//! (`args = dovecot`, Dovecot's default; `%s` is the login's service, imap or pop3), then
//! its account management (an expired or locked account is refused). libpam is loaded
//! when a PAM passdb is configured, not linked: the node builds and runs on machines
//! without it. PAM answers no lookups without a password (as in Dovecot): pair it with a
//! `static` userdb with `allow_all_users=yes`, or a passwd-file userdb.

use super::{DbError, Fields, PassDb, PassEntry, PassReply, Request};
use parking_lot::Mutex;
use std::ffi::{c_char, c_int, c_void, CStr, CString};

const PAM_SUCCESS: c_int = 0;
const PAM_USER_UNKNOWN: c_int = 10;
const PAM_AUTH_ERR: c_int = 7;
const PAM_CRED_INSUFFICIENT: c_int = 8;
const PAM_MAXTRIES: c_int = 11;
const PAM_NEW_AUTHTOK_REQD: c_int = 12;
const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_PERM_DENIED: c_int = 6;
const PAM_RHOST: c_int = 4;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_SILENT: c_int = 0x8000;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *mut *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: ConvFn,
    appdata: *mut c_void,
}

type StartFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *const PamConv, *mut *mut c_void) -> c_int;
type HandleFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type SetItemFn = unsafe extern "C" fn(*mut c_void, c_int, *const c_void) -> c_int;
type StrErrorFn = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;

/// libpam's entry points, resolved once.
struct Lib {
    start: StartFn,
    authenticate: HandleFn,
    acct_mgmt: HandleFn,
    end: HandleFn,
    set_item: SetItemFn,
    strerror: StrErrorFn,
}

// SAFETY: the table holds plain function pointers into a library that stays loaded for the
// process's life (never dlclose'd).
#[allow(unsafe_code)]
unsafe impl Send for Lib {}
// SAFETY: as above; calls are serialised by PamDb's lock anyway.
#[allow(unsafe_code)]
unsafe impl Sync for Lib {}

impl Lib {
    #[allow(unsafe_code)]
    fn load() -> Result<Lib, String> {
        let name = c"libpam.so.0";
        // SAFETY: dlopen with a NUL-terminated name; the handle is kept for the process's
        // life (leaked on purpose: PAM modules may keep pointers into it).
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err("cannot load libpam.so.0 (install libpam0g)".into());
        }
        let sym = |s: &CStr| -> Result<*mut c_void, String> {
            // SAFETY: dlsym on a live handle with a NUL-terminated symbol name.
            let p = unsafe { libc::dlsym(handle, s.as_ptr()) };
            if p.is_null() {
                Err(format!("libpam.so.0 has no {}", s.to_string_lossy()))
            } else {
                Ok(p)
            }
        };
        // SAFETY: each symbol is the libpam function of that name, whose C signature the
        // type spells (Linux-PAM's security/pam_appl.h).
        unsafe {
            Ok(Lib {
                start: std::mem::transmute::<*mut c_void, StartFn>(sym(c"pam_start")?),
                authenticate: std::mem::transmute::<*mut c_void, HandleFn>(sym(
                    c"pam_authenticate",
                )?),
                acct_mgmt: std::mem::transmute::<*mut c_void, HandleFn>(sym(c"pam_acct_mgmt")?),
                end: std::mem::transmute::<*mut c_void, HandleFn>(sym(c"pam_end")?),
                set_item: std::mem::transmute::<*mut c_void, SetItemFn>(sym(c"pam_set_item")?),
                strerror: std::mem::transmute::<*mut c_void, StrErrorFn>(sym(c"pam_strerror")?),
            })
        }
    }
}

/// The conversation: every prompt is answered with the password (Dovecot does the same:
/// a PAM stack asking for more than a password cannot be served over IMAP).
#[allow(unsafe_code)]
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    const PAM_BUF_ERR: c_int = 5;
    const PAM_CONV_ERR: c_int = 19;
    let Ok(n) = usize::try_from(num_msg) else {
        return PAM_CONV_ERR;
    };
    if n == 0 || msg.is_null() || resp.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: PAM frees the array and each `resp` with free(3): they must come from
    // calloc/strdup. `appdata` is the CString PamDb::check passed and keeps alive.
    unsafe {
        let out = libc::calloc(n, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        if out.is_null() {
            return PAM_BUF_ERR;
        }
        let password = appdata as *const c_char;
        for i in 0..n {
            // Linux-PAM passes an array of pointers to messages.
            let m = *msg.add(i);
            if m.is_null() {
                continue;
            }
            let r = &mut *out.add(i);
            r.resp_retcode = 0;
            if matches!((*m).msg_style, PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON) {
                r.resp = libc::strdup(password);
                if r.resp.is_null() {
                    for j in 0..i {
                        libc::free((*out.add(j)).resp as *mut c_void);
                    }
                    libc::free(out as *mut c_void);
                    return PAM_BUF_ERR;
                }
            }
        }
        *resp = out;
    }
    PAM_SUCCESS
}

pub struct PamDb {
    lib: Lib,
    /// The PAM service; None for `%s` (the login's service).
    service: Option<String>,
    /// One PAM transaction at a time: modules are not all thread-safe.
    lock: Mutex<()>,
}

/// What PAM said.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    Unknown,
    Mismatch,
    Disabled(String),
    Failed(String),
}

impl PamDb {
    /// Dovecot's args: `[session=yes] [setcred=yes] [failure_show_msg=yes]
    /// [max_requests=N] [cache_key=...] [service]`; the options are accepted (session and
    /// setcred have no meaning without a login session process).
    pub fn parse_service(args: &str) -> Result<Option<String>, String> {
        let mut service = None;
        for w in args.split_whitespace() {
            match w.split_once('=') {
                Some((
                    "session" | "setcred" | "failure_show_msg" | "max_requests" | "cache_key",
                    _,
                )) => {}
                Some((k, _)) => return Err(format!("pam: unknown option {k}")),
                None if service.is_some() => return Err(format!("pam: a second service {w:?}")),
                None => service = Some(w.to_string()),
            }
        }
        Ok(match service.as_deref() {
            Some("%s") => None,
            Some(s) => Some(s.to_string()),
            None => Some("dovecot".to_string()),
        })
    }

    pub fn open(args: &str) -> Result<PamDb, String> {
        Ok(PamDb {
            service: Self::parse_service(args)?,
            lib: Lib::load()?,
            lock: Mutex::new(()),
        })
    }

    #[allow(unsafe_code)]
    fn check(&self, service: &str, user: &str, password: &str, rip: Option<&str>) -> Answer {
        let (Ok(service), Ok(user), Ok(password)) = (
            CString::new(service),
            CString::new(user),
            CString::new(password),
        ) else {
            // A NUL inside a name or password: it cannot be anybody's.
            return Answer::Mismatch;
        };
        let rip = rip.and_then(|r| CString::new(r).ok());
        let _one = self.lock.lock();
        let conv = PamConv {
            conv: converse,
            appdata: password.as_ptr() as *mut c_void,
        };
        let mut handle: *mut c_void = std::ptr::null_mut();
        let lib = &self.lib;
        // SAFETY: the strings and `conv` outlive the transaction, which pam_end closes
        // before they are dropped; `handle` is only used between pam_start and pam_end.
        unsafe {
            let rc = (lib.start)(service.as_ptr(), user.as_ptr(), &conv, &mut handle);
            if rc != PAM_SUCCESS || handle.is_null() {
                return Answer::Failed(format!("pam_start failed (code {rc})"));
            }
            if let Some(r) = &rip {
                (lib.set_item)(handle, PAM_RHOST, r.as_ptr() as *const c_void);
            }
            let text = |rc: c_int| {
                let p = (lib.strerror)(handle, rc);
                if p.is_null() {
                    format!("code {rc}")
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let mut rc = (lib.authenticate)(handle, PAM_SILENT);
            let answer = match rc {
                PAM_SUCCESS => {
                    rc = (lib.acct_mgmt)(handle, PAM_SILENT);
                    match rc {
                        PAM_SUCCESS => Answer::Ok,
                        PAM_ACCT_EXPIRED | PAM_PERM_DENIED | PAM_NEW_AUTHTOK_REQD
                        | PAM_AUTH_ERR => Answer::Disabled(format!("pam_acct_mgmt: {}", text(rc))),
                        PAM_USER_UNKNOWN => Answer::Unknown,
                        _ => Answer::Failed(format!("pam_acct_mgmt: {}", text(rc))),
                    }
                }
                PAM_USER_UNKNOWN => Answer::Unknown,
                PAM_AUTH_ERR | PAM_CRED_INSUFFICIENT | PAM_MAXTRIES | PAM_PERM_DENIED => {
                    Answer::Mismatch
                }
                _ => Answer::Failed(format!("pam_authenticate: {}", text(rc))),
            };
            (lib.end)(handle, rc);
            answer
        }
    }
}

impl PassDb for PamDb {
    fn name(&self) -> &'static str {
        "pam"
    }

    fn lookup(&self, req: &Request, password: Option<&str>) -> Result<PassReply, DbError> {
        let Some(password) = password else {
            return Err(DbError(
                "pam looks nobody up without a password (use a userdb such as static with allow_all_users=yes)"
                    .into(),
            ));
        };
        if password.is_empty() {
            return Ok(PassReply::Mismatch);
        }
        let service = self.service.as_deref().unwrap_or(req.service.as_str());
        let service = if service.is_empty() {
            "dovecot"
        } else {
            service
        };
        let rip = req.rip.map(|i| i.to_string());
        match self.check(service, &req.user, password, rip.as_deref()) {
            Answer::Ok => Ok(PassReply::Found(PassEntry {
                user: req.user.clone(),
                password: None,
                verified: true,
                fields: Fields::default(),
            })),
            Answer::Unknown => Ok(PassReply::Unknown),
            Answer::Mismatch => Ok(PassReply::Mismatch),
            Answer::Disabled(reason) => {
                let mut fields = Fields::default();
                fields.push("nologin", "");
                fields.push("reason", reason);
                Ok(PassReply::Found(PassEntry {
                    user: req.user.clone(),
                    password: None,
                    verified: true,
                    fields,
                }))
            }
            Answer::Failed(e) => Err(DbError(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args() {
        assert_eq!(
            PamDb::parse_service("").unwrap().as_deref(),
            Some("dovecot")
        );
        assert_eq!(
            PamDb::parse_service("session=yes mail").unwrap().as_deref(),
            Some("mail")
        );
        assert_eq!(PamDb::parse_service("%s").unwrap(), None);
        assert!(PamDb::parse_service("a b").is_err());
        assert!(PamDb::parse_service("bogus=1").is_err());
    }
}
