//! Network lists: passwd-file's `allow_nets=` extra field (Dovecot's syntax: comma- or
//! space-separated CIDRs or addresses, and `local` for a login whose address is unknown) and
//! auth_failure_limit_exempt_nets.

use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// An address and prefix length.
    Cidr(IpAddr, u8),
    /// Dovecot's `local`: matches a login with no remote address (a local admin check).
    Local,
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) compare as the IPv4 address.
fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Net {
    pub fn parse(s: &str) -> Result<Net, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("local") {
            return Ok(Net::Local);
        }
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!("{s:?} is not an IP address or CIDR (192.0.2.0/24, 2001:db8::/32)")
        })?;
        let ip = plain(ip);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
        };
        Ok(Net::Cidr(ip, len))
    }

    pub fn contains(&self, ip: Option<IpAddr>) -> bool {
        match (self, ip) {
            (Net::Local, None) => true,
            (Net::Cidr(net, len), Some(ip)) => match (net, plain(ip)) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                    u32::from(*n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
                    u128::from(*n) & mask == u128::from(a) & mask
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// A list as written in a passwd-file field: `127.0.0.1,192.0.2.0/24 local`.
pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<Net>, String> {
    items
        .into_iter()
        .flat_map(|s| s.split([',', ' ']))
        .filter(|s| !s.trim().is_empty())
        .map(Net::parse)
        .collect()
}

pub fn any_contains(nets: &[Net], ip: Option<IpAddr>) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn cidrs_addresses_and_local() {
        let nets = parse_list(["127.0.0.0/8,192.0.2.7 2001:db8::/32", "local"]).unwrap();
        assert!(any_contains(&nets, ip("127.1.2.3")));
        assert!(any_contains(&nets, ip("::ffff:127.0.0.1")));
        assert!(any_contains(&nets, ip("192.0.2.7")));
        assert!(!any_contains(&nets, ip("192.0.2.8")));
        assert!(any_contains(&nets, ip("2001:db8:1::5")));
        assert!(!any_contains(&nets, ip("2001:db9::1")));
        assert!(any_contains(&nets, None));
        let no_local = parse_list(["10.0.0.0/8"]).unwrap();
        assert!(!any_contains(&no_local, None));
        let all = parse_list(["0.0.0.0/0"]).unwrap();
        assert!(any_contains(&all, ip("203.0.113.9")));
    }

    #[test]
    fn bad_entries_are_errors_not_panics() {
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "example.com",
            "10.0.0.0/",
            "/8",
            "1.2.3.4/-1",
        ] {
            assert!(Net::parse(bad).is_err(), "{bad}");
        }
        // Arbitrary input never panics.
        for s in [
            "",
            "/",
            "//",
            "\u{0}",
            "1.2.3.4/255",
            "ffff::/0/0",
            "local/8",
        ] {
            let _ = Net::parse(s);
        }
    }
}
