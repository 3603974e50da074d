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

/// The salt of local day `day` for historical events: derived from a site's secret import key,
/// because the live salt of that day was deleted long ago. The same key and day give the same
/// salt, so an import run again (or resumed) hashes every visitor as the first run did.
pub fn day_salt(key: &Salt, day: chrono::NaiveDate) -> Salt {
    use siphasher::sip128::{Hasher128 as _, SipHasher24 as SipHasher128};
    let mut hasher = SipHasher128::new_with_key(&key.0);
    hasher.write(b"beacon day salt\0");
    hasher.write(day.to_string().as_bytes());
    Salt(hasher.finish128().as_bytes())
}

/// The visitor id of an opaque visitor string an earlier tool exported (a hashed user id, a
/// session id), keyed with the site's import key: the same string is the same visitor on
/// every day, and the string itself is never stored.
pub fn opaque_visitor_id(key: &Salt, site: &str, visitor: &str) -> u64 {
    let mut hasher = SipHasher24::new_with_key(&key.0);
    hasher.write(b"opaque\0");
    hasher.write(site.as_bytes());
    hasher.write_u8(0);
    hasher.write(visitor.as_bytes());
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

    #[test]
    fn day_salts_differ_by_day_and_key_and_repeat() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).expect("date");
        let next = day.succ_opt().expect("date");
        assert_eq!(day_salt(&A, day), day_salt(&A, day));
        assert_ne!(day_salt(&A, day), day_salt(&A, next));
        assert_ne!(day_salt(&A, day), day_salt(&B, day));
        assert_ne!(
            opaque_visitor_id(&A, "a.com", "user-1"),
            opaque_visitor_id(&A, "b.com", "user-1")
        );
        assert_ne!(
            opaque_visitor_id(&A, "a.com", "user-1"),
            opaque_visitor_id(&B, "a.com", "user-1")
        );
    }
}
