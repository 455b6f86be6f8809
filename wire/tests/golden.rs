//! The golden batches of `tests/data/` (see its README) parse into the wire
//! types and serialize back to the same JSON: no field is lost or added.

use bunting_wire::batch::{EVENTS, EXPOSURES};
use bunting_wire::{IngestBatch, check_event_name};
use serde_json::Value;

const EXPOSURES_JSON: &str = include_str!("data/exposures.json");
const EVENTS_JSON: &str = include_str!("data/events.json");

fn round_trip(text: &str) -> IngestBatch<'static> {
    let batch: IngestBatch = serde_json::from_str(text).unwrap();
    let file: Value = serde_json::from_str(text).unwrap();
    assert_eq!(serde_json::to_value(&batch).unwrap(), file);
    // The edge worker's reader (of its queue messages) reads them the same.
    assert_eq!(
        IngestBatch::read_json(text.as_bytes()).as_ref(),
        Some(&batch)
    );
    batch
}

#[test]
fn the_exposure_batch_round_trips() {
    let batch = round_trip(EXPOSURES_JSON);
    assert_eq!(batch.kind, EXPOSURES);
    assert_eq!((batch.environment, batch.events), (None, None));
    let list = batch.exposures.unwrap();
    assert_eq!(list.len(), 2);
    let by_rule = &list[0];
    assert_eq!(by_rule.rule_id.as_deref(), Some("eu-ramp"));
    assert_eq!(by_rule.country.as_deref(), Some("DE"));
    assert_eq!(by_rule.device_type.as_deref(), Some("mobile"));
    let fallthrough = &list[1];
    assert_eq!(
        (
            &fallthrough.rule_id,
            &fallthrough.country,
            &fallthrough.device_type
        ),
        (&None, &None, &None)
    );
    for e in list.iter() {
        assert_eq!(e.flag, "checkout");
        assert_eq!(e.environment, "acme/web/production");
        assert_eq!((e.snapshot_version, e.time), (Some(7), 1_764_000_000_000));
        assert_eq!(e.bucketing_key_hash.len(), 32);
        assert_eq!((&e.reason, &e.id), (&None, &None)); // the edge sends neither
    }
}

#[test]
fn the_event_batch_round_trips() {
    let batch = round_trip(EVENTS_JSON);
    assert_eq!(batch.kind, EVENTS);
    assert_eq!(batch.environment.as_deref(), Some("acme/web/production"));
    assert_eq!(batch.exposures, None);
    let list = batch.events.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].value, Some(12.5));
    assert_eq!(list[1].value, None);
    for e in list.iter() {
        assert_eq!(check_event_name(&e.name), Ok(()));
        assert_eq!(e.received_at, Some(1_764_000_000_123));
        assert!(e.id.is_some());
        assert_eq!(e.properties, None); // the edge sends none
        assert_eq!(e.targeting_key_hash.len(), 32);
    }
}

#[test]
fn the_same_user_has_the_same_hash_in_both() {
    let exposures = round_trip(EXPOSURES_JSON).exposures.unwrap();
    let events = round_trip(EVENTS_JSON).events.unwrap();
    // user-1, then user-2, in both files.
    for (x, e) in exposures.iter().zip(events.iter()) {
        assert_eq!(x.bucketing_key_hash, e.targeting_key_hash);
    }
}
