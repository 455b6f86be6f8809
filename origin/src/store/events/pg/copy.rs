//! `COPY … FROM STDIN (FORMAT binary)` rows for the event tables: the
//! writer's first, plain attempt at a group streams each batch straight
//! into its table. `COPY` stores rows with PostgreSQL's multi-insert path
//! (one heap WAL record per page instead of one per row) and skips the
//! arrays and `UNNEST` of an `INSERT … SELECT`; like a plain `INSERT` it
//! fails on an id already stored, after which the group is written again
//! with `INSERT … ON CONFLICT DO NOTHING` (module `pg`).
//!
//! The binary format: a fixed header, then per row its number of fields
//! and each field as a big-endian `i32` length (−1 for NULL) followed by
//! the value's binary form (`int8` and `float8` big-endian, `text` its
//! UTF-8 bytes), then a trailer of −1 as an `i16`.

use super::{Exposure, MetricEvent};

/// `COPY` of an exposure batch: the columns [`exposure_rows`] writes.
pub(super) const COPY_EXPOSURES: &str = "COPY exposures (env_id, id, flag_key, variant, user_key, \
     time_ms, snapshot_version, rule_id, reason, country, device_type, received_ms) \
     FROM STDIN (FORMAT binary)";

/// `COPY` of a metric event batch: the columns [`metric_rows`] writes.
pub(super) const COPY_METRICS: &str = "COPY metric_events (env_id, id, name, user_key, value, \
     time_ms, received_ms, properties) FROM STDIN (FORMAT binary)";

/// A binary `COPY` stream being written.
struct Copy {
    buf: Vec<u8>,
}

impl Copy {
    /// The header, with room for `rows` rows of about `row` bytes.
    fn new(rows: usize, row: usize) -> Self {
        let mut buf = Vec::with_capacity(19 + rows * row + 2);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        Copy { buf }
    }

    fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn int8(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn opt_int8(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int8(v),
            None => self.null(),
        }
    }

    fn opt_float8(&mut self, v: Option<f64>) {
        match v {
            Some(v) => {
                self.buf.extend_from_slice(&8i32.to_be_bytes());
                self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
            }
            None => self.null(),
        }
    }

    /// A `text` field. Event strings are bounded far below 2 GiB by the
    /// request size limit; a longer one would not fit a field at all.
    fn text(&mut self, s: &str) {
        let len = i32::try_from(s.len()).expect("event text under 2 GiB");
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

/// The binary `COPY` data of `rows` for [`COPY_EXPOSURES`].
pub(super) fn exposure_rows(rows: &[Exposure]) -> Vec<u8> {
    let mut c = Copy::new(rows.len(), 200);
    for e in rows {
        c.row(12);
        c.int8(e.env_id);
        c.text(&e.id);
        c.text(&e.flag_key);
        c.text(&e.variant);
        c.text(&e.user_key);
        c.int8(e.time_ms);
        c.opt_int8(e.snapshot_version);
        c.opt_text(e.rule_id.as_deref());
        c.opt_text(e.reason.as_deref());
        c.opt_text(e.country.as_deref());
        c.opt_text(e.device_type.as_deref());
        c.int8(e.received_ms);
    }
    c.finish()
}

/// The binary `COPY` data of `rows` for [`COPY_METRICS`].
pub(super) fn metric_rows(rows: &[MetricEvent]) -> Vec<u8> {
    let mut c = Copy::new(rows.len(), 140);
    for e in rows {
        c.row(8);
        c.int8(e.env_id);
        c.text(&e.id);
        c.text(&e.name);
        c.text(&e.user_key);
        c.opt_float8(e.value);
        c.int8(e.time_ms);
        c.int8(e.received_ms);
        c.opt_text(e.properties.as_deref());
    }
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_its_field_count_then_length_prefixed_fields() {
        let e = MetricEvent {
            env_id: 1,
            id: "i".into(),
            name: "n".into(),
            user_key: "u".into(),
            value: None,
            time_ms: 2,
            received_ms: 3,
            properties: Some("{}".into()),
        };
        let data = metric_rows(&[e]);
        let mut want = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&[0, 8]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0, 0, 0, 1, b'i', 0, 0, 0, 1, b'n', 0, 0, 0, 1, b'u']);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 3]);
        want.extend_from_slice(&[0, 0, 0, 2, b'{', b'}']);
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(data, want);
    }
}
