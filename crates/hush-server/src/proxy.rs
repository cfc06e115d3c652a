//! The client's address behind trusted reverse proxies (`X-Forwarded-For`).
//!
//! Without a trusted proxy the peer address is the client, and
//! `X-Forwarded-For` is ignored: anyone can write it. With trusted proxies
//! (`--trusted-proxy CIDR`), a request whose peer is one of them names its
//! client in `X-Forwarded-For`; the header is read from the right (each proxy
//! appends the address it saw), skipping trusted proxies, and the first
//! address that is not one is the client. Addresses left of it were written
//! by the client itself and are never believed.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;

/// An address block such as `10.0.0.0/8` or `fd00::/8` (a bare address is a
/// block of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    base: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxy` value does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an address block: use ADDRESS/PREFIX such as 10.0.0.0/8 or fd00::/8")]
pub struct BadCidr(String);

impl FromStr for Cidr {
    type Err = BadCidr;

    fn from_str(s: &str) -> Result<Self, BadCidr> {
        let bad = || BadCidr(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let base: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { base, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is in this block (an IPv4-mapped IPv6 address counts as
    /// its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(b), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client of a request that came from `peer` with `headers`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    // Every X-Forwarded-For header, in order, as one list.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage from an untrusted hop: stop at the last address
            // a trusted proxy vouched for.
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// An address in `X-Forwarded-For`: `1.2.3.4`, `2001:db8::1`, or with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:5678`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    proptest::proptest! {
        /// Whatever a client writes in the header or an operator in a
        /// block, nothing panics, and an untrusted peer is its own client.
        #[test]
        fn untrusted_bytes_never_panic(
            headers in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..80), 0..4),
            block in ".{0,50}",
            peer in proptest::num::u128::ANY,
        ) {
            let _ = block.parse::<Cidr>();
            let mut h = HeaderMap::new();
            for bytes in &headers {
                if let Ok(v) = axum::http::HeaderValue::from_bytes(bytes) {
                    h.append("x-forwarded-for", v);
                }
            }
            let peer = IpAddr::V6(std::net::Ipv6Addr::from(peer));
            let all: Cidr = "::/0".parse().unwrap();
            let _ = client_ip(peer, &h, &[all]);
            proptest::prop_assert_eq!(client_ip(peer, &h, &[]), peer);
        }
    }

    #[test]
    fn blocks_parse_and_contain() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.200.1.1")));
        assert!(c.contains(ip("::ffff:10.1.1.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        let c: Cidr = "fd00::/8".parse().unwrap();
        assert!(c.contains(ip("fd12::1")));
        assert!(!c.contains(ip("fe80::1")));
        let c: Cidr = "192.0.2.7".parse().unwrap();
        assert!(c.contains(ip("192.0.2.7")) && !c.contains(ip("192.0.2.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "::/129", "ten/8", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_from_an_untrusted_peer_is_ignored() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let h = xff(&["198.51.100.1"]);
        assert_eq!(
            client_ip(ip("203.0.113.5"), &h, &trusted),
            ip("203.0.113.5")
        );
        // No trusted proxy configured: never believed.
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_for_from_a_trusted_proxy_names_the_rightmost_untrusted_hop() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        // The client forged the first entry; the proxy appended the real one.
        let h = xff(&["1.1.1.1, 198.51.100.7", "10.0.0.3"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
        let h = xff(&["[2001:db8::5]:443"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("2001:db8::5"));
        // Garbage stops the walk at the last vouched-for address.
        let h = xff(&["nonsense, 10.0.0.9"]);
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("10.0.0.9"));
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
    }
}
