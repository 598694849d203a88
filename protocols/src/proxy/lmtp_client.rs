//! LMTP to a backend for the recipients a proxy node routes there (Dovecot's `lmtp_proxy`),
//! as a state machine over the backend's reply lines: LHLO, MAIL FROM, one RCPT TO per
//! recipient, DATA, then one reply per accepted recipient. Each recipient ends with the
//! backend's own reply for it; whatever the backend never answered is a temporary failure.

use super::imap_login::shorten;

/// The reply a recipient gets when its backend could not be reached or broke off.
pub fn unavailable_reply(addr: &str) -> String {
    format!("451 4.4.0 <{addr}> Remote server not answering")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Greeting,
    Lhlo,
    Mail,
    /// Waiting for the reply to RCPT number n.
    Rcpt(usize),
    Data,
    /// Waiting for the per-recipient reply of the n-th accepted recipient.
    Replies(usize),
    Done,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LmtpStep {
    Send(Vec<u8>),
    Wait,
    /// One final reply per recipient, in the order given; send QUIT and close.
    Done(Vec<String>),
}

pub struct LmtpForward {
    st: St,
    helo: String,
    sender: String,
    rcpts: Vec<String>,
    /// The final reply of each recipient, once known.
    replies: Vec<Option<String>>,
    /// Indexes of the recipients the backend accepted, in RCPT order.
    accepted: Vec<usize>,
    /// The message, dot-stuffed and ended with `.`, sent after 354.
    body: Option<Vec<u8>>,
}

impl LmtpForward {
    /// `body`: the message as received (CRLF lines); dot-stuffed here.
    pub fn new(helo: &str, sender: &str, rcpts: Vec<String>, body: &[u8]) -> LmtpForward {
        let n = rcpts.len();
        LmtpForward {
            st: St::Greeting,
            helo: helo.to_string(),
            sender: sender.to_string(),
            rcpts,
            replies: vec![None; n],
            accepted: Vec::new(),
            body: Some(crate::lmtp::dot_stuff(body)),
        }
    }

    pub fn on_line(&mut self, line: &[u8]) -> LmtpStep {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        let Some(code) = reply_code(text) else {
            return self.abort();
        };
        // A multi-line reply: only its last line ("250 ...") counts.
        if text.as_bytes().get(3) == Some(&b'-') {
            return LmtpStep::Wait;
        }
        match self.st {
            St::Greeting if code == 220 => {
                self.st = St::Lhlo;
                LmtpStep::Send(format!("LHLO {}\r\n", self.helo).into_bytes())
            }
            St::Lhlo if code == 250 => {
                self.st = St::Mail;
                LmtpStep::Send(format!("MAIL FROM:<{}>\r\n", self.sender).into_bytes())
            }
            St::Mail if code == 250 => self.rcpt(0),
            St::Rcpt(i) => {
                if (200..300).contains(&code) {
                    self.accepted.push(i);
                } else if let Some(r) = self.replies.get_mut(i) {
                    *r = Some(text.to_string());
                }
                self.rcpt(i + 1)
            }
            St::Data if code == 354 => {
                self.st = St::Replies(0);
                LmtpStep::Send(self.body.take().unwrap_or_default())
            }
            St::Replies(n) => {
                if let Some(r) = self.accepted.get(n).and_then(|&i| self.replies.get_mut(i)) {
                    *r = Some(text.to_string());
                }
                if n + 1 >= self.accepted.len() {
                    return self.finish();
                }
                self.st = St::Replies(n + 1);
                LmtpStep::Wait
            }
            // MAIL or DATA refused: every recipient not yet answered gets that reply.
            St::Mail | St::Data if code >= 400 => {
                let text = text.to_string();
                for r in self.replies.iter_mut().filter(|r| r.is_none()) {
                    *r = Some(text.clone());
                }
                self.finish()
            }
            _ => self.abort(),
        }
    }

    fn rcpt(&mut self, i: usize) -> LmtpStep {
        match self.rcpts.get(i) {
            Some(addr) => {
                self.st = St::Rcpt(i);
                LmtpStep::Send(format!("RCPT TO:<{addr}>\r\n").into_bytes())
            }
            None if self.accepted.is_empty() => self.finish(),
            None => {
                self.st = St::Data;
                LmtpStep::Send(b"DATA\r\n".to_vec())
            }
        }
    }

    /// The backend went away or said something that is no reply: every recipient it has
    /// not answered gets a temporary failure.
    pub fn abort(&mut self) -> LmtpStep {
        self.finish()
    }

    /// The replies so far, the missing ones as temporary failures.
    fn finish(&mut self) -> LmtpStep {
        self.st = St::Done;
        LmtpStep::Done(
            self.rcpts
                .iter()
                .zip(self.replies.iter())
                .map(|(addr, r)| r.clone().unwrap_or_else(|| unavailable_reply(addr)))
                .collect(),
        )
    }

    /// For logs: where the dialogue stopped.
    pub fn stage(&self) -> String {
        shorten(&format!("{:?}", self.st))
    }
}

fn reply_code(text: &str) -> Option<u16> {
    let code = text.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match text.as_bytes().get(3) {
        None | Some(b' ') | Some(b'-') => code.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(step: LmtpStep) -> String {
        match step {
            LmtpStep::Send(b) => String::from_utf8(b).unwrap(),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    #[test]
    fn two_recipients_one_refused() {
        let mut m = LmtpForward::new(
            "proxy",
            "s@x",
            vec!["a@x".into(), "nobody@x".into(), "b@x".into()],
            b".hi\r\n",
        );
        assert_eq!(sent(m.on_line(b"220 b LMTP ready")), "LHLO proxy\r\n");
        assert_eq!(m.on_line(b"250-b"), LmtpStep::Wait);
        assert_eq!(sent(m.on_line(b"250 PIPELINING")), "MAIL FROM:<s@x>\r\n");
        assert_eq!(sent(m.on_line(b"250 2.1.0 OK")), "RCPT TO:<a@x>\r\n");
        assert_eq!(sent(m.on_line(b"250 2.1.5 OK")), "RCPT TO:<nobody@x>\r\n");
        assert_eq!(
            sent(m.on_line(b"550 5.1.1 <nobody@x> User doesn't exist")),
            "RCPT TO:<b@x>\r\n"
        );
        assert_eq!(sent(m.on_line(b"250 2.1.5 OK")), "DATA\r\n");
        assert_eq!(sent(m.on_line(b"354 OK")), "..hi\r\n.\r\n");
        assert_eq!(m.on_line(b"250 2.0.0 <a@x> Saved"), LmtpStep::Wait);
        assert_eq!(
            m.on_line(b"452 4.2.2 <b@x> Quota exceeded"),
            LmtpStep::Done(vec![
                "250 2.0.0 <a@x> Saved".into(),
                "550 5.1.1 <nobody@x> User doesn't exist".into(),
                "452 4.2.2 <b@x> Quota exceeded".into(),
            ])
        );
    }

    #[test]
    fn nobody_accepted_sends_no_data() {
        let mut m = LmtpForward::new("p", "", vec!["a@x".into()], b"x\r\n");
        m.on_line(b"220 hi");
        m.on_line(b"250 ok");
        m.on_line(b"250 ok");
        assert_eq!(
            m.on_line(b"550 5.1.1 no"),
            LmtpStep::Done(vec!["550 5.1.1 no".into()])
        );
    }

    #[test]
    fn broken_backend_is_a_temporary_failure() {
        let mut m = LmtpForward::new("p", "", vec!["a@x".into(), "b@x".into()], b"x\r\n");
        assert_eq!(
            m.on_line(b"421 go away"),
            LmtpStep::Done(vec![unavailable_reply("a@x"), unavailable_reply("b@x")])
        );
        let mut m = LmtpForward::new("p", "", vec!["a@x".into(), "b@x".into()], b"x\r\n");
        for l in [
            &b"220 hi"[..],
            b"250 ok",
            b"250 ok",
            b"250 ok",
            b"250 ok",
            b"354 go",
        ] {
            m.on_line(l);
        }
        m.on_line(b"250 2.0.0 <a@x> Saved");
        // The connection breaks before b's reply.
        assert_eq!(
            m.abort(),
            LmtpStep::Done(vec![
                "250 2.0.0 <a@x> Saved".into(),
                unavailable_reply("b@x")
            ])
        );
        let mut m = LmtpForward::new("p", "", vec!["a@x".into()], b"x\r\n");
        m.on_line(b"220 hi");
        assert!(matches!(m.on_line(b"hello?"), LmtpStep::Done(_)));
        // MAIL refused: its reply for everyone.
        let mut m = LmtpForward::new("p", "", vec!["a@x".into()], b"x\r\n");
        m.on_line(b"220 hi");
        m.on_line(b"250 ok");
        assert_eq!(
            m.on_line(b"452 4.3.1 full"),
            LmtpStep::Done(vec!["452 4.3.1 full".into()])
        );
    }
}
