//! Which addresses a webhook delivery may go to (the SSRF guard): those reachable on the public
//! internet. Judged twice: when a subscription's URL is checked (`POST /v1/webhooks`, literal
//! addresses and local names, without network access) and when a delivery connects (every
//! address its receiver's name resolves to, `webhook_delivery`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is reachable on the public internet: the only addresses a delivery may go to
/// (SSRF guard). An IPv4 address carried in IPv6 (mapped, compatible, 6to4, NAT64) reaches that
/// IPv4 address, so it is judged as that address.
pub fn globally_routable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => global_v4(v4),
        IpAddr::V6(v6) => carried_ipv4(v6).map_or_else(|| global_v6(v6), global_v4),
    }
}

/// The IPv4 ranges of IANA's special-purpose registry that are not global.
const NOT_GLOBAL_V4: [(Ipv4Addr, u32); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (carrier-grade NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata services among them
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast, deprecated
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, the broadcast address among them
];

fn global_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !NOT_GLOBAL_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX << (32 - len);
        bits & mask == u32::from(net) & mask
    })
}

/// Global unicast IPv6 is allocated from 2000::/3 only; everything outside it (loopback,
/// unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, the
/// local-use NAT64 prefix 64:ff9b:1::/48, discard 100::/64…) is not global, and so are these
/// blocks inside it. A future allocation outside 2000::/3 is refused until this list learns it.
const NOT_GLOBAL_IN_2000_3: [(Ipv6Addr, u32); 3] = [
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments, Teredo among them
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
];

fn global_v6(ip: Ipv6Addr) -> bool {
    let within = |bits: u128, net: Ipv6Addr, len: u32| {
        let mask = u128::MAX << (128 - len);
        bits & mask == u128::from(net) & mask
    };
    let bits = u128::from(ip);
    within(bits, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
        && !NOT_GLOBAL_IN_2000_3.iter().any(|&(net, len)| within(bits, net, len))
}

/// The IPv4 address an IPv6 one reaches: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, which also covers `::` and `::1`), NAT64 through the well-known prefix
/// (`64:ff9b::a.b.c.d`), or 6to4 (`2002:AABB:CCDD::/48` for `AA.BB.CC.DD`).
fn carried_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [.., a, b, c, d] = ip.octets();
    match ip.segments() {
        [0, 0, 0, 0, 0, 0 | 0xffff, _, _] | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(Ipv4Addr::new(a, b, c, d)),
        [0x2002, high, low, ..] => Some(Ipv4Addr::from((u32::from(high) << 16) | u32::from(low))),
        _ => None,
    }
}

/// Whether a resolved address may receive deliveries (SSRF guard, also applied when sending).
pub fn address_allowed(ip: IpAddr, allow_insecure: bool) -> bool {
    allow_insecure || globally_routable(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routable(s: &str) -> bool {
        globally_routable(s.parse().unwrap_or_else(|_| panic!("{s} is an address")))
    }

    #[test]
    fn special_purpose_ipv4_is_not_global() {
        for ip in [
            "0.0.0.0",
            "0.255.255.255",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.255",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
        ] {
            assert!(!routable(ip), "{ip}");
        }
    }

    #[test]
    fn public_ipv4_is_global_up_to_the_edges_of_the_ranges() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(routable(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_outside_global_unicast_is_not_global() {
        for ip in [
            "::",
            "::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "ff0e::101",
            "100::1",
            "64:ff9b:1::808:808",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:1ff::1",
            "2001:db8::1",
            "3fff::1",
            "4000::1",
        ] {
            assert!(!routable(ip), "{ip}");
        }
        for ip in [
            "2001:4860:4860::8888",
            "2a00:1450:4001::200e",
            "2001:200::1",
            "2c0f:fb50::1",
        ] {
            assert!(routable(ip), "{ip}");
        }
    }

    /// Mapped, compatible, NAT64 and 6to4 addresses reach the IPv4 address they carry.
    #[test]
    fn ipv4_carried_in_ipv6_is_judged_as_that_ipv4() {
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:198.18.0.1",
            "::127.0.0.1",
            "::192.0.0.8",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::240.0.0.1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2002:c0a8:101::1",
            "2002:c612:1::1",
        ] {
            assert!(!routable(ip), "{ip}");
        }
        for ip in ["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"] {
            assert!(routable(ip), "{ip}");
        }
    }

    /// `PASSERELLE_WEBHOOK_ALLOW_INSECURE` lets every address through (local receivers in
    /// development); otherwise an address is allowed when it is global.
    #[test]
    fn an_address_is_allowed_when_global_or_insecure() {
        let allowed = |s: &str| address_allowed(s.parse().unwrap(), false);
        for private in [
            "::127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::192.168.1.1",
            "0.1.2.3",
        ] {
            assert!(!allowed(private), "{private}");
        }
        for public in ["64:ff9b::8.8.8.8", "2001:4860:4860::8888", "8.8.8.8"] {
            assert!(allowed(public), "{public}");
        }
        for local in ["127.0.0.1", "::1", "10.0.0.1"] {
            assert!(address_allowed(local.parse().unwrap(), true), "{local}");
        }
    }
}
