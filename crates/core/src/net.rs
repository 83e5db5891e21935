//! Which addresses a delivery may connect to.
//!
//! By default public addresses only: loopback, private, link-local, CGNAT,
//! multicast, documentation, unspecified and the cloud metadata address are
//! refused, for IPv4, IPv6 and IPv4-mapped IPv6 alike. `delivery.allow_networks`
//! opens chosen ranges (tests and `make run` open 127.0.0.0/8).
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address policy for outgoing deliveries.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    allow: Vec<IpNet>,
}

impl NetPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// True when a delivery may connect to `ip`.
    pub fn is_allowed(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        match ip {
            IpAddr::V4(v4) => is_public_v4(v4),
            IpAddr::V6(v6) => is_public_v6(v6),
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 carrier-grade NAT
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24 protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15 benchmarking
        || o[0] >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 can reach private v4
        || ip.to_ipv4().is_some_and(|v4| !is_public_v4(v4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_table() {
        let p = NetPolicy::default();
        let cases: &[(&str, bool)] = &[
            ("93.184.216.34", true),
            ("2606:4700::1111", true),
            ("127.0.0.1", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false),
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("::1", false),
            ("::", false),
            ("fd00::1", false),
            ("fe80::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:93.184.216.34", true),
        ];
        for (ip, want) in cases {
            assert_eq!(p.is_allowed(ip.parse().unwrap()), *want, "{ip}");
        }
    }

    #[test]
    fn allow_list_opens_ranges() {
        let p = NetPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(p.is_allowed("127.0.0.1".parse().unwrap()));
        assert!(p.is_allowed("::ffff:127.0.0.2".parse().unwrap()));
        assert!(!p.is_allowed("10.0.0.1".parse().unwrap()));
    }
}
