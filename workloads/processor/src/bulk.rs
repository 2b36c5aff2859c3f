//! `_bulk` request bodies and the classification of `_bulk` responses (pure).

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// One `index` operation in a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Index of the input record (in the processing batch) the document came from.
    pub record: usize,
    /// Byte range of the action and source lines in the body.
    pub range: Range<usize>,
}

/// A `_bulk` body (NDJSON of `index` actions with explicit ids) and what each item is.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    body: Vec<u8>,
    items: Vec<Item>,
}

#[derive(Serialize)]
struct Action<'a, I: Serialize + ?Sized> {
    index: Target<'a, I>,
}

#[derive(Serialize)]
struct Target<'a, I: Serialize + ?Sized> {
    #[serde(rename = "_index")]
    index: &'a str,
    #[serde(rename = "_id")]
    id: &'a I,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// An empty batch with room for `bytes` of body.
    pub fn with_capacity(bytes: usize) -> Batch {
        Batch { body: Vec::with_capacity(bytes), items: Vec::new() }
    }

    /// Appends an `index` operation of `doc` into `index` under `id` (anything that
    /// serialises as a JSON string).
    pub fn push<I: Serialize + ?Sized, T: Serialize>(
        &mut self,
        index: &str,
        id: &I,
        record: usize,
        doc: &T,
    ) -> Result<(), serde_json::Error> {
        let start = self.body.len();
        let written =
            serde_json::to_writer(&mut self.body, &Action { index: Target { index, id } })
                .and_then(|()| {
                    self.body.push(b'\n');
                    serde_json::to_writer(&mut self.body, doc)
                });
        if let Err(e) = written {
            self.body.truncate(start);
            return Err(e);
        }
        self.body.push(b'\n');
        self.items.push(Item { record, range: start..self.body.len() });
        Ok(())
    }

    /// Appends an operation written by `write`: the action line, a newline, then the document
    /// (the closing newline is added here). For writers that produce the JSON themselves.
    pub fn push_with(&mut self, record: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.body.len();
        write(&mut self.body);
        self.body.push(b'\n');
        self.items.push(Item { record, range: start..self.body.len() });
    }

    /// The NDJSON body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The items, in body order.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is no operation.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A batch of the operations at the given positions (to retry some items).
    pub fn subset(&self, positions: &[usize]) -> Batch {
        let mut out =
            Batch::with_capacity(positions.iter().map(|&p| self.items[p].range.len()).sum());
        for &p in positions {
            let item = &self.items[p];
            let start = out.body.len();
            out.body.extend_from_slice(&self.body[item.range.clone()]);
            out.items.push(Item { record: item.record, range: start..out.body.len() });
        }
        out
    }

    /// Empties the batch, keeping its memory.
    pub fn clear(&mut self) {
        self.body.clear();
        self.items.clear();
    }
}

/// What happened to one operation of a `_bulk` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored.
    Ok,
    /// Failed for a reason that may pass (429, 5xx, timeouts): send again later.
    Retry {
        /// HTTP status of the item.
        status: u16,
        /// Error text.
        message: String,
    },
    /// Refused for good (mapping conflict, bad document): goes to the dead-letter topic.
    Rejected {
        /// HTTP status of the item.
        status: u16,
        /// Elasticsearch error type, e.g. `mapper_parsing_exception`.
        kind: String,
        /// Error text.
        message: String,
    },
}

/// Whether an item (or request) status is worth retrying. 401 and 403 are: a wrong or
/// rotated credential, or a missing privilege, is the cluster's configuration, not the
/// record's fault; the processor waits (not ready, retrying with backoff) until it is fixed
/// instead of crashing or dead-lettering good records.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 401 | 403 | 408 | 429) || status >= 500
}

/// A `_bulk` response that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    /// Not the JSON of a bulk response.
    #[error("bulk response is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A different number of items than operations sent.
    #[error("bulk response has {got} items for {sent} operations")]
    Count {
        /// Items in the response.
        got: usize,
        /// Operations sent.
        sent: usize,
    },
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    errors: bool,
    items: Vec<std::collections::HashMap<String, ItemResult>>,
}

