//! Plausible's CSV export: a zip of daily aggregate tables (`imported_visitors_20240101_20241231.csv`,
//! `imported_sources_…`, …), the format Plausible imports and exports. Aggregates are not events:
//! an import keeps them as an "imported" layer beside the rollups (`imported_daily`), which the API
//! adds only when asked (`with_imported=true`); an export writes the site's day rows in this shape.
//!
//! Each table is a day and one or more dimensions with its counters. Beacon keeps every dimension
//! as the property its own rollups use (`imported_sources.utm_medium` → `visit:utm_medium`, …), so
//! a breakdown reads imported rows of the same property it reads native rows of.

pub mod export;
pub mod import;

/// One table of the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// The file name's table part.
    pub name: &'static str,
    /// The header, in Plausible's export order.
    pub columns: &'static [&'static str],
    /// The dimension columns and the Beacon property each fills; none: the site's totals.
    pub dimensions: &'static [(&'static str, &'static str)],
    /// The column that counts the table's visits (`entrances`, `exits`), if it has visit metrics.
    pub visits: Option<&'static str>,
}

/// The property imported site totals are kept under (`imported_visitors`).
pub const TOTALS: &str = "";

pub const TABLES: [Table; 10] = [
    Table {
        name: "imported_visitors",
        columns: &[
            "date",
            "visitors",
            "pageviews",
            "bounces",
            "visits",
            "visit_duration",
        ],
        dimensions: &[],
        visits: Some("visits"),
    },
    Table {
        name: "imported_sources",
        columns: &[
            "date",
            "source",
            "referrer",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_content",
            "utm_term",
            "pageviews",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
        ],
        dimensions: &[
            ("source", "visit:source"),
            ("referrer", "visit:referrer"),
            ("utm_source", "visit:utm_source"),
            ("utm_medium", "visit:utm_medium"),
            ("utm_campaign", "visit:utm_campaign"),
            ("utm_content", "visit:utm_content"),
            ("utm_term", "visit:utm_term"),
        ],
        visits: Some("visits"),
    },
    Table {
        name: "imported_pages",
        columns: &[
            "date",
            "hostname",
            "page",
            "visits",
            "visitors",
            "pageviews",
            "total_scroll_depth",
            "total_scroll_depth_visits",
            "total_time_on_page",
            "total_time_on_page_visits",
        ],
        dimensions: &[("page", "event:page"), ("hostname", "event:hostname")],
        visits: None,
    },
    Table {
        name: "imported_entry_pages",
        columns: &[
            "date",
            "entry_page",
            "visitors",
            "entrances",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        dimensions: &[("entry_page", "visit:entry_page")],
        visits: Some("entrances"),
    },
    Table {
        name: "imported_exit_pages",
        columns: &[
            "date",
            "exit_page",
            "visitors",
            "visit_duration",
            "exits",
            "bounces",
            "pageviews",
        ],
        dimensions: &[("exit_page", "visit:exit_page")],
        visits: Some("exits"),
    },
    Table {
        name: "imported_custom_events",
        columns: &["date", "name", "link_url", "path", "visitors", "events"],
        dimensions: &[
            ("name", "event:name"),
            ("link_url", "event:props:url"),
            ("path", "event:props:path"),
        ],
        visits: None,
    },
    Table {
        name: "imported_locations",
        columns: &[
            "date",
            "country",
            "region",
            "city",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        dimensions: &[("country", "visit:country")],
        visits: Some("visits"),
    },
    Table {
        name: "imported_devices",
        columns: &[
            "date",
            "device",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        dimensions: &[("device", "visit:device")],
        visits: Some("visits"),
    },
    Table {
        name: "imported_browsers",
        columns: &[
            "date",
            "browser",
            "browser_version",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        dimensions: &[
            ("browser", "visit:browser"),
            ("browser_version", "visit:browser_version"),
        ],
        visits: Some("visits"),
    },
    Table {
        name: "imported_operating_systems",
        columns: &[
            "date",
            "operating_system",
            "operating_system_version",
            "visitors",
            "visits",
            "visit_duration",
            "bounces",
            "pageviews",
        ],
        dimensions: &[
            ("operating_system", "visit:os"),
            ("operating_system_version", "visit:os_version"),
        ],
        visits: Some("visits"),
    },
];

impl Table {
    /// The properties this table's rows are kept under.
    pub fn properties(&self) -> Vec<&'static str> {
        if self.dimensions.is_empty() {
            vec![TOTALS]
        } else {
            self.dimensions.iter().map(|(_, p)| *p).collect()
        }
    }

    /// The table a file is named for (`imported_sources_20240101_20241231.csv`, or without the
    /// `imported_` prefix, as Plausible's importer takes), with the file's first and last day.
    pub fn of_file_name(
        file_name: &str,
    ) -> Option<(&'static Table, chrono::NaiveDate, chrono::NaiveDate)> {
        let stem = file_name.strip_suffix(".csv")?;
        let stem = stem.strip_prefix("imported_").unwrap_or(stem);
        let (rest, last) = stem.rsplit_once('_')?;
        let (table, first) = rest.rsplit_once('_')?;
        let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y%m%d").ok();
        let (first, last) = (day(first)?, day(last)?);
        let table = TABLES
            .iter()
            .find(|t| t.name.strip_prefix("imported_") == Some(table))?;
        Some((table, first, last))
    }

    /// The file name of this table over `[first, last]`.
    pub fn file_name(&self, first: chrono::NaiveDate, last: chrono::NaiveDate) -> String {
        format!(
            "{}_{}_{}.csv",
            self.name,
            first.format("%Y%m%d"),
            last.format("%Y%m%d")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_name_their_table_and_days() {
        let (table, first, last) =
            Table::of_file_name("imported_operating_systems_20240101_20241231.csv").expect("ok");
        assert_eq!(table.name, "imported_operating_systems");
        assert_eq!(first.to_string(), "2024-01-01");
        assert_eq!(last.to_string(), "2024-12-31");
        let (table, ..) = Table::of_file_name("devices_00010101_20250101.csv").expect("ok");
        assert_eq!(table.name, "imported_devices");
        assert_eq!(
            table.file_name(first, last),
            "imported_devices_20240101_20241231.csv"
        );
        for bad in [
            "imported_visitors.csv",
            "imported_bogus_20240101_20241231.csv",
            "imported_visitors_2024_20241231.csv",
            "../imported_visitors_20240101_20241231.csv.exe",
        ] {
            assert!(Table::of_file_name(bad).is_none(), "{bad}");
        }
        let properties: Vec<&str> = TABLES.iter().flat_map(|t| t.properties()).collect();
        let distinct: std::collections::BTreeSet<&str> = properties.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            properties.len(),
            "a property fed by two tables"
        );
        let readable: std::collections::BTreeSet<&str> = beacon_store::imported_daily::PROPERTIES
            .into_iter()
            .collect();
        assert_eq!(distinct, readable, "what imports fill is what queries read");
    }
}
