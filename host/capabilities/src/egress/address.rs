//! Which IP addresses are global: the check every destination passes unless its rule allows
//! private addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a globally reachable unicast address, i.e. one a connector may be sent to
/// without an explicit `allow_private`.
///
/// Deliberately stricter than "not RFC 1918": loopback, link-local (including the cloud metadata
/// address 169.254.169.254), shared CGNAT space, documentation and benchmarking ranges,
/// multicast, reserved and broadcast addresses are all non-global. IPv6 forms that embed an IPv4
/// address (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are judged by the embedded address, so
/// `::ffff:127.0.0.1` cannot smuggle a loopback request past the check. Outside the embedded
/// forms only 2000::/3 (global unicast) can be global.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => is_global_v6(v6),
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let non_global = a == 0 // "this network" 0.0.0.0/8
        || a == 10 // private 10/8
        || (a == 100 && (b & 0xc0) == 64) // shared address space 100.64/10
        || a == 127 // loopback 127/8
        || (a == 169 && b == 254) // link-local 169.254/16, incl. metadata 169.254.169.254
        || (a == 172 && (b & 0xf0) == 16) // private 172.16/12
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1 192.0.2/24
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast 192.88.99/24 (deprecated)
        || (a == 192 && b == 168) // private 192.168/16
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2 198.51.100/24
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3 203.0.113/24
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast 255.255.255.255
    !non_global
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let embedded_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));

    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    // ::ffff:a.b.c.d, IPv4-mapped.
    if s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff {
        return is_global_v4(embedded_v4(s[6], s[7]));
    }
    // ::a.b.c.d, IPv4-compatible (deprecated, but some stacks still route it as IPv4).
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return is_global_v4(embedded_v4(s[6], s[7]));
    }
    // 64:ff9b::/96, the well-known NAT64 prefix.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_global_v4(embedded_v4(s[6], s[7]));
    }
    // 2002::/16, 6to4: the IPv4 address is in bits 16..48.
    if s[0] == 0x2002 {
        return is_global_v4(embedded_v4(s[1], s[2]));
    }
    let non_global = (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // 64:ff9b:1::/48 local NAT64
        || (s[0] == 0x100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
        || (s[0] == 0x2001 && s[1] == 0) // Teredo 2001::/32 (embeds an obfuscated IPv4)
        || (s[0] == 0x2001 && s[1] == 0x2 && s[2] == 0) // benchmarking 2001:2::/48
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x10) // ORCHID 2001:10::/28
        || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x20) // ORCHIDv2 2001:20::/28
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation 2001:db8::/32
        || (s[0] == 0x3fff && (s[1] & 0xf000) == 0) // documentation 3fff::/20
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || (s[0] & 0xff00) == 0xff00; // multicast ff00::/8
    // Everything outside 2000::/3 is unassigned or special-purpose.
    !non_global && (s[0] & 0xe000) == 0x2000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        let table: &[(&str, bool)] = &[
            // IPv4 non-global
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("10.255.255.255", false),
            ("100.64.0.1", false),
            ("100.127.255.254", false),
            ("127.0.0.1", false),
            ("127.255.0.1", false),
            ("169.254.0.1", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.0.0.8", false),
            ("192.0.2.1", false),
            ("192.168.1.1", false),
            ("198.18.0.1", false),
            ("198.19.255.255", false),
            ("198.51.100.7", false),
            ("203.0.113.9", false),
            ("224.0.0.1", false),
            ("239.255.255.250", false),
            ("240.0.0.1", false),
            ("255.255.255.255", false),
            // IPv4 global, including neighbours of the ranges above
            ("1.1.1.1", true),
            ("8.8.8.8", true),
            ("11.0.0.1", true),
            ("100.63.255.255", true),
            ("100.128.0.1", true),
            ("126.255.255.255", true),
            ("128.0.0.1", true),
            ("169.253.0.1", true),
            ("172.15.255.255", true),
            ("172.32.0.1", true),
            ("192.0.1.1", true),
            ("192.0.3.1", true),
            ("192.167.1.1", true),
            ("192.169.1.1", true),
            ("198.17.0.1", true),
            ("198.20.0.1", true),
            ("198.51.101.1", true),
            ("203.0.114.1", true),
            ("223.255.255.255", true),
            // IPv6 non-global
            ("::", false),
            ("::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::127.0.0.1", false),
            ("::10.0.0.1", false),
            ("64:ff9b::127.0.0.1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b:1::1", false),
            ("2002:7f00:1::", false),
            ("2002:a00:1::1", false),
            ("2002:a9fe:a9fe::1", false),
            ("2001::1", false),
            ("2001:0:4136:e378::1", false),
            ("2001:db8::1", false),
            ("2001:db8:ffff::1", false),
            ("2001:20::1", false),
            ("3fff::1", false),
            ("3fff:fff::1", false),
            ("fc00::1", false),
            ("fd12:3456::1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("fec0::1", false),
            ("ff02::1", false),
            ("ff0e::1", false),
            ("100::1", false),
            ("::2:1", false),
            // IPv6 global
            ("::ffff:8.8.8.8", true),
            ("::8.8.8.8", true),
            ("64:ff9b::808:808", true),
            ("2002:808:808::1", true),
            ("2001:4860:4860::8888", true),
            ("2606:4700:4700::1111", true),
            ("2a00:1450:4001::1", true),
            ("3fff:1000::1", true),
            ("2001:db9::1", true),
        ];
        for (text, expected) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(
                is_global(ip),
                *expected,
                "{text} global should be {expected}"
            );
        }
    }
}
