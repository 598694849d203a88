//! RFC 5235 spamtest, spamtestplus and virustest: a score read from a header a filter in
//! front of the server added, configured as Pigeonhole configures it
//! (`sieve_spamtest_status_header = NAME[:REGEX]`, `..._status_type = score|strlen|text`,
//! `..._score_max_header`, `..._score_max_value`, `..._text_value/N`).

use crate::message::Message;

/// How a header's value becomes a score.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// A number, against a maximum (from a header or a fixed value).
    Score,
    /// The value's length (`*****`), against the maximum.
    Strlen,
    /// Fixed texts, each standing for a value (`text_value/N`).
    Text,
}

/// One configured test (spamtest or virustest).
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreTest {
    pub header: String,
    /// The first group (or the whole match) of this expression is the value.
    pub regex: Option<String>,
    pub kind: Kind,
    pub max_header: Option<(String, Option<String>)>,
    pub max_value: Option<f64>,
    pub text_values: Vec<(u32, String)>,
}

/// `NAME[:REGEX]`, as the status and max headers are given.
pub fn header_spec(spec: &str) -> (String, Option<String>) {
    match spec.split_once(':') {
        Some((h, r)) => (h.trim().to_string(), Some(r.trim_start().to_string())),
        None => (spec.trim().to_string(), None),
    }
}

/// A header's value, through the expression when there is one (None: absent, no match).
fn read(msg: &Message, header: &str, regex: Option<&str>) -> Option<String> {
    let raw = msg.raw_values(header).next()?;
    // The expressions are written against the field as it appears ("Name: value").
    let value = crate::message::unfold(raw).trim().to_string();
    let Some(re) = regex else {
        return Some(value);
    };
    let line = format!("{header}:{}", raw.trim_end_matches(['\r', '\n']));
    let re = regex::RegexBuilder::new(re)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .ok()?;
    let caps = re.captures(&line).or_else(|| re.captures(&value))?;
    Some(caps.get(1).or_else(|| caps.get(0))?.as_str().to_string())
}

impl ScoreTest {
    /// The test's value: "0" when not tested, else 1..=`top` (10 for spamtest, 5 for
    /// virustest), or 0..=100 with `percent`.
    pub fn value(&self, msg: &Message, top: u32, percent: bool) -> String {
        let Some(v) = read(msg, &self.header, self.regex.as_deref()) else {
            return "0".into();
        };
        let ratio = match self.kind {
            Kind::Text => {
                let Some((n, _)) = self
                    .text_values
                    .iter()
                    .find(|(_, t)| t.trim().eq_ignore_ascii_case(v.trim()))
                else {
                    return "0".into();
                };
                if !percent {
                    return n.min(&top).to_string();
                }
                f64::from(n.saturating_sub(1)) / f64::from(top - 1)
            }
            Kind::Score | Kind::Strlen => {
                let score = if self.kind == Kind::Strlen {
                    v.trim().chars().count() as f64
                } else {
                    match v.trim().parse::<f64>() {
                        Ok(s) => s,
                        Err(_) => return "0".into(),
                    }
                };
                let max = match &self.max_header {
                    Some((h, r)) => read(msg, h, r.as_deref()).and_then(|m| m.trim().parse().ok()),
                    None => self.max_value,
                };
                match max {
                    Some(m) if m > 0.0 => (score / m).clamp(0.0, 1.0),
                    _ => return "0".into(),
                }
            }
        };
        if percent {
            ((ratio * 100.0).round() as u32).to_string()
        } else {
            (1 + (ratio * f64::from(top - 1)).floor() as u32).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_scale_to_the_range() {
        let m =
            Message::parse(b"X-Spam: No, score=1.0 required=5.0\r\nX-V: Found infected.\r\n\r\n");
        let (header, regex) = header_spec("X-Spam:score=(-?[0-9]+.[0-9]+)");
        let t = ScoreTest {
            header,
            regex,
            kind: Kind::Score,
            max_header: Some(header_spec("X-Spam:required=([0-9.]+)")),
            max_value: None,
            text_values: Vec::new(),
        };
        assert_eq!(t.value(&m, 10, false), "2");
        assert_eq!(t.value(&m, 10, true), "20");
        let missing = ScoreTest {
            header: "X-None".into(),
            ..t.clone()
        };
        assert_eq!(missing.value(&m, 10, false), "0");
        let (header, regex) = header_spec("X-V:Found (.+)\\.");
        let v = ScoreTest {
            header,
            regex,
            kind: Kind::Text,
            max_header: None,
            max_value: None,
            text_values: vec![(1, "clean".into()), (5, "infected".into())],
        };
        assert_eq!(v.value(&m, 5, false), "5");
    }
}
