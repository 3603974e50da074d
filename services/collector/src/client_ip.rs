//! The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
//! nearest untrusted address of `X-Forwarded-For`. Used only to hash; never stored.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Resolves the client address. Headers are believed only when `peer` is in `trusted`, and then
/// only up to the first hop (from the right) that is not itself trusted: a client cannot spoof
/// its address by sending its own `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let chain: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .collect();
    if let Some(ip) = chain.iter().rev().find(|ip| !is_trusted(ip)) {
        return *ip;
    }
    if let Some(first) = chain.first() {
        return *first;
    }
    headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
        .map(canonical)
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().expect("header"));
        h
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(
            client_ip(ip("203.0.113.5"), &xff("1.2.3.4"), &[]),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn trusted_proxy_forwards_the_nearest_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // The client forged "6.6.6.6"; the proxy appended the real address.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff("6.6.6.6, 198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff("198.51.100.7, 10.0.0.9"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_rules() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().expect("net")];
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &xff("198.51.100.7"), &trusted),
            ip("198.51.100.7")
        );
    }
}
