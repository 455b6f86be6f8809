//! The durable path of exposures and events: Cloudflare Queues.
//!
//! With a queue producer bound as [`BINDING`], the worker does not keep
//! exposures in isolate memory (lost when the isolate is evicted): each
//! request's exposures, or metric events, become queue messages
//! ([`exposure_messages`], [`event_messages`]) sent before the response's
//! `waitUntil` ends. The worker's own queue consumer receives them in batches,
//! merges them into as few [`IngestBatch`] POSTs to `INGEST_URL` as the
//! origin accepts ([`plan`]), and acknowledges a message only when the
//! origin answered 2xx for the POST holding it; every other message is
//! retried by the queue (`max_retries`, then the dead-letter queue).
//!
//! Redelivery never stores anything twice: an exposure's id is derived by
//! the origin from its fields (time of acceptance at the edge included), an
//! event carries the client's id, and the origin inserts with `ON CONFLICT DO
//! NOTHING` and merges its per-user rollup idempotently.
//!
//! A message body is the JSON text of one [`IngestBatch`] (text, so no
//! structured-clone or number conversion between JavaScript and Rust),
//! read back with [`IngestBatch::read_json`] (not its serde `Deserialize`,
//! which would bring the float formatter into the bundle).
//!
//! ```
//! use bunting_edge_worker::queue::{event_messages, plan};
//! let body = br#"{"events": [{"name": "purchase", "targetingKey": "u1", "id": "o-1"}]}"#;
//! let events = bunting_edge_worker::events::parse_events(
//!     body, &bunting_edge_worker::exposure::KeyHasher::new("s"), 0).unwrap();
//! let messages = event_messages("prod", &events);
//! let p = plan(&messages);
//! assert_eq!(p.posts.len(), 1);
//! assert_eq!(p.posts[0].members, [0]);
//! assert!(p.unreadable.is_empty());
//! ```

use std::borrow::Cow;

use bunting_wire::{EventRecord, ExposureRecord, IngestBatch};

/// The queue producer binding's name (`[[queues.producers]]` in
/// `wrangler.toml`); unbound: the direct forwarder ([`crate::ingest`]).
pub const BINDING: &str = "INGEST_QUEUE";
/// Most records in one message (Queues allows 128 KB per message; an
/// exposure or event is well under 500 bytes of JSON).
pub const MAX_RECORDS_PER_MESSAGE: usize = 100;
/// Most records in one POST to the origin (it accepts 10,000).
pub const MAX_RECORDS_PER_POST: usize = 2_000;

/// The messages carrying `exposures`, at most
/// [`MAX_RECORDS_PER_MESSAGE`] each.
pub fn exposure_messages(exposures: &[ExposureRecord]) -> Vec<String> {
    exposures
        .chunks(MAX_RECORDS_PER_MESSAGE)
        .map(|c| to_json(&IngestBatch::exposures(c)))
        .collect()
}

/// The messages carrying `environment`'s metric `events`.
pub fn event_messages(environment: &str, events: &[EventRecord]) -> Vec<String> {
    events
        .chunks(MAX_RECORDS_PER_MESSAGE)
        .map(|c| to_json(&IngestBatch::events(environment, c)))
        .collect()
}

fn to_json(batch: &IngestBatch<'_>) -> String {
    serde_json::to_string(batch).expect("the batch types always serialize")
}

/// One POST to the origin and the messages (indices into the consumer's
/// batch) it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// The [`IngestBatch`] JSON body.
    pub body: String,
    /// The messages acknowledged when the origin commits it.
    pub members: Vec<usize>,
    /// Records (exposures or events) in it.
    pub records: usize,
}

/// What the consumer does with one delivered batch of messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The POSTs, exposures first then events by environment.
    pub posts: Vec<Post>,
    /// Messages that are no [`IngestBatch`] of this worker (acknowledged and
    /// counted: retrying cannot make them readable).
    pub unreadable: Vec<usize>,
}

/// Groups a delivered batch of message bodies into POSTs: exposures
/// together, events per environment, each POST at most
/// [`MAX_RECORDS_PER_POST`] records (a message is never split, so a POST
/// commits or fails whole messages).
pub fn plan(bodies: &[String]) -> Plan {
    let mut exposures = Grouping::default();
    // By environment, sorted as a `BTreeMap` would keep them (a vector
    // searched by halves: the map's code would be the worker's second
    // `BTreeMap` instantiation, next to serde_json's `Map`).
    let mut events: Vec<(String, Grouping<EventRecord>)> = Vec::new();
    let mut unreadable = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let Some(batch) = IngestBatch::read_json(body.as_bytes()) else {
            unreadable.push(i);
            continue;
        };
        match (
            batch.kind.as_ref(),
            batch.exposures,
            batch.environment,
            batch.events,
        ) {
            (bunting_wire::batch::EXPOSURES, Some(list), None, None) => {
                exposures.add(i, list.into_owned());
            }
            (bunting_wire::batch::EVENTS, None, Some(env), Some(list)) => {
                let at = match events.binary_search_by(|(e, _)| e.as_str().cmp(&*env)) {
                    Ok(at) => at,
                    Err(at) => {
                        events.insert(at, (env.into_owned(), Grouping::default()));
                        at
                    }
                };
                if let Some((_, grouping)) = events.get_mut(at) {
                    grouping.add(i, list.into_owned());
                }
            }
            _ => unreadable.push(i),
        }
    }
    let mut posts: Vec<Post> = exposures
        .finish()
        .into_iter()
        .map(|(members, list)| Post {
            records: list.len(),
            body: to_json(&IngestBatch::exposures(list)),
            members,
        })
        .collect();
    for (env, grouping) in events {
        posts.extend(grouping.finish().into_iter().map(|(members, list)| Post {
            records: list.len(),
            body: to_json(&IngestBatch::events(Cow::Borrowed(env.as_str()), list)),
            members,
        }));
    }
    Plan { posts, unreadable }
}

