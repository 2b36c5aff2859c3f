//! Inputs and outputs: sessions from a JSON-lines file or MongoDB; results to MongoDB
//! (`similar_users`), Elasticsearch (`shopstream-similar-users`) and JSON-lines files.
//!
//! A stored result document, the same in every sink:
//!
//! ```json
//! { "_id": "<userId>", "similar": [{ "userId": "<other>", "similarity": 0.71 }],
//!   "computedAt": "2026-11-27T08:00:00Z",
//!   "params": { "threshold": 0.5, "numPerm": 128, "seed": 1, "topK": 10,
//!               "fpWeight": 0.2, "fnWeight": 0.8, "minSimilarity": 0.4558,
//!               "bands": 30, "rows": 4 } }
//! ```
//!
//! In MongoDB `computedAt` is a BSON date; in Elasticsearch the document id is the user id and
//! the body also carries `userId`, `similarCount` and `topSimilarity` for dashboards. Every run
//! upserts all of its users and then removes documents of an earlier run (`computedAt` older
//! than this run's), so the collection and index always hold exactly the latest run.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use chrono::{DateTime, SubsecRound, Utc};
use elasticsearch::http::request::JsonBody;
use elasticsearch::indices::{IndicesCreateParts, IndicesExistsParts, IndicesRefreshParts};
use elasticsearch::{BulkParts, DeleteByQueryParts, Elasticsearch};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::SimilarityError;
use crate::lsh::LshParams;
use crate::pipeline::{SimilarUser, SimilarityParams, SimilarityResult, UserSimilarity};
use crate::tokens::{Behaviour, UserTokens};
use shopstream_documents::user_sessions::UserSessionDocument;
use shopstream_schema::{Action, DeviceType, PaymentMethod, Referrer};

/// Default MongoDB collection of the results.
pub const SIMILAR_USERS_COLLECTION: &str = "similar_users";
/// Default Elasticsearch index of the results.
pub const SIMILAR_USERS_INDEX: &str = "shopstream-similar-users";
/// Documents per MongoDB `update` command and per Elasticsearch `_bulk` request.
pub const WRITE_BATCH: usize = 500;

/// The parameters stored with every result document: the run's [`SimilarityParams`] with the
/// smallest reported similarity resolved (never `None` here), and the LSH bands it used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredParams {
    /// The run's parameters (stored as top-level fields).
    #[serde(flatten)]
    pub run: SimilarityParams,
    /// LSH bands.
    pub bands: usize,
    /// Rows per band.
    pub rows: usize,
}

impl StoredParams {
    /// The stored form of a run's parameters.
    pub fn new(p: &SimilarityParams, lsh: LshParams) -> Self {
        let run = SimilarityParams { min_similarity: Some(p.min_similarity()), ..*p };
        Self { run, bands: lsh.bands, rows: lsh.rows }
    }

    /// Smallest estimated similarity the run reported.
    pub fn min_similarity(&self) -> f64 {
        self.run.min_similarity()
    }
}

/// One user's stored result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimilarUsersDoc {
    /// The user (the document id).
    #[serde(rename = "_id")]
    pub user_id: String,
    /// Most similar users first.
    pub similar: Vec<SimilarUser>,
    /// When the run computed it (millisecond precision, as MongoDB stores dates).
    pub computed_at: DateTime<Utc>,
    /// The run's parameters.
    pub params: StoredParams,
}

/// The documents of a run, in `userId` order.
pub fn documents(result: &SimilarityResult, computed_at: DateTime<Utc>) -> Vec<SimilarUsersDoc> {
    let params = StoredParams::new(&result.params, result.lsh);
    let computed_at = computed_at.trunc_subsecs(3);
    result
        .users
        .iter()
        .map(|UserSimilarity { user_id, similar }| SimilarUsersDoc {
            user_id: user_id.clone(),
            similar: similar.clone(),
            computed_at,
            params,
        })
        .collect()
}

/// What reading an input found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadStats {
    /// Records read.
    pub records: u64,
    /// Records rejected (malformed or invalid); they are logged and skipped.
    pub rejected: u64,
}

fn io_err(path: &Path, source: std::io::Error) -> SimilarityError {
    SimilarityError::Io { path: path.display().to_string(), source }
}

