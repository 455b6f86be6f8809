//! The exposure and event queues and the background flusher that sends them
//! to the origin's ingest endpoint. Nothing here blocks an evaluation: a
//! full queue drops the newest record and counts it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use bunting_wire::{EventRecord, ExposureRecord, IngestBatch};

use crate::status::Counters;

/// At most this many records per request.
pub const MAX_BATCH: usize = 500;

/// A bounded FIFO: pushing into a full queue drops the new record.
#[derive(Debug)]
pub(crate) struct Queue<T> {
    items: Mutex<VecDeque<T>>,
    bound: usize,
}

impl<T> Queue<T> {
    pub(crate) fn new(bound: usize) -> Queue<T> {
        Queue {
            items: Mutex::new(VecDeque::new()),
            bound,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<T>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `item`; false (dropped) when full. Returns the new length.
    pub(crate) fn push(&self, item: T) -> Result<usize, T> {
        let mut q = self.lock();
        if q.len() >= self.bound {
            return Err(item);
        }
        q.push_back(item);
        Ok(q.len())
    }

    /// Takes up to `n` of the oldest records.
    fn take(&self, n: usize) -> Vec<T> {
        let mut q = self.lock();
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    /// Puts a batch that failed back in front (it is the oldest); records
    /// beyond the bound are dropped from the back (the newest). Returns how
    /// many were dropped.
    fn put_back(&self, batch: Vec<T>) -> usize {
        let mut q = self.lock();
        for item in batch.into_iter().rev() {
            q.push_front(item);
        }
        let over = q.len().saturating_sub(self.bound);
        q.truncate(self.bound);
        over
    }
}

/// Where and how to send.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    pub(crate) http: reqwest::Client,
    pub(crate) url: String,
    pub(crate) token: String,
}

/// How one request went.
enum Sent {
    Ok,
    /// 429, 5xx or a network error: keep for a retry.
    Retry(String),
    /// Another 4xx: the batch is dropped.
    Rejected(String),
}

impl Sender {
    async fn post(&self, body: &IngestBatch<'_>) -> Sent {
        let resp = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await;
        match resp {
            Err(e) => Sent::Retry(format!("POST {}: {e}", self.url)),
            Ok(r) if r.status().is_success() => Sent::Ok,
            Ok(r) => {
                let status = r.status();
                let text: String = r
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                let msg = format!("POST {}: HTTP {status}: {text}", self.url);
                if status.as_u16() == 429 || status.is_server_error() {
                    Sent::Retry(msg)
                } else {
                    Sent::Rejected(msg)
                }
            }
        }
    }
}

/// Both queues, the counters and the last error.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) exposures: Queue<ExposureRecord>,
    pub(crate) events: Queue<(String, EventRecord)>,
    pub(crate) counters: Counters,
    pub(crate) last_error: Mutex<Option<String>>,
    pub(crate) sender: Option<Sender>,
    /// Wakes the flusher early (a queue reached `flush_at`).
    pub(crate) wake: tokio::sync::Notify,
}

impl Outbox {
    fn record_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sends everything queued, batch by batch. Stops at the first failure
    /// that calls for a retry; returns whether everything went.
    pub(crate) async fn flush(&self) -> bool {
        let Some(sender) = &self.sender else {
            return true;
        };
        loop {
            let batch = self.exposures.take(MAX_BATCH);
            if batch.is_empty() {
                break;
            }
            let n = batch.len() as u64;
            match sender.post(&IngestBatch::exposures(&batch[..])).await {
                Sent::Ok => Counters::add(&self.counters.exposures_sent, n),
                Sent::Retry(e) => {
                    Counters::add(&self.counters.failed_requests, 1);
                    self.record_error(e);
                    let dropped = self.exposures.put_back(batch) as u64;
                    Counters::add(&self.counters.exposures_dropped, dropped);
                    return false;
                }
                Sent::Rejected(e) => {
                    Counters::add(&self.counters.failed_requests, 1);
                    Counters::add(&self.counters.rejected_batches, 1);
                    Counters::add(&self.counters.exposures_dropped, n);
                    self.record_error(e);
                }
            }
        }
        loop {
            let mut batch = self.events.take(MAX_BATCH);
            let Some((env, _)) = batch.first() else {
                break;
            };
            // One environment per request: put back events of another one.
            let env = env.clone();
            let split = batch
                .iter()
                .position(|(e, _)| *e != env)
                .unwrap_or(batch.len());
            let rest = batch.split_off(split);
            self.events.put_back(rest);
            let records: Vec<EventRecord> = batch.iter().map(|(_, r)| r.clone()).collect();
            let n = records.len() as u64;
            match sender
                .post(&IngestBatch::events(env.as_str(), &records[..]))
                .await
            {
                Sent::Ok => Counters::add(&self.counters.events_sent, n),
                Sent::Retry(e) => {
                    Counters::add(&self.counters.failed_requests, 1);
                    self.record_error(e);
                    let dropped = self.events.put_back(batch) as u64;
                    Counters::add(&self.counters.events_dropped, dropped);
                    return false;
                }
                Sent::Rejected(e) => {
                    Counters::add(&self.counters.failed_requests, 1);
                    Counters::add(&self.counters.rejected_batches, 1);
                    Counters::add(&self.counters.events_dropped, n);
                    self.record_error(e);
                }
            }
        }
        true
    }
}

/// The flusher: every `interval`, or when woken, sends what is queued; after
/// a failure waits twice as long (up to a minute) before trying again.
pub(crate) async fn run_flusher(
    outbox: std::sync::Arc<Outbox>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut wait = interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = outbox.wake.notified() => {}
            _ = stop.changed() => return,
        }
        wait = if outbox.flush().await {
            interval
        } else {
            (wait * 2).min(Duration::from_secs(60))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_new_items_and_put_back_keeps_the_oldest() {
        let q = Queue::new(3);
        assert_eq!(q.push(1), Ok(1));
        assert_eq!(q.push(2), Ok(2));
        assert_eq!(q.push(3), Ok(3));
        assert_eq!(q.push(4), Err(4));
        let batch = q.take(2);
        assert_eq!(batch, [1, 2]);
        assert_eq!(q.push(5), Ok(2));
        assert_eq!(q.push(6), Ok(3));
        assert_eq!(q.put_back(batch), 2);
        assert_eq!(q.take(10), [1, 2, 3]);
    }
}