/// Messages packed into groups of at most [`MAX_RECORDS_PER_POST`] records.
#[derive(Debug)]
struct Grouping<T> {
    done: Vec<(Vec<usize>, Vec<T>)>,
    current: (Vec<usize>, Vec<T>),
}

impl<T> Default for Grouping<T> {
    fn default() -> Self {
        Grouping {
            done: Vec::new(),
            current: (Vec::new(), Vec::new()),
        }
    }
}

impl<T> Grouping<T> {
    fn add(&mut self, message: usize, records: Vec<T>) {
        if !self.current.1.is_empty() && self.current.1.len() + records.len() > MAX_RECORDS_PER_POST
        {
            self.done.push(std::mem::take(&mut self.current));
        }
        self.current.0.push(message);
        self.current.1.extend(records);
    }

    fn finish(mut self) -> Vec<(Vec<usize>, Vec<T>)> {
        if !self.current.0.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn exposure(i: usize) -> ExposureRecord {
        ExposureRecord {
            flag: "f".into(),
            variant: "a".into(),
            rule_id: None,
            bucketing_key_hash: format!("{i:032x}"),
            environment: "p".into(),
            snapshot_version: Some(1),
            time: i as i64,
            country: None,
            device_type: None,
            reason: None,
            id: None,
        }
    }

    fn event(i: usize) -> EventRecord {
        EventRecord {
            name: "purchase".into(),
            targeting_key_hash: format!("{i:032x}"),
            value: Some(1.5),
            timestamp: 1_764_000_000_000,
            received_at: Some(1_764_000_000_001),
            id: Some(format!("o-{i}")),
            properties: None,
        }
    }

    #[test]
    fn messages_are_bounded_and_round_trip() {
        let list: Vec<_> = (0..250).map(exposure).collect();
        let messages = exposure_messages(&list);
        assert_eq!(messages.len(), 3);
        assert!(messages.iter().all(|m| m.len() < 128 * 1024));
        let p = plan(&messages);
        assert_eq!(p.posts.len(), 1);
        assert_eq!(p.posts[0].members, [0, 1, 2]);
        let back: IngestBatch<'static> = serde_json::from_str(&p.posts[0].body).unwrap();
        assert_eq!(back.exposures.unwrap().into_owned(), list);
        assert!(exposure_messages(&[]).is_empty());
    }

    #[test]
    fn events_are_grouped_per_environment_and_exposures_apart() {
        let mut bodies = event_messages("b", &[event(0)]);
        bodies.extend(exposure_messages(&[exposure(1)]));
        bodies.extend(event_messages("a", &[event(2), event(3)]));
        bodies.extend(event_messages("b", &[event(4)]));
        let p = plan(&bodies);
        let shape: Vec<(Vec<usize>, usize, Value)> = p
            .posts
            .iter()
            .map(|post| {
                let v: Value = serde_json::from_str(&post.body).unwrap();
                (post.members.clone(), post.records, v["environment"].clone())
            })
            .collect();
        assert_eq!(
            shape,
            [
                (vec![1], 1, Value::Null),
                (vec![2], 2, "a".into()),
                (vec![0, 3], 2, "b".into()),
            ]
        );
    }

    #[test]
    fn posts_never_exceed_the_limit_nor_split_a_message() {
        let list: Vec<_> = (0..MAX_RECORDS_PER_MESSAGE).map(exposure).collect();
        let bodies: Vec<String> = (0..45).flat_map(|_| exposure_messages(&list)).collect();
        let p = plan(&bodies);
        assert!(p.posts.iter().all(|x| x.records <= MAX_RECORDS_PER_POST));
        assert_eq!(p.posts.iter().map(|x| x.records).sum::<usize>(), 4500);
        let mut members: Vec<usize> = p.posts.iter().flat_map(|x| x.members.clone()).collect();
        members.sort();
        assert_eq!(members, (0..45).collect::<Vec<_>>());
        assert_eq!(p.posts.len(), 3);
    }

    #[test]
    fn unreadable_messages_are_set_apart() {
        let bodies = vec![
            "not json".to_string(),
            r#"{"kind": "exposures"}"#.to_string(),
            r#"{"kind": "events", "events": []}"#.to_string(),
            r#"{"kind": "other", "exposures": []}"#.to_string(),
            exposure_messages(&[exposure(0)]).remove(0),
        ];
        let p = plan(&bodies);
        assert_eq!(p.unreadable, [0, 1, 2, 3]);
        assert_eq!(p.posts.len(), 1);
        assert_eq!(p.posts[0].members, [4]);
    }
}
