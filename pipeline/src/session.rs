//! Visits (sessions): a visitor's events whose gaps are all under 30 minutes.
//!
//! The rule is a property of the set of events, not of their arrival order: sort a visitor's
//! events by time and cut wherever two neighbours are 30 minutes or more apart. A late event that
//! falls inside a visit joins it (possibly moving its entry page or start); one that closes the gap
//! between two stored visits merges them into one. So the stored sessions after any batch split
//! and any delivery order are the same (tested below), and the aggregator only ever turns a few
//! stored sessions plus new events into a few new sessions: a [`Transition`].
//!
//! A visit across midnight keeps going: the collector sends yesterday's visitor id with each event
//! (`previous_visitor_id`), which links today's id to yesterday's sessions.
//!
//! Engagement pings extend a visit's duration but are not page views, custom events or interactions;
//! a session made only of pings is kept (a page view may yet join it) but is not a visit.

use std::collections::{BTreeMap, BTreeSet};

use beacon_schemas::Event;
use serde::{Deserialize, Serialize};

/// A gap this long or longer between two events of a visitor starts a new visit.
pub const SESSION_GAP_MS: i64 = 30 * 60 * 1000;

/// A visit's properties, taken from its first event: where it came from and on what.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct VisitAttrs {
    pub source: String,
    pub referrer: String,
    pub utm_medium: String,
    pub utm_source: String,
    pub utm_campaign: String,
    pub utm_content: String,
    pub utm_term: String,
    pub country: String,
    pub browser: String,
    pub browser_version: String,
    pub os: String,
    pub os_version: String,
    pub device: String,
}

impl VisitAttrs {
    pub fn of(event: &Event) -> Self {
        let e = &event.enrichment;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            source: text(&e.source),
            referrer: text(&event.referrer),
            utm_medium: text(&e.utm_medium),
            utm_source: text(&e.utm_source),
            utm_campaign: text(&e.utm_campaign),
            utm_content: text(&e.utm_content),
            utm_term: text(&e.utm_term),
            country: text(&e.country),
            browser: text(&e.browser),
            browser_version: text(&e.browser_version),
            os: text(&e.os),
            os_version: text(&e.os_version),
            device: text(&e.device),
        }
    }

    /// `(property, value)` pairs under Plausible's property names.
    pub fn properties(&self) -> [(&'static str, &str); 13] {
        [
            ("visit:source", &self.source),
            ("visit:referrer", &self.referrer),
            ("visit:utm_medium", &self.utm_medium),
            ("visit:utm_source", &self.utm_source),
            ("visit:utm_campaign", &self.utm_campaign),
            ("visit:utm_content", &self.utm_content),
            ("visit:utm_term", &self.utm_term),
            ("visit:country", &self.country),
            ("visit:browser", &self.browser),
            ("visit:browser_version", &self.browser_version),
            ("visit:os", &self.os),
            ("visit:os_version", &self.os_version),
            ("visit:device", &self.device),
        ]
    }
}

/// A value with the event it came from, so merges can keep the earliest or latest.
///
/// Events are ordered by [`EventRank`]: time, then (for events of the same millisecond, common in
/// imported history with second resolution) the event that brings a source first, then the event
/// id. The entry page, the exit page and the visit's attributes all follow this one order, so a
/// visit never takes its entry page from one event and its source from another, whatever order the
/// events arrive in (live, replay or import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped<T> {
    pub at_ms: i64,
    pub value: T,
    /// Breaks ties of `at_ms` ([`EventRank::tie`]); 0 in sessions stored before it existed.
    #[serde(default)]
    pub tie: u64,
}

impl<T: Ord> Ord for Stamped<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_ms, self.tie, &self.value).cmp(&(other.at_ms, other.tie, &other.value))
    }
}

impl<T: Ord> PartialOrd for Stamped<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Where an event stands among the events of its millisecond.
pub struct EventRank;

impl EventRank {
    /// An event with a source (referrer or UTM tags) ranks before one without; then the event
    /// id's random (or, for imports, hashed) low bits decide.
    pub fn tie(event: &Event) -> u64 {
        let sourced = event
            .enrichment
            .source
            .as_deref()
            .is_some_and(|s| !s.is_empty());
        let low = event.id.as_uuid().as_u64_pair().1 >> 1;
        (u64::from(!sourced) << 63) | low
    }
}

