//! Golden fixtures: bytes written by earlier builds must keep decoding to the same event.
//!
//! Regenerate only on purpose, with `BEACON_WRITE_FIXTURES=1 cargo test -p beacon-schemas`, and
//! never for a version already released: old bytes are a promise.

use std::collections::BTreeMap;
use std::path::PathBuf;

use beacon_schemas::{CodecError, Enrichment, Event, EventId, SCHEMA_VERSION, decode, encode};
use proptest::prelude::*;
use serde::Serialize;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn canonical_v1() -> Event {
    Event {
        v: 1,
        id: "0192f3a4-5b6c-7d8e-9f01-23456789abcd"
            .parse()
            .expect("valid uuid"),
        site: "example.com".into(),
        name: "pageview".into(),
        timestamp_ms: 1_730_000_000_123,
        received_at_ms: 1_730_000_000_456,
        url: "https://example.com/pricing?utm_source=news".into(),
        hostname: "example.com".into(),
        pathname: "/pricing".into(),
        referrer: Some("https://www.google.com/".into()),
        props: BTreeMap::from([("plan".to_string(), "pro".to_string())]),
        visitor_id: 0xDEAD_BEEF_0123_4567,
        interactive: true,
        enrichment: Enrichment {
            source: Some("Google".into()),
            ..Enrichment::default()
        },
        previous_visitor_id: None,
        scroll_depth: None,
        engagement_ms: None,
        revenue: None,
    }
}

fn read_or_write(name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = fixture(name);
    if std::env::var_os("BEACON_WRITE_FIXTURES").is_some() {
        std::fs::write(&path, bytes).expect("write fixture");
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn v1_fixture_decodes_to_the_canonical_event() {
    let bytes = read_or_write(
        "event_v1.msgpack",
        &encode(&canonical_v1()).expect("encode"),
    );
    assert_eq!(decode(&bytes).expect("decode v1 fixture"), canonical_v1());
}

#[test]
fn encoding_the_canonical_event_reproduces_the_fixture_bytes() {
    let bytes = std::fs::read(fixture("event_v1.msgpack")).expect("fixture present");
    assert_eq!(
        encode(&canonical_v1()).expect("encode"),
        bytes,
        "wire format changed"
    );
}

/// An event as a future writer might send it: an extra field this build does not know.
#[derive(Serialize)]
struct FutureEvent {
    #[serde(flatten)]
    event: Event,
    experiment_bucket: u32,
}

#[test]
fn unknown_fields_are_skipped() {
    let future = FutureEvent {
        event: canonical_v1(),
        experiment_bucket: 7,
    };
    let written = rmp_serde::to_vec_named(&future).expect("encode future");
    let bytes = read_or_write("event_v1_unknown_field.msgpack", &written);
    assert_eq!(decode(&bytes).expect("decode"), canonical_v1());
}

/// The minimal v1 writer: no optional fields at all.
#[derive(Serialize)]
struct MinimalV1 {
    v: u16,
    id: EventId,
    site: &'static str,
    name: &'static str,
    timestamp_ms: i64,
    received_at_ms: i64,
    url: &'static str,
    hostname: &'static str,
    pathname: &'static str,
    visitor_id: u64,
}

#[test]
fn missing_optional_fields_take_their_defaults() {
    let minimal = MinimalV1 {
        v: 1,
        id: canonical_v1().id,
        site: "example.com",
        name: "pageview",
        timestamp_ms: 1,
        received_at_ms: 1,
        url: "https://example.com/",
        hostname: "example.com",
        pathname: "/",
        visitor_id: 1,
    };
    let bytes = read_or_write(
        "event_v1_minimal.msgpack",
        &rmp_serde::to_vec_named(&minimal).expect("encode"),
    );
    let event = decode(&bytes).expect("decode minimal");
    assert!(event.interactive, "interactive defaults to true");
    assert!(event.props.is_empty());
    assert_eq!(event.referrer, None);
    assert_eq!(event.enrichment, Enrichment::default());
}

#[test]
fn newer_versions_are_refused_not_misread() {
    let mut event = canonical_v1();
    event.v = SCHEMA_VERSION + 1;
    let bytes = encode(&event).expect("encode");
    assert!(matches!(
        decode(&bytes),
        Err(CodecError::UnsupportedVersion { .. })
    ));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    for bytes in [
        &b""[..],
        b"\xc1",
        b"\x93\x01\x02\x03",
        b"not msgpack at all",
    ] {
        assert!(decode(bytes).is_err());
    }
}

proptest! {
    #[test]
    fn round_trip(site in "[a-z]{1,20}\\.[a-z]{2,5}", name in "[a-z_]{1,30}", path in "/[a-z/]{0,40}",
                  ts in 1i64..4_000_000_000_000, visitor in any::<u64>(), interactive in any::<bool>(),
                  props in proptest::collection::btree_map("[a-z]{1,8}", ".{0,20}", 0..5)) {
        let event = Event {
            v: SCHEMA_VERSION,
            id: EventId::new_at(ts),
            url: format!("https://{site}{path}"),
            hostname: site.clone(),
            site,
            name,
            timestamp_ms: ts,
            received_at_ms: ts,
            pathname: path,
            referrer: None,
            props,
            visitor_id: visitor,
            interactive,
            enrichment: Enrichment::default(),
            previous_visitor_id: None,
            scroll_depth: None,
            engagement_ms: None,
            revenue: None,
        };
        prop_assert_eq!(decode(&encode(&event).expect("encode")).expect("decode"), event);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes);
    }
}

#[test]
fn event_id_carries_its_time() {
    let id = EventId::new_at(1_730_000_000_123);
    let (secs, nanos) = id
        .as_uuid()
        .get_timestamp()
        .expect("v7 has a timestamp")
        .to_unix();
    assert_eq!(
        secs * 1000 + u64::from(nanos / 1_000_000),
        1_730_000_000_123
    );
}

#[test]
fn engagement_and_revenue_fields_round_trip() {
    let event = Event {
        name: "engagement".into(),
        previous_visitor_id: Some(42),
        scroll_depth: Some(87),
        engagement_ms: Some(12_345),
        revenue: Some(beacon_schemas::Revenue {
            amount: "19.99".into(),
            currency: "EUR".into(),
        }),
        ..canonical_v1()
    };
    let bytes = read_or_write(
        "event_v1_engagement.msgpack",
        &encode(&event).expect("encode"),
    );
    let decoded = decode(&bytes).expect("decode");
    assert_eq!(decoded, event);
    assert!(decoded.is_engagement() && !decoded.is_pageview());
}