#[derive(Deserialize)]
struct ItemResult {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Classifies each item of a `_bulk` response (in request order).
pub fn classify_response(body: &[u8], sent: usize) -> Result<Vec<ItemOutcome>, ResponseError> {
    let response: Response = serde_json::from_slice(body)?;
    if response.items.len() != sent {
        return Err(ResponseError::Count { got: response.items.len(), sent });
    }
    if !response.errors {
        // Still check every status: `errors` is a summary and must not be trusted blindly.
        if response.items.iter().all(|m| m.values().all(|r| (200..300).contains(&r.status))) {
            return Ok(vec![ItemOutcome::Ok; sent]);
        }
    }
    Ok(response
        .items
        .into_iter()
        .map(|m| {
            let Some(r) = m.into_values().next() else {
                return ItemOutcome::Retry { status: 0, message: "empty bulk item".into() };
            };
            if (200..300).contains(&r.status) {
                return ItemOutcome::Ok;
            }
            let kind = r
                .error
                .as_ref()
                .and_then(|e| e.get("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("unknown")
                .to_string();
            let message = match &r.error {
                Some(e) => e
                    .get("reason")
                    .and_then(|x| x.as_str())
                    .map_or_else(|| e.to_string(), str::to_string),
                None => format!("status {}", r.status),
            };
            if is_retryable_status(r.status) || kind == "es_rejected_execution_exception" {
                ItemOutcome::Retry { status: r.status, message: format!("{kind}: {message}") }
            } else {
                ItemOutcome::Rejected { status: r.status, kind, message }
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_is_ndjson_with_explicit_ids_and_subsets_resend_items() {
        let mut b = Batch::new();
        b.push("ix", "a\"1", 0, &json!({"x": 1})).expect("push");
        b.push("ix", "b:2", 1, &json!({"y": "z"})).expect("push");
        let text = String::from_utf8(b.body().to_vec()).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], r#"{"index":{"_index":"ix","_id":"a\"1"}}"#);
        assert_eq!(lines[3], r#"{"y":"z"}"#);
        let sub = b.subset(&[1]);
        assert_eq!(sub.len(), 1);
        assert_eq!(sub.items()[0].record, 1);
        assert_eq!(
            String::from_utf8(sub.body().to_vec()).expect("utf8"),
            lines[2..].join("\n") + "\n"
        );
    }

    #[test]
    fn classifies_a_real_osmem_response() {
        // Captured from the osmem stand-in: one created, one strict-mapping refusal, one bad value.
        let body = br#"{"errors":true,"items":[{"index":{"_id":"x1","_index":"p","_version":1,"result":"created","status":201}},{"index":{"_id":"x2","_index":"p","error":{"reason":"mapping set to strict, dynamic introduction of [zzz] within [_doc] is not allowed","type":"strict_dynamic_mapping_exception"},"status":400}},{"index":{"_id":"x3","_index":"p","error":{"reason":"too many requests","type":"es_rejected_execution_exception"},"status":429}}],"took":1}"#;
        let out = classify_response(body, 3).expect("parse");
        assert_eq!(out[0], ItemOutcome::Ok);
        assert!(
            matches!(&out[1], ItemOutcome::Rejected { status: 400, kind, .. } if kind == "strict_dynamic_mapping_exception")
        );
        assert!(matches!(&out[2], ItemOutcome::Retry { status: 429, .. }));
        assert!(matches!(
            classify_response(body, 2),
            Err(ResponseError::Count { got: 3, sent: 2 })
        ));
        assert!(classify_response(b"<html>", 1).is_err());
    }

    #[test]
    fn errors_false_is_checked_item_by_item() {
        let ok = br#"{"errors":false,"items":[{"index":{"status":200}},{"index":{"status":201}}]}"#;
        assert_eq!(classify_response(ok, 2).expect("parse"), vec![ItemOutcome::Ok; 2]);
        let lying = br#"{"errors":false,"items":[{"index":{"status":503}}]}"#;
        assert!(matches!(
            classify_response(lying, 1).expect("parse")[0],
            ItemOutcome::Retry { .. }
        ));
    }
}