/// Reads sessions from a JSON-lines file (one record per line, the original format) and merges
/// them into per-user token sets. Blank lines are ignored; invalid records are logged with their
/// line number and the field at fault, counted and skipped.
pub fn read_sessions_file(path: &Path) -> Result<(UserTokens, ReadStats), SimilarityError> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut reader = BufReader::new(file);
    let mut users = UserTokens::new();
    let mut stats = ReadStats::default();
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(|e| io_err(path, e))?;
        if read == 0 {
            break;
        }
        number += 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        stats.records += 1;
        match shopstream_schema::parse_session(trimmed) {
            Ok(session) => users.add_session(&session),
            Err(e) => {
                stats.rejected += 1;
                tracing::warn!(
                    file = %path.display(), line = number, reason = e.reason(), field = e.field(),
                    error = %e, "skipping invalid session record"
                );
            }
        }
    }
    Ok((users, stats))
}

/// Writes a run's documents as JSON lines (`computedAt` as RFC 3339).
pub fn write_results_file(path: &Path, docs: &[SimilarUsersDoc]) -> Result<(), SimilarityError> {
    let file = std::fs::File::create(path).map_err(|e| io_err(path, e))?;
    let mut out = BufWriter::new(file);
    for d in docs {
        let line = serde_json::to_string(d)
            .map_err(|e| io_err(path, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        out.write_all(line.as_bytes()).map_err(|e| io_err(path, e))?;
        out.write_all(b"\n").map_err(|e| io_err(path, e))?;
    }
    out.flush().map_err(|e| io_err(path, e))
}

/// Finds one user's document in a results file written by [`write_results_file`].
pub fn find_in_results_file(
    path: &Path,
    user_id: &str,
) -> Result<Option<SimilarUsersDoc>, SimilarityError> {
    let file = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| io_err(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let d: SimilarUsersDoc =
            serde_json::from_str(&line).map_err(|e| SimilarityError::BadRecord {
                source_name: path.display().to_string(),
                record: i as u64 + 1,
                message: e.to_string(),
            })?;
        if d.user_id == user_id {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

fn to_bson_date(t: DateTime<Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}

fn stored_params_doc(p: &StoredParams) -> Document {
    let r = &p.run;
    doc! {
        "threshold": r.threshold,
        // Validated to fit: num_perm <= MAX_PERM, seed <= i64::MAX, top_k bounded by the CLI.
        "numPerm": r.num_perm as i64,
        "seed": r.seed as i64,
        "topK": r.top_k as i64,
        "fpWeight": r.fp_weight,
        "fnWeight": r.fn_weight,
        "minSimilarity": p.min_similarity(),
        "bands": p.bands as i64,
        "rows": p.rows as i64,
    }
}

/// The BSON form of a result document.
pub fn to_bson(d: &SimilarUsersDoc) -> Document {
    let similar: Vec<Bson> = d
        .similar
        .iter()
        .map(|s| Bson::Document(doc! { "userId": &s.user_id, "similarity": s.similarity }))
        .collect();
    doc! {
        "_id": &d.user_id,
        "similar": similar,
        "computedAt": to_bson_date(d.computed_at),
        "params": stored_params_doc(&d.params),
    }
}

fn bad(source_name: &str, message: impl Into<String>) -> SimilarityError {
    SimilarityError::BadRecord {
        source_name: source_name.to_string(),
        record: 0,
        message: message.into(),
    }
}

fn get_u64(d: &Document, key: &str, source: &str) -> Result<u64, SimilarityError> {
    let v = match d.get(key) {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        other => {
            return Err(bad(source, format!("params.{key} is {other:?}, expected an integer")));
        }
    };
    u64::try_from(v).map_err(|_| bad(source, format!("params.{key} is negative")))
}

/// Parses a BSON result document (the inverse of [`to_bson`]).
pub fn from_bson(d: &Document, source: &str) -> Result<SimilarUsersDoc, SimilarityError> {
    let user_id = d.get_str("_id").map_err(|e| bad(source, format!("_id: {e}")))?.to_string();
    let mut similar = Vec::new();
    for item in d.get_array("similar").map_err(|e| bad(source, format!("similar: {e}")))? {
        let Bson::Document(s) = item else {
            return Err(bad(source, "similar: an entry is not a document"));
        };
        similar.push(SimilarUser {
            user_id: s
                .get_str("userId")
                .map_err(|e| bad(source, format!("similar.userId: {e}")))?
                .to_string(),
            similarity: s
                .get_f64("similarity")
                .map_err(|e| bad(source, format!("similar.similarity: {e}")))?,
        });
    }
    let at = d.get_datetime("computedAt").map_err(|e| bad(source, format!("computedAt: {e}")))?;
    let computed_at = DateTime::<Utc>::from_timestamp_millis(at.timestamp_millis())
        .ok_or_else(|| bad(source, "computedAt is out of range"))?;
    let p = d.get_document("params").map_err(|e| bad(source, format!("params: {e}")))?;
    let f64_of = |key: &str| p.get_f64(key).map_err(|e| bad(source, format!("params.{key}: {e}")));
    let run = SimilarityParams {
        threshold: f64_of("threshold")?,
        num_perm: get_u64(p, "numPerm", source)? as usize,
        seed: get_u64(p, "seed", source)?,
        top_k: get_u64(p, "topK", source)? as usize,
        fp_weight: f64_of("fpWeight")?,
        fn_weight: f64_of("fnWeight")?,
        min_similarity: Some(f64_of("minSimilarity")?),
    };
    let params = StoredParams {
        run,
        bands: get_u64(p, "bands", source)? as usize,
        rows: get_u64(p, "rows", source)? as usize,
    };
    Ok(SimilarUsersDoc { user_id, similar, computed_at, params })
}

/// Bulk-upserts a run's documents into `collection` (one `update` command per
/// [`WRITE_BATCH`] documents, unordered, `upsert: true`, replacing by `_id`), then deletes the
/// documents of earlier runs. Returns `(upserted or replaced, deleted)`.
///
/// The plain `update` command with many statements is MongoDB's bulk write that every server
/// version accepts (the newer `bulkWrite` command needs MongoDB 8.0).
pub async fn write_mongo(
    db: &mongodb::Database,
    collection: &str,
    docs: &[SimilarUsersDoc],
) -> Result<(u64, u64), SimilarityError> {
    let mut written = 0u64;
    for chunk in docs.chunks(WRITE_BATCH) {
        let updates: Vec<Bson> = chunk
            .iter()
            .map(|d| {
                Bson::Document(doc! {
                    "q": { "_id": &d.user_id },
                    "u": to_bson(d),
                    "upsert": true,
                    "multi": false,
                })
            })
            .collect();
        let reply = db
            .run_command(doc! { "update": collection, "updates": updates, "ordered": false })
            .await?;
        if let Ok(errors) = reply.get_array("writeErrors")
            && !errors.is_empty()
        {
            return Err(SimilarityError::Mongo(mongodb::error::Error::custom(format!(
                "{} write errors in a bulk upsert to {collection}, first: {:?}",
                errors.len(),
                errors[0]
            ))));
        }
        written += chunk.len() as u64;
    }
    let mut deleted = 0;
    if let Some(first) = docs.first() {
        let coll = db.collection::<Document>(collection);
        let result = coll
            .delete_many(doc! { "computedAt": { "$lt": to_bson_date(first.computed_at) } })
            .await?;
        deleted = result.deleted_count;
    }
    Ok((written, deleted))
}

/// Reads one user's result document from MongoDB.
pub async fn read_mongo(
    db: &mongodb::Database,
    collection: &str,
    user_id: &str,
) -> Result<Option<SimilarUsersDoc>, SimilarityError> {
    let coll = db.collection::<Document>(collection);
    match coll.find_one(doc! { "_id": user_id }).await? {
        Some(d) => Ok(Some(from_bson(&d, collection)?)),
        None => Ok(None),
    }
}

/// Number of result documents in a MongoDB collection.
pub async fn count_mongo(db: &mongodb::Database, collection: &str) -> Result<u64, SimilarityError> {
    Ok(db.collection::<Document>(collection).count_documents(doc! {}).await?)
}

fn enum_value<T: Copy>(
    all: &[T],
    text: &str,
    as_str: impl Fn(T) -> &'static str,
    field: &str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|v| as_str(*v) == text)
        .ok_or_else(|| format!("{field}: unknown value {text:?}"))
}

/// Converts a `user_sessions` document (read as the sink's own
/// [`UserSessionDocument`]) into the [`Behaviour`] its tokens are made of, checking
/// what the tokens rely on (product ids `1..=10`, one time per page, known enum values). The
/// `sessionTimestamp` date is read back as the zone-less time the sink stored as UTC.
pub fn behaviour_from_document(d: &Document) -> Result<Behaviour, String> {
    let s: UserSessionDocument =
        mongodb::bson::from_document(d.clone()).map_err(|e| e.to_string())?;
    if s.user_id.trim().is_empty() {
        return Err("userId: must not be empty".into());
    }
    let start = DateTime::<Utc>::from_timestamp_millis(s.session_timestamp.timestamp_millis())
        .ok_or("sessionTimestamp: out of range")?
        .naive_utc();
    let mut pages = Vec::with_capacity(s.browsing_pattern.len());
    for (i, &id) in s.browsing_pattern.iter().enumerate() {
        match u8::try_from(id).ok().and_then(shopstream_schema::catalog::product) {
            Some(p) => pages.push(p.id),
            None => return Err(format!("browsingPattern[{i}]: {id} is not a product id")),
        }
    }
    if pages.is_empty() {
        return Err("browsingPattern: a session views at least one page".into());
    }
    if s.time_spent_on_each_page.len() != pages.len() {
        return Err(format!(
            "timeSpentonEachPage: has {} entries but browsingPattern has {}",
            s.time_spent_on_each_page.len(),
            pages.len()
        ));
    }
    let seconds = s
        .time_spent_on_each_page
        .iter()
        .map(|&t| u32::try_from(t).map_err(|_| format!("timeSpentonEachPage: {t} is out of range")))
        .collect::<Result<Vec<u32>, String>>()?;
    let exit = shopstream_schema::catalog::product_by_name(&s.exit_page)
        .ok_or_else(|| format!("exitPage: {:?} is not a product name", s.exit_page))?;
    let action = enum_value(Action::ALL, &s.actions, Action::as_str, "actions")?;
    let method = enum_value(
        PaymentMethod::ALL,
        &s.payment_method_type,
        PaymentMethod::as_str,
        "paymentMethodType",
    )?;
    Ok(Behaviour {
        user_id: s.user_id,
        start,
        pages,
        seconds,
        exit_page: Some(exit.id),
        action,
        purchase: s.purchase_made.then_some(method),
        referrer: enum_value(Referrer::ALL, &s.referrer, Referrer::as_str, "referrer")?,
        device: enum_value(DeviceType::ALL, &s.device_type, DeviceType::as_str, "deviceType")?,
    })
}

/// Reads the sessions of the MongoDB collection written by `shopstream sink` (`user_sessions`)
/// and merges them into per-user token sets. Only the token fields are fetched (a projection);
/// documents that do not convert ([`behaviour_from_document`]) are logged, counted and skipped.
pub async fn read_sessions_mongo(
    db: &mongodb::Database,
    collection: &str,
) -> Result<(UserTokens, ReadStats), SimilarityError> {
    let coll = db.collection::<Document>(collection);
    let mut cursor = coll.find(doc! {}).batch_size(5000).await?;
    let mut users = UserTokens::new();
    let mut stats = ReadStats::default();
    while let Some(d) = cursor.try_next().await? {
        stats.records += 1;
        match behaviour_from_document(&d) {
            Ok(b) => users.add_behaviour(&b),
            Err(message) => {
                stats.rejected += 1;
                tracing::warn!(collection, record = stats.records, %message, "skipping session document");
            }
        }
    }
    Ok((users, stats))
}

/// The explicit mapping of the results index.
pub fn es_mapping() -> Value {
    json!({
        "settings": { "number_of_shards": 1 },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "userId": { "type": "keyword" },
                "similar": {
                    "type": "nested",
                    "properties": {
                        "userId": { "type": "keyword" },
                        "similarity": { "type": "float" }
                    }
                },
                "similarCount": { "type": "integer" },
                "topSimilarity": { "type": "float" },
                "computedAt": { "type": "date" },
                "params": {
                    "properties": {
                        "threshold": { "type": "float" },
                        "numPerm": { "type": "integer" },
                        "seed": { "type": "long" },
                        "topK": { "type": "integer" },
                        "fpWeight": { "type": "float" },
                        "fnWeight": { "type": "float" },
                        "minSimilarity": { "type": "float" },
                        "bands": { "type": "integer" },
                        "rows": { "type": "integer" }
                    }
                }
            }
        }
    })
}

/// The Elasticsearch body of a result document (without `_id`, which is the document id).
pub fn es_source(d: &SimilarUsersDoc) -> Value {
    json!({
        "userId": d.user_id,
        "similar": d.similar,
        "similarCount": d.similar.len(),
        "topSimilarity": d.similar.first().map(|s| s.similarity),
        "computedAt": d.computed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "params": d.params,
    })
}

async fn es_check(
    response: Result<elasticsearch::http::response::Response, elasticsearch::Error>,
    what: &str,
) -> Result<Value, SimilarityError> {
    let response = response.map_err(|e| SimilarityError::Elastic(format!("{what}: {e}")))?;
    let status = response.status_code();
    let body: Value = response
        .json()
        .await
        .map_err(|e| SimilarityError::Elastic(format!("{what}: unreadable reply: {e}")))?;
    if !status.is_success() {
        return Err(SimilarityError::Elastic(format!("{what}: HTTP {status}: {body}")));
    }
    Ok(body)
}

/// Creates the results index with [`es_mapping`] unless it exists.
pub async fn ensure_es_index(client: &Elasticsearch, index: &str) -> Result<(), SimilarityError> {
    let exists = client
        .indices()
        .exists(IndicesExistsParts::Index(&[index]))
        .send()
        .await
        .map_err(|e| SimilarityError::Elastic(format!("index exists {index}: {e}")))?;
    if exists.status_code().is_success() {
        return Ok(());
    }
    let created =
        client.indices().create(IndicesCreateParts::Index(index)).body(es_mapping()).send().await;
    match es_check(created, &format!("create index {index}")).await {
        Ok(_) => Ok(()),
        // Another writer created it between our check and our create.
        Err(SimilarityError::Elastic(m)) if m.contains("resource_already_exists") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Indexes a run's documents with `_bulk` (ids = user ids, [`WRITE_BATCH`] per request), removes
/// documents of earlier runs and refreshes the index. Returns `(indexed, deleted)`.
pub async fn write_es(
    client: &Elasticsearch,
    index: &str,
    docs: &[SimilarUsersDoc],
) -> Result<(u64, u64), SimilarityError> {
    ensure_es_index(client, index).await?;
    let mut indexed = 0u64;
    for chunk in docs.chunks(WRITE_BATCH) {
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(chunk.len() * 2);
        for d in chunk {
            body.push(json!({ "index": { "_id": d.user_id } }).into());
            body.push(es_source(d).into());
        }
        let reply = es_check(
            client.bulk(BulkParts::Index(index)).body(body).send().await,
            &format!("bulk into {index}"),
        )
        .await?;
        if reply["errors"].as_bool().unwrap_or(false) {
            let first = reply["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["index"]["error"].is_object()))
                .map(|i| i["index"]["error"].to_string())
                .unwrap_or_default();
            return Err(SimilarityError::Elastic(format!("bulk into {index} had errors: {first}")));
        }
        indexed += chunk.len() as u64;
    }
    let mut deleted = 0;
    if let Some(first) = docs.first() {
        let at = first.computed_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let reply = es_check(
            client
                .delete_by_query(DeleteByQueryParts::Index(&[index]))
                .body(json!({ "query": { "range": { "computedAt": { "lt": at } } } }))
                .send()
                .await,
            &format!("delete earlier runs from {index}"),
        )
        .await?;
        deleted = reply["deleted"].as_u64().unwrap_or(0);
    }
    es_check(
        client.indices().refresh(IndicesRefreshParts::Index(&[index])).send().await,
        &format!("refresh {index}"),
    )
    .await?;
    Ok((indexed, deleted))
}

/// Reads one user's document back from the results index (`None` when absent).
pub async fn read_es(
    client: &Elasticsearch,
    index: &str,
    user_id: &str,
) -> Result<Option<Value>, SimilarityError> {
    let response = client
        .get(elasticsearch::GetParts::IndexId(index, user_id))
        .send()
        .await
        .map_err(|e| SimilarityError::Elastic(format!("get {index}/{user_id}: {e}")))?;
    if response.status_code().as_u16() == 404 {
        return Ok(None);
    }
    let body = es_check(Ok(response), &format!("get {index}/{user_id}")).await?;
    Ok(body.get("_source").cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{SimilarityParams, compute};

    fn result() -> SimilarityResult {
        let mut u = UserTokens::new();
        u.add_tokens("a", ["x", "y", "z"]);
        u.add_tokens("b", ["x", "y", "z"]);
        u.add_tokens("c", ["q"]);
        compute(&u, &SimilarityParams::default()).unwrap()
    }

    #[test]
    fn bson_round_trip() {
        let at: DateTime<Utc> = "2026-11-27T08:00:00.123456Z".parse().unwrap();
        let docs = documents(&result(), at);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0].computed_at,
            "2026-11-27T08:00:00.123Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(docs[0].params.bands, 30);
        assert_eq!(docs[0].params.rows, 4);
        assert!((docs[0].params.min_similarity() - (0.5 - (0.25f64 / 128.0).sqrt())).abs() < 1e-12);
        for d in &docs {
            assert_eq!(&from_bson(&to_bson(d), "t").unwrap(), d);
        }
        let b = to_bson(&docs[0]);
        assert_eq!(b.get_str("_id").unwrap(), "a");
        assert_eq!(b.get_array("similar").unwrap().len(), 1);
        assert!(from_bson(&doc! { "_id": "x" }, "t").is_err());
    }

    #[test]
    fn file_round_trip() {
        let dir = std::env::temp_dir().join(format!("simfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.jsonl");
        let docs = documents(&result(), Utc::now());
        write_results_file(&path, &docs).unwrap();
        let mut back = find_in_results_file(&path, "b").unwrap().unwrap();
        // serde_json's default float parser may differ in the last bit for computed values.
        assert!((back.params.min_similarity() - docs[1].params.min_similarity()).abs() < 1e-15);
        back.params.run.min_similarity = docs[1].params.run.min_similarity;
        assert_eq!(back, docs[1]);
        assert_eq!(find_in_results_file(&path, "nobody").unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn es_source_matches_strict_mapping() {
        let docs = documents(&result(), Utc::now());
        let src = es_source(&docs[0]);
        let mapping = es_mapping();
        let props = mapping["mappings"]["properties"].as_object().unwrap();
        for key in src.as_object().unwrap().keys() {
            assert!(props.contains_key(key), "{key} is not mapped");
        }
        let params = props["params"]["properties"].as_object().unwrap();
        for key in src["params"].as_object().unwrap().keys() {
            assert!(params.contains_key(key), "params.{key} is not mapped");
        }
        assert_eq!(src["similarCount"], 1);
        assert_eq!(src["similar"][0]["userId"], "b");
    }

    /// A `user_sessions` document as the sink writes it (the shared builder, a fixed key).
    fn sink_document(s: &shopstream_schema::Session) -> Document {
        let key = shopstream_pseudonym::Pseudonymizer::new(&[7u8; 32]).unwrap();
        use shopstream_documents::user_sessions::{flatten, to_bson};
        to_bson(&flatten(s, &key)).unwrap()
    }

    #[test]
    fn sink_documents_give_the_same_behaviour_as_records() {
        for line in include_str!("../tests/data/original-format.jsonl").lines() {
            let s = shopstream_schema::parse_session(line.as_bytes()).unwrap();
            let d = sink_document(&s);
            assert_eq!(behaviour_from_document(&d).unwrap(), Behaviour::from_session(&s));
            for (key, bad) in [
                ("browsingPattern", Bson::Array(vec![Bson::Int32(11)])),
                ("timeSpentonEachPage", Bson::Array(vec![])),
                ("exitPage", Bson::String("lamp".into())),
                ("referrer", Bson::String("Bing".into())),
                ("deviceType", Bson::Int32(3)),
            ] {
                let mut broken = d.clone();
                broken.insert(key, bad);
                let err = behaviour_from_document(&broken).unwrap_err();
                assert!(err.contains(key) || err.contains("invalid type"), "{key}: {err}");
            }
            let mut missing = d.clone();
            missing.remove("userId");
            assert!(behaviour_from_document(&missing).unwrap_err().contains("userId"));
        }
    }

    #[test]
    fn reads_sessions_file_and_skips_bad_lines() {
        let dir = std::env::temp_dir().join(format!("simread-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.jsonl");
        let good = include_str!("../tests/data/original-format.jsonl");
        std::fs::write(&path, format!("{good}\n{{\"sessionId\": 1}}\n\nnot json\n")).unwrap();
        let (users, stats) = read_sessions_file(&path).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(stats, ReadStats { records: 4, rejected: 2 });
        assert!(read_sessions_file(&dir.join("missing.jsonl")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
