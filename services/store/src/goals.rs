//! A site's goals: the custom events and pages its owner counts as conversions. `event:goal`
//! breakdowns list these and only these, and `conversion_rate` is computed for them.

use crate::error::StoreError;
use crate::postgres::Pool;

/// Longest event name or page pattern a goal takes (the collector's own limits are shorter).
pub const MAX_GOAL_VALUE: usize = 1000;
/// Most goals a site has: every goal query reads them all and matches each against the rows,
/// and the dashboard lists them; a script adding goals in a loop stops here.
pub const MAX_GOALS_PER_SITE: i64 = 100;

/// What [`add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Added,
    /// The site has this goal already.
    Existing,
    /// The site has [`MAX_GOALS_PER_SITE`] goals: nothing was added.
    Full,
    NoSuchSite,
}

/// What completes a goal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Goal {
    /// A custom event by its name (`Signup`, `Outbound Link: Click`).
    Event(String),
    /// A page view of a path or a `*` pattern (`/pricing`, `/blog/*`).
    Page(String),
}

impl Goal {
    /// The goal as Plausible names it: the event's name, or `Visit <pattern>`.
    pub fn display_name(&self) -> String {
        match self {
            Goal::Event(name) => name.clone(),
            Goal::Page(pattern) => format!("Visit {pattern}"),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Goal::Event(_) => "event",
            Goal::Page(_) => "page",
        }
    }

    fn value(&self) -> &str {
        match self {
            Goal::Event(v) | Goal::Page(v) => v,
        }
    }

    /// Checks the value a command line or form gave: a page pattern starts with `/`; neither is
    /// blank, and both keep the envelope's text rules ([`beacon_schemas::text`]) within
    /// [`MAX_GOAL_VALUE`] bytes.
    pub fn validate(&self) -> Result<(), String> {
        let (field, value) = match self {
            Goal::Event(v) => ("event", v),
            Goal::Page(v) => ("page", v),
        };
        if value.trim().is_empty() {
            return Err(format!("{field}: must not be empty"));
        }
        // The rules every stored text keeps (no control character, bounded).
        beacon_schemas::text::check_text(value, MAX_GOAL_VALUE)
            .map_err(|problem| format!("{field}: {problem}"))?;
        if matches!(self, Goal::Page(_)) && !value.starts_with('/') {
            return Err(format!(
                "{field}: a path starts with `/` (e.g. /pricing or /blog/*)"
            ));
        }
        Ok(())
    }
}

/// Adds a goal to the site `domain`, unless the site has it already or has
/// [`MAX_GOALS_PER_SITE`] goals (counted under a lock on the site's row).
pub async fn add(pool: &Pool, domain: &str, goal: &Goal) -> Result<Added, StoreError> {
    goal.validate().map_err(StoreError::Invalid)?;
    let mut client = pool.get().await?;
    let client = client.transaction().await?;
    // The site's row locked: two adds at once cannot both take the last place.
    let Some(site) = client
        .query_opt(
            "SELECT id FROM sites WHERE domain = $1 FOR UPDATE",
            &[&domain],
        )
        .await?
    else {
        return Ok(Added::NoSuchSite);
    };
    let site_id: i64 = site.get(0);
    let inserted = client
        .execute(
            "INSERT INTO goals (site_id, kind, value)
             SELECT $1, $2, $3
             WHERE (SELECT count(*) FROM goals WHERE site_id = $1) < $4
             ON CONFLICT (site_id, kind, value) DO NOTHING",
            &[&site_id, &goal.kind(), &goal.value(), &MAX_GOALS_PER_SITE],
        )
        .await?;
    if inserted == 1 {
        client.commit().await?;
        return Ok(Added::Added);
    }
    let existing = client
        .query_opt(
            "SELECT 1 FROM goals WHERE site_id = $1 AND kind = $2 AND value = $3",
            &[&site_id, &goal.kind(), &goal.value()],
        )
        .await?;
    Ok(if existing.is_some() {
        Added::Existing
    } else {
        Added::Full
    })
}

/// The site's goals, events first, each kind by value.
pub async fn list(
    client: &impl tokio_postgres::GenericClient,
    domain: &str,
) -> Result<Vec<Goal>, StoreError> {
    let rows = client
        .query(
            "SELECT g.kind, g.value FROM goals g JOIN sites s ON s.id = g.site_id
             WHERE s.domain = $1 ORDER BY g.kind, g.value",
            &[&domain],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let value: String = row.get(1);
            match row.get::<_, &str>(0) {
                "event" => Some(Goal::Event(value)),
                "page" => Some(Goal::Page(value)),
                _ => None,
            }
        })
        .collect())
}

/// Deletes a goal of the site `domain`; whether it existed. The statistics stay: a goal is a
/// view of the rollups, not a counter of its own.
pub async fn delete(pool: &Pool, domain: &str, goal: &Goal) -> Result<bool, StoreError> {
    let deleted = pool
        .get()
        .await?
        .execute(
            "DELETE FROM goals g USING sites s
             WHERE s.id = g.site_id AND s.domain = $1 AND g.kind = $2 AND g.value = $3",
            &[&domain, &goal.kind(), &goal.value()],
        )
        .await?;
    Ok(deleted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_goals_are_named_as_plausible_names_them() {
        assert_eq!(Goal::Page("/blog/*".into()).display_name(), "Visit /blog/*");
        assert_eq!(Goal::Event("Signup".into()).display_name(), "Signup");
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        assert!(
            Goal::Page("pricing".into())
                .validate()
                .unwrap_err()
                .starts_with("page:")
        );
        assert!(
            Goal::Event(" ".into())
                .validate()
                .unwrap_err()
                .starts_with("event:")
        );
        assert!(Goal::Event("a\0b".into()).validate().is_err());
        assert!(
            Goal::Event("x".repeat(MAX_GOAL_VALUE + 1))
                .validate()
                .is_err()
        );
        assert!(Goal::Page("/blog/*".into()).validate().is_ok());
    }
}
