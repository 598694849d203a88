//! Setting value types written the way Dovecot operators write them: durations such as
//! `2 secs`, `30 mins`, `1h`; sizes such as `1G`, `64k`; word lists such as `"imap pop3 lmtp"`
//! (a TOML array is accepted too).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration setting. A bare integer means seconds, as in Dovecot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationSetting(pub Duration);

/// A size setting in bytes. A bare integer means bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

/// A list of words: a space/comma separated string or a TOML array of strings.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WordList(pub Vec<String>);

impl WordList {
    pub fn of(words: &[&str]) -> WordList {
        WordList(words.iter().map(|w| w.to_string()).collect())
    }
    pub fn contains(&self, word: &str) -> bool {
        self.0.iter().any(|w| w.eq_ignore_ascii_case(word))
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {s:?}: expected e.g. \"2 secs\", \"30 mins\", \"1h\"")
    })?;
    let ms_per_unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 604_800_000,
        other => return Err(format!("invalid duration unit {other:?} in {s:?}")),
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too large"))
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return "0".into();
    }
    for (unit_ms, name) in [
        (604_800_000, "weeks"),
        (86_400_000, "days"),
        (3_600_000, "hours"),
        (60_000, "mins"),
        (1000, "secs"),
    ] {
        if ms.is_multiple_of(unit_ms) {
            return format!("{} {name}", ms / unit_ms);
        }
    }
    format!("{ms} msecs")
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected e.g. \"64k\", \"50M\", \"1G\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("invalid size unit {other:?} in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

pub fn format_size(n: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "k")] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// Accepts a TOML string or a non-negative integer.
struct StrOrInt;

impl<'de> de::Visitor<'de> for StrOrInt {
    type Value = Result<String, u64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an integer")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Ok(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map(Err)
            .map_err(|_| E::custom("must not be negative"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Err(v))
    }
}

impl<'de> Deserialize<'de> for DurationSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(StrOrInt)? {
            Ok(s) => parse_duration(&s)
                .map(DurationSetting)
                .map_err(de::Error::custom),
            Err(secs) => Ok(DurationSetting(Duration::from_secs(secs))),
        }
    }
}

impl Serialize for DurationSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(StrOrInt)? {
            Ok(s) => parse_size(&s).map(Size).map_err(de::Error::custom),
            Err(n) => Ok(Size(n)),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

impl<'de> Deserialize<'de> for WordList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let words = match Raw::deserialize(d)? {
            Raw::One(s) => s
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect(),
            Raw::Many(v) => v,
        };
        Ok(WordList(words))
    }
}

impl Serialize for WordList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_dovecot_style() {
        assert_eq!(parse_duration("2 secs"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("30 mins"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("99999999999999999999 days").is_err());
        assert_eq!(format_duration(Duration::from_secs(120)), "2 mins");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500 msecs");
    }

    #[test]
    fn sizes_in_dovecot_style() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("50 M"), Ok(50 << 20));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("1Q").is_err());
        assert!(parse_size("99999999999999T").is_err());
        assert_eq!(format_size(50 << 20), "50M");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn word_lists_from_string_or_array() {
        #[derive(Deserialize)]
        struct T {
            a: WordList,
            b: WordList,
        }
        let t: T = toml::from_str("a = \"imap pop3, lmtp\"\nb = [\"x\", \"y\"]").unwrap();
        assert_eq!(t.a, WordList::of(&["imap", "pop3", "lmtp"]));
        assert_eq!(t.b, WordList::of(&["x", "y"]));
    }
}
