//! Event ids for import lines that bring none: derived from the site and the line itself (and its
//! occurrence among identical lines), so importing the same file again gives the same ids, and
//! the events already imported are recognised.

use std::collections::HashMap;

use beacon_schemas::EventId;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Hands out the ids of one import run: a line seen for the n-th time gets its n-th id.
#[derive(Default)]
pub struct LineIds {
    seen: HashMap<[u8; 32], u64>,
}

impl LineIds {
    pub fn id_for(&mut self, site: &str, line: &str) -> EventId {
        let digest: [u8; 32] = Sha256::new()
            .chain_update(site.as_bytes())
            .chain_update([0])
            .chain_update(line.trim().as_bytes())
            .finalize()
            .into();
        let occurrence = self.seen.entry(digest).or_insert(0);
        let n = *occurrence;
        *occurrence += 1;
        let full: [u8; 32] = Sha256::new()
            .chain_update(digest)
            .chain_update(n.to_be_bytes())
            .finalize()
            .into();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&full[..16]);
        // A version-8 (custom) UUID: the layout RFC 9562 gives to ids derived this way.
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        EventId::from_uuid(Uuid::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_lines_get_the_same_ids_run_after_run() {
        let lines = ["{\"a\":1}", "{\"a\":1}", "{\"a\":2}"];
        let run = || {
            let mut ids = LineIds::default();
            lines.map(|l| ids.id_for("a.example", l))
        };
        let first = run();
        assert_eq!(first, run());
        assert_ne!(first[0], first[1], "a repeated line is another event");
        assert_ne!(first[0], first[2]);
        assert_eq!(first[0].as_uuid().get_version_num(), 8);
        let mut other_site = LineIds::default();
        assert_ne!(other_site.id_for("b.example", lines[0]), first[0]);
    }
}
