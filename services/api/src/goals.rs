//! Goals in the Stats API: an `event:goal` filter or breakdown resolved against the site's
//! configured goals (an event goal reads the `event:name` rows, a page goal the `event:page`
//! rows of its pattern), and `conversion_rate`: a goal's visitors over the visitors of the same
//! period and filters, as Plausible defines it.

use beacon_store::goals::Goal;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::filters::GOAL;
use crate::report::{Filter, Group, Metric};
use crate::rollup_query::{ValueMatch, glob_to_like};

/// The rollup filter that selects a goal's completions.
pub fn filter_of(goal: &Goal) -> Filter {
    match goal {
        Goal::Event(name) => Filter {
            property: "event:name".into(),
            values: ValueMatch::In(vec![name.clone()]),
        },
        Goal::Page(pattern) if pattern.contains('*') => Filter {
            property: "event:page".into(),
            values: ValueMatch::Like(vec![glob_to_like(pattern)]),
        },
        Goal::Page(path) => Filter {
            property: "event:page".into(),
            values: ValueMatch::In(vec![path.clone()]),
        },
    }
}

/// The configured goals an `event:goal==a|b` filter names, each checked to exist.
pub fn named(goals: &[Goal], filter: &Filter) -> Result<Vec<Goal>, ApiError> {
    let ValueMatch::In(names) = &filter.values else {
        return Err(ApiError::bad_request(
            "`event:goal!=…` is not supported: filter on the goals to include (`event:goal==a|b`)",
        ));
    };
    names
        .iter()
        .map(|name| {
            goals
                .iter()
                .find(|goal| goal.display_name() == *name)
                .cloned()
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "filters: the site has no goal named `{name}` (`beacon goal list` lists \
                         them; a page goal is named `Visit <path>`)"
                    ))
                })
        })
        .collect()
}

/// The rollup filter that selects the completions of any of `chosen` (the goals an
/// `event:goal` filter [`named`]): they must be all events or all pages of one kind of pattern,
/// since one rollup property answers a filter.
pub fn rollup_filter(chosen: &[Goal]) -> Result<Filter, ApiError> {
    let mut filters = chosen.iter().map(filter_of);
    let Some(mut merged) = filters.next() else {
        return Err(ApiError::bad_request(
            "filters: `event:goal==` names no goal",
        ));
    };
    for next in filters {
        let same_property = next.property == merged.property;
        match (&mut merged.values, next.values) {
            (ValueMatch::In(all), ValueMatch::In(more)) if same_property => all.extend(more),
            (ValueMatch::Like(all), ValueMatch::Like(more)) if same_property => all.extend(more),
            _ => {
                return Err(ApiError::bad_request(
                    "filters: goals of different kinds (events and pages, or exact paths and \
                     patterns) cannot be combined with `|`; ask for each apart",
                ));
            }
        }
    }
    Ok(merged)
}

/// Whether a filter is on goals.
pub fn is_goal_filter(filter: Option<&Filter>) -> bool {
    filter.is_some_and(|f| f.property == GOAL)
}

/// `conversion_rate`: the percentage of `total`'s visitors found in `converted`, two decimals.
pub fn conversion_rate(converted: &Group, total: &Group) -> Value {
    let total = total.visitors();
    if total <= 0 {
        return json!(0.0);
    }
    let rate = converted.visitors() as f64 * 100.0 / total as f64;
    json!((rate * 100.0).round() / 100.0)
}

/// `metric` of `group`: `conversion_rate` as a share of `base`'s visitors, the others its own.
pub fn metric_value(metric: Metric, group: &Group, base: &Group) -> Value {
    match metric {
        Metric::ConversionRate => conversion_rate(group, base),
        metric => group.value(metric),
    }
}

/// The group of one goal's completions: a page goal's conversions are page views.
pub fn completions(goal: &Goal, group: Group) -> Group {
    match goal {
        Goal::Event(_) => group,
        Goal::Page(_) => group.page_views_only(),
    }
}

/// The refusal for `conversion_rate` where no goal defines it.
pub fn needs_goal() -> ApiError {
    ApiError::bad_request(
        "metrics: `conversion_rate` needs a goal: filter by `event:goal==NAME` or break down by \
         `event:goal`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal_filter(names: &[&str]) -> Filter {
        Filter {
            property: GOAL.into(),
            values: ValueMatch::In(names.iter().map(|n| n.to_string()).collect()),
        }
    }

    fn goals() -> Vec<Goal> {
        vec![
            Goal::Event("Signup".into()),
            Goal::Event("Purchase".into()),
            Goal::Page("/blog/*".into()),
            Goal::Page("/pricing".into()),
        ]
    }

    fn rollup_filter_of(names: &[&str]) -> Result<Filter, ApiError> {
        rollup_filter(&named(&goals(), &goal_filter(names))?)
    }

    #[test]
    fn event_goals_read_event_names_and_page_goals_their_pages() {
        let f = rollup_filter_of(&["Signup", "Purchase"]).expect("events");
        assert_eq!(f.property, "event:name");
        assert_eq!(
            f.values,
            ValueMatch::In(vec!["Signup".into(), "Purchase".into()])
        );
        let f = rollup_filter_of(&["Visit /blog/*"]).expect("pattern");
        assert_eq!(f.property, "event:page");
        assert_eq!(f.values, ValueMatch::Like(vec!["/blog/%".into()]));
        let f = rollup_filter_of(&["Visit /pricing"]).expect("path");
        assert_eq!(f.values, ValueMatch::In(vec!["/pricing".into()]));
    }

    #[test]
    fn unknown_mixed_and_negated_goal_filters_are_refused_by_name() {
        let unknown = rollup_filter_of(&["pageview"]).unwrap_err();
        assert!(format!("{unknown:?}").contains("`pageview`"), "{unknown:?}");
        assert!(rollup_filter_of(&["Signup", "Visit /pricing"]).is_err());
        assert!(rollup_filter_of(&["Visit /blog/*", "Visit /pricing"]).is_err());
        let negated = Filter {
            property: GOAL.into(),
            values: ValueMatch::NotIn(vec!["Signup".into()]),
        };
        assert!(named(&goals(), &negated).is_err());
    }
}
