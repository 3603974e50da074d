//! Country of a client address from a MaxMind-format database (`BEACON_GEOIP_DB`). Without one
//! the country is unknown, which is not an error.

use std::net::IpAddr;
use std::path::Path;

use maxminddb::{PathElement, Reader};

pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

impl GeoIp {
    pub fn open(path: &Path) -> Result<Self, maxminddb::MaxMindDbError> {
        Ok(Self {
            reader: Reader::open_readfile(path)?,
        })
    }

    /// ISO 3166-1 alpha-2 code, upper case. Reads MaxMind/DB-IP (`country.iso_code`) and
    /// ip-location-db (`country_code`) layouts.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = self.reader.lookup(ip).ok()?;
        let code: Option<String> = found
            .decode_path(&[PathElement::Key("country"), PathElement::Key("iso_code")])
            .ok()
            .flatten()
            .or_else(|| {
                found
                    .decode_path(&[PathElement::Key("country_code")])
                    .ok()
                    .flatten()
            });
        code.filter(|c| c.len() == 2)
            .map(|c| c.to_ascii_uppercase())
    }
}