/// One stored visit (or a ping-only session that is not a visit yet). Stored as positional
/// MessagePack (see `beacon_store::sessions`): a new field goes last, with `#[serde(default)]`, so
/// that a newer Beacon reads an older one's sessions; fields are never removed or reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub site: String,
    /// The visitor id of the session's first event.
    pub visitor_id: u64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub pageviews: i64,
    /// Custom events (not page views, not engagement pings).
    pub events: i64,
    /// Page views and interactive custom events; a visit with at most one is a bounce.
    pub interactions: i64,
    /// The first page view's path.
    pub entry: Option<Stamped<String>>,
    /// The last page view's path.
    pub exit: Option<Stamped<String>>,
    /// Attributes of the first counted event (of the first ping while there is none).
    /// `at_ms` is offset by [`PING_RANK`] for pings so that any counted event wins.
    pub attrs: Stamped<VisitAttrs>,
    /// Whether the session's contribution is in the visit rollups. Sessions are closed after a
    /// quiet period; an event that joins a closed session reopens it (see `rollup.rs`). Stored
    /// in a column of its own.
    #[serde(skip)]
    pub closed: bool,
}

/// Added to a ping's time when ranking attribute sources: any counted event ranks first.
const PING_RANK: i64 = i64::MAX / 2;

impl Session {
    pub fn of_event(event: &Event) -> Self {
        let pageview = event.is_pageview();
        let ping = event.is_engagement();
        let custom = !pageview && !ping;
        let at = event.timestamp_ms;
        let tie = EventRank::tie(event);
        let page = || {
            pageview.then(|| Stamped {
                at_ms: at,
                value: event.pathname.clone(),
                tie,
            })
        };
        Self {
            site: event.site.clone(),
            visitor_id: event.visitor_id,
            start_ms: at,
            end_ms: at,
            pageviews: i64::from(pageview),
            events: i64::from(custom),
            interactions: i64::from(pageview || (custom && event.interactive)),
            entry: page(),
            exit: page(),
            attrs: Stamped {
                at_ms: if ping {
                    at.saturating_add(PING_RANK)
                } else {
                    at
                },
                value: VisitAttrs::of(event),
                tie,
            },
            closed: false,
        }
    }

    /// Whether this session is a visit: it has a page view or a custom event.
    pub fn is_visit(&self) -> bool {
        self.pageviews + self.events > 0
    }

    pub fn is_bounce(&self) -> bool {
        self.interactions <= 1
    }

    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }

    pub fn entry_page(&self) -> &str {
        self.entry.as_ref().map_or("", |s| s.value.as_str())
    }

    pub fn exit_page(&self) -> &str {
        self.exit.as_ref().map_or("", |s| s.value.as_str())
    }

    /// Folds `other` (same visitor, within the gap) into `self`.
    pub fn absorb(&mut self, other: &Session) {
        if (other.start_ms, other.visitor_id) < (self.start_ms, self.visitor_id) {
            self.visitor_id = other.visitor_id;
        }
        self.start_ms = self.start_ms.min(other.start_ms);
        self.end_ms = self.end_ms.max(other.end_ms);
        self.pageviews += other.pageviews;
        self.events += other.events;
        self.interactions += other.interactions;
        self.entry = min_option(self.entry.take(), other.entry.clone());
        self.exit = max_option(self.exit.take(), other.exit.clone());
        if other.attrs < self.attrs {
            self.attrs = other.attrs.clone();
        }
        // What comes out of a merge has changed: it is open until quiet again.
        self.closed = false;
    }
}

fn min_option<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn max_option<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// What a batch does to the stored sessions: these go, these come.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Transition {
    pub removed: Vec<Session>,
    pub added: Vec<Session>,
    /// For each new event (by index into the batch), the session it now belongs to (index into
    /// `added`).
    pub event_session: BTreeMap<usize, usize>,
}

