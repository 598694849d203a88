//! RFC 5260 date parts, zones and the Date header's parsing.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike};
use mail_parser::parsers::MessageStream;
use mail_parser::HeaderValue;

const PARTS: &[&str] = &[
    "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
    "std11", "zone", "weekday",
];

pub fn valid_part(p: &str) -> bool {
    PARTS.contains(&p.to_ascii_lowercase().as_str())
}

/// "+hhmm" / "-hhmm" to an offset.
pub fn parse_zone(z: &str) -> Option<FixedOffset> {
    let b = z.as_bytes();
    if b.len() != 5 || !matches!(b[0], b'+' | b'-') || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let h: i32 = z[1..3].parse().ok()?;
    let m: i32 = z[3..5].parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    let secs = (h * 3600 + m * 60) * if b[0] == b'-' { -1 } else { 1 };
    FixedOffset::east_opt(secs)
}

/// A Date-style header value (RFC 2822) to a date in its own zone.
pub fn parse_header_date(value: &str) -> Option<DateTime<FixedOffset>> {
    let mut raw = value.as_bytes().to_vec();
    raw.extend_from_slice(b"\n");
    let HeaderValue::DateTime(d) = MessageStream::new(&raw).parse_date() else {
        return None;
    };
    let off = (i32::from(d.tz_hour) * 3600 + i32::from(d.tz_minute) * 60)
        * if d.tz_before_gmt { -1 } else { 1 };
    let tz = FixedOffset::east_opt(off)?;
    let date = NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))?;
    let naive = date.and_hms_opt(u32::from(d.hour), u32::from(d.minute), u32::from(d.second))?;
    tz.from_local_datetime(&naive).single()
}

fn zone_string(d: &DateTime<FixedOffset>, colon: bool) -> String {
    let off = d.offset().local_minus_utc();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    if colon {
        format!("{sign}{:02}:{:02}", off / 3600, (off % 3600) / 60)
    } else {
        format!("{sign}{:02}{:02}", off / 3600, (off % 3600) / 60)
    }
}

/// The named part of a date (the validator has checked the name).
pub fn part(d: &DateTime<FixedOffset>, name: &str) -> Option<String> {
    Some(match name.to_ascii_lowercase().as_str() {
        "year" => format!("{:04}", d.year()),
        "month" => format!("{:02}", d.month()),
        "day" => format!("{:02}", d.day()),
        "date" => d.format("%Y-%m-%d").to_string(),
        "julian" => {
            let epoch = NaiveDate::from_ymd_opt(1858, 11, 17)?;
            (d.date_naive() - epoch).num_days().to_string()
        }
        "hour" => format!("{:02}", d.hour()),
        "minute" => format!("{:02}", d.minute()),
        "second" => format!("{:02}", d.second()),
        "time" => d.format("%H:%M:%S").to_string(),
        "iso8601" => format!("{}{}", d.format("%Y-%m-%dT%H:%M:%S"), zone_string(d, true)),
        "std11" => format!(
            "{} {}",
            d.format("%a, %d %b %Y %H:%M:%S"),
            zone_string(d, false)
        ),
        "zone" => zone_string(d, false),
        "weekday" => d.weekday().num_days_from_sunday().to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_header_date() {
        let d = parse_header_date("Tue, 01 Jan 2008 14:05:06 +0100").unwrap();
        assert_eq!(part(&d, "date").unwrap(), "2008-01-01");
        assert_eq!(part(&d, "zone").unwrap(), "+0100");
        assert_eq!(part(&d, "weekday").unwrap(), "2");
        assert_eq!(part(&d, "julian").unwrap(), "54466");
        assert_eq!(part(&d, "iso8601").unwrap(), "2008-01-01T14:05:06+01:00");
        let utc = d.with_timezone(&parse_zone("-0500").unwrap());
        assert_eq!(part(&utc, "hour").unwrap(), "08");
        assert!(parse_zone("+2400").is_none());
    }
}
