//! Privacy-preserving visitor ids: a keyed hash that is stable for a day and never reversible.
//!
//! id = SipHash-2-4(key = daily random salt, site ‖ client address ‖ user agent). The salt lives only
//! in PostgreSQL and is replaced every day (the previous day's is kept until the next rotation so a
//! visit across midnight keeps its visitor); once a salt is gone, nobody can link ids to addresses.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// A 128-bit secret salt.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Salt(pub [u8; 16]);

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(<secret>)")
    }
}

/// The visitor id of a client on a site under a given salt.
pub fn visitor_id(salt: &Salt, site: &str, client: IpAddr, user_agent: &str) -> u64 {
    let mut hasher = SipHasher24::new_with_key(&salt.0);
    hasher.write(site.as_bytes());
    hasher.write_u8(0);
    match client {
        IpAddr::V4(v4) => hasher.write(&v4.octets()),
        IpAddr::V6(v6) => hasher.write(&v6.octets()),
    }
    hasher.write_u8(0);
    hasher.write(user_agent.as_bytes());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Salt = Salt([1; 16]);
    const B: Salt = Salt([2; 16]);
    const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn same_inputs_same_id() {
        assert_eq!(
            visitor_id(&A, "a.com", ip("203.0.113.9"), UA),
            visitor_id(&A, "a.com", ip("203.0.113.9"), UA)
        );
    }

    #[test]
    fn every_input_changes_the_id() {
        let base = visitor_id(&A, "a.com", ip("203.0.113.9"), UA);
        assert_ne!(base, visitor_id(&B, "a.com", ip("203.0.113.9"), UA), "salt");
        assert_ne!(base, visitor_id(&A, "b.com", ip("203.0.113.9"), UA), "site");
        assert_ne!(
            base,
            visitor_id(&A, "a.com", ip("203.0.113.10"), UA),
            "address"
        );
        assert_ne!(
            base,
            visitor_id(&A, "a.com", ip("203.0.113.9"), "curl/8"),
            "user agent"
        );
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        // Without separators "a.co" + "m..." and "a.com" + "..." could collide.
        assert_ne!(
            visitor_id(&A, "a.co", ip("::1"), "mX"),
            visitor_id(&A, "a.com", ip("::1"), "X")
        );
    }

    #[test]
    fn salt_is_not_printed() {
        assert_eq!(format!("{A:?}"), "Salt(<secret>)");
    }
}