/// The visitor ids whose stored sessions a batch can touch, per site: each event's id and the
/// previous day's id it carries.
pub fn visitor_ids_of(events: &[Event]) -> BTreeMap<&str, BTreeSet<u64>> {
    let mut ids: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for e in events {
        let set = ids.entry(e.site.as_str()).or_default();
        set.insert(e.visitor_id);
        set.extend(e.previous_visitor_id);
    }
    ids
}

/// Turns the stored sessions of the batch's visitors plus the batch's new events into the sessions
/// to delete and insert. `stored` may hold sessions the events do not touch; they are left alone.
pub fn plan<'a>(stored: impl IntoIterator<Item = &'a Session>, events: &[Event]) -> Transition {
    // Group ids that belong to one person: an event links its id to its previous-day id.
    let mut groups = UnionFind::default();
    for e in events {
        groups.add((e.site.as_str(), e.visitor_id));
        if let Some(previous) = e.previous_visitor_id {
            groups.union((e.site.as_str(), e.visitor_id), (e.site.as_str(), previous));
        }
    }
    enum Item<'a> {
        Stored(&'a Session),
        New(usize, Box<Session>),
    }
    let mut per_group: BTreeMap<usize, Vec<Item>> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        let group = groups.find((e.site.as_str(), e.visitor_id));
        per_group
            .entry(group)
            .or_default()
            .push(Item::New(i, Box::new(Session::of_event(e))));
    }
    for s in stored {
        if let Some(group) = groups.lookup((s.site.as_str(), s.visitor_id)) {
            per_group.entry(group).or_default().push(Item::Stored(s));
        }
    }

    let mut transition = Transition::default();
    for (_, mut items) in per_group {
        let session_of = |item: &Item| -> (i64, i64) {
            let s = match item {
                Item::Stored(s) => *s,
                Item::New(_, s) => s,
            };
            (s.start_ms, s.end_ms)
        };
        items.sort_by_key(|item| session_of(item));
        let mut cluster: Vec<Item> = Vec::new();
        let mut cluster_end = i64::MIN;
        let flush = |cluster: &mut Vec<Item>, transition: &mut Transition| {
            if !cluster.iter().any(|item| matches!(item, Item::New(..))) {
                cluster.clear();
                return;
            }
            let mut merged: Option<Session> = None;
            let slot = transition.added.len();
            for item in cluster.drain(..) {
                let s = match item {
                    Item::Stored(s) => {
                        transition.removed.push(s.clone());
                        s.clone()
                    }
                    Item::New(i, s) => {
                        transition.event_session.insert(i, slot);
                        *s
                    }
                };
                match merged.as_mut() {
                    Some(m) => m.absorb(&s),
                    None => merged = Some(s),
                }
            }
            transition.added.extend(merged.map(|mut s| {
                s.closed = false;
                s
            }));
        };
        for item in items {
            let (start, end) = session_of(&item);
            if !cluster.is_empty() && start.saturating_sub(cluster_end) >= SESSION_GAP_MS {
                flush(&mut cluster, &mut transition);
                cluster_end = i64::MIN;
            }
            cluster_end = cluster_end.max(end);
            cluster.push(item);
        }
        flush(&mut cluster, &mut transition);
    }
    transition
}

/// Groups of (site, visitor id) that are one person.
#[derive(Default)]
struct UnionFind<'a> {
    index: BTreeMap<(&'a str, u64), usize>,
    parent: Vec<usize>,
}

impl<'a> UnionFind<'a> {
    fn add(&mut self, key: (&'a str, u64)) -> usize {
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = self.parent.len();
        self.parent.push(i);
        self.index.insert(key, i);
        i
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: (&'a str, u64), b: (&'a str, u64)) {
        let (a, b) = (self.add(a), self.add(b));
        let (a, b) = (self.root(a), self.root(b));
        self.parent[a.max(b)] = a.min(b);
    }

    fn find(&mut self, key: (&'a str, u64)) -> usize {
        let i = self.add(key);
        self.root(i)
    }

    fn lookup(&mut self, key: (&'a str, u64)) -> Option<usize> {
        let i = *self.index.get(&key)?;
        Some(self.root(i))
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
