//! Plausible v1 property names and `filters` syntax (`==`, `!=`, `|`, `;`, `*` on pages), mapped
//! onto the rollup properties Beacon records.

use crate::error::ApiError;
use crate::report::Filter;
use crate::rollup_query::{ValueMatch, glob_to_like};

/// Properties Beacon records, under Plausible's names.
const VISIT_PROPERTIES: &[&str] = &[
    "visit:source",
    "visit:referrer",
    "visit:utm_medium",
    "visit:utm_source",
    "visit:utm_campaign",
    "visit:utm_content",
    "visit:utm_term",
    "visit:country",
    "visit:browser",
    "visit:browser_version",
    "visit:os",
    "visit:os_version",
    "visit:device",
    "visit:entry_page",
    "visit:exit_page",
];
const EVENT_PROPERTIES: &[&str] = &["event:page", "event:name", "event:hostname"];

/// The goals property: resolved against the site's configured goals (`goals.rs`), not a rollup
/// property of its own.
pub const GOAL: &str = "event:goal";

/// The rollup property of a Plausible property name, or [`GOAL`].
pub fn parse_property(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name == GOAL || VISIT_PROPERTIES.contains(&name) || EVENT_PROPERTIES.contains(&name) {
        return Ok(name.into());
    }
    if let Some(key) = name.strip_prefix("event:props:")
        && !key.is_empty()
    {
        return Ok(name.into());
    }
    Err(ApiError::bad_request(format!(
        "Invalid property '{name}'. Beacon records: {}, {}, event:goal, event:props:<name>",
        VISIT_PROPERTIES.join(", "),
        EVENT_PROPERTIES.join(", ")
    )))
}

/// The key a breakdown row uses for its value (`visit:source` → `source`).
pub fn result_key(requested: &str) -> &str {
    let requested = requested.trim();
    requested
        .strip_prefix("event:props:")
        .or_else(|| requested.strip_prefix("visit:"))
        .or_else(|| requested.strip_prefix("event:"))
        .unwrap_or(requested)
}

/// How an empty stored value is shown.
pub fn display_value<'a>(property: &str, value: &'a str) -> &'a str {
    match (property, value) {
        ("visit:source", "") => "Direct / None",
        (_, "") => "(none)",
        (_, v) => v,
    }
}

fn stored_value(value: &str) -> String {
    match value {
        "Direct / None" | "(none)" => String::new(),
        v => v.to_string(),
    }
}

/// Splits on `|` not preceded by a backslash, unescaping `\|`.
fn split_alternatives(values: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = values.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push('|');
                }
            }
            '|' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// Parses `filters`. The rollups answer one property at a time; more is refused with a 400.
pub fn parse_filters(filters: Option<&str>) -> Result<Option<Filter>, ApiError> {
    let Some(filters) = filters.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(None);
    };
    let parts: Vec<&str> = filters
        .split(';')
        .filter(|p| !p.trim().is_empty())
        .collect();
    if parts.len() > 1 {
        return Err(ApiError::bad_request(
            "Beacon answers filters on one property at a time from its rollups; \
             combining several (`;`) is not supported",
        ));
    }
    let Some(part) = parts.first() else {
        return Ok(None);
    };
    let (name, negated, values) = if let Some((name, values)) = part.split_once("!=") {
        (name, true, values)
    } else if let Some((name, values)) = part.split_once("==") {
        (name, false, values)
    } else {
        return Err(ApiError::bad_request(format!(
            "Invalid filter '{part}': expected property==value or property!=value"
        )));
    };
    let property = parse_property(name)?;
    if property == GOAL {
        // Goal names are matched whole (`Visit /blog/*` is a name, not a pattern).
        let names = split_alternatives(values.trim());
        let values = if negated {
            ValueMatch::NotIn(names)
        } else {
            ValueMatch::In(names)
        };
        return Ok(Some(Filter { property, values }));
    }
    let alternatives: Vec<String> = split_alternatives(values.trim())
        .iter()
        .map(|v| stored_value(v))
        .collect();
    let wildcard = alternatives.iter().any(|v| v.contains('*'));
    if wildcard && !property.ends_with("page") {
        return Err(ApiError::bad_request(format!(
            "Wildcards are supported on pages only, not on {property}"
        )));
    }
    if negated && property.starts_with("event:props:") {
        return Err(ApiError::bad_request(
            "`!=` on custom properties is not supported by the rollups",
        ));
    }
    let values = match (wildcard, negated) {
        (false, false) => ValueMatch::In(alternatives),
        (false, true) => ValueMatch::NotIn(alternatives),
        (true, negated) => {
            let patterns = alternatives.iter().map(|v| glob_to_like(v)).collect();
            if negated {
                ValueMatch::NotLike(patterns)
            } else {
                ValueMatch::Like(patterns)
            }
        }
    };
    Ok(Some(Filter { property, values }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Filter {
        parse_filters(Some(s)).expect("valid").expect("a filter")
    }

    #[test]
    fn parses_plausible_filters() {
        let f = parsed("visit:browser==Firefox|Chrome");
        assert_eq!(f.property, "visit:browser");
        assert_eq!(
            f.values,
            ValueMatch::In(vec!["Firefox".into(), "Chrome".into()])
        );
        assert_eq!(
            parsed("visit:source!=Direct / None").values,
            ValueMatch::NotIn(vec![String::new()])
        );
        assert_eq!(
            parsed("event:page==/blog/**").values,
            ValueMatch::Like(vec!["/blog/%".into()])
        );
        assert_eq!(parsed("event:goal==Signup").property, GOAL);
        assert_eq!(
            parsed("event:goal==Visit /blog/*|Signup").values,
            ValueMatch::In(vec!["Visit /blog/*".into(), "Signup".into()])
        );
        assert_eq!(
            parsed(r"event:props:q==a\|b").values,
            ValueMatch::In(vec!["a|b".into()])
        );
    }

    #[test]
    fn refuses_what_the_rollups_cannot_answer() {
        for bad in [
            "visit:browser==Firefox;visit:country==FR",
            "visit:city==Paris",
            "visit:browser==Fire*",
            "event:props:plan!=pro",
            "visit:browser~Firefox",
        ] {
            assert!(parse_filters(Some(bad)).is_err(), "{bad}");
        }
        assert!(parse_filters(Some("")).expect("empty is fine").is_none());
    }

    #[test]
    fn result_keys_drop_the_prefix() {
        assert_eq!(result_key("visit:source"), "source");
        assert_eq!(result_key("event:props:plan"), "plan");
        assert_eq!(result_key("event:goal"), "goal");
    }
}
