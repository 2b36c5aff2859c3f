//! Integration with the real MongoDB and Elasticsearch servers of `dev/stack`: the commands
//! `similarity` (reading a JSON-lines file and reading MongoDB `user_sessions`) and `similar`.
//! Each test uses its own database and index (random suffix) and removes them.
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

mod common;

use std::path::PathBuf;

use mongodb::bson::{Document, doc};
use shopstream_documents::user_sessions;
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_similarity::cli::{SimilarArgs, SimilarityArgs, lookup, render};
use shopstream_similarity::store::{count_mongo, read_es, read_mongo};
use shopstream_similarity::{SimilarityParams, UserTokens, compute, run_similarity};

fn sessions(seed: u64) -> Vec<shopstream_schema::Session> {
    Generator::new(GeneratorConfig { seed, users: 150, ..Default::default() })
        .unwrap()
        .take(900)
        .map(|g| g.session)
        .collect()
}

struct Env {
    mongo_url: String,
    es_url: String,
    db_name: String,
    index: String,
    dir: PathBuf,
}

impl Env {
    fn new() -> Self {
        let db_name = shopstream_test_support::unique("simtest").replace('-', "_");
        let dir = std::env::temp_dir().join(&db_name);
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            mongo_url: shopstream_test_support::env("SHOPSTREAM_MONGO_URL"),
            es_url: shopstream_test_support::env("SHOPSTREAM_ES_URL"),
            index: shopstream_test_support::unique("simtest-similar-users"),
            db_name,
            dir,
        }
    }

    async fn db(&self) -> mongodb::Database {
        mongodb::Client::with_uri_str(&self.mongo_url).await.unwrap().database(&self.db_name)
    }

    fn similarity_args(&self, extra: &[&str]) -> SimilarityArgs {
        let fixed = ["--es-url", &self.es_url, "--es-index", &self.index];
        self.parse(&fixed, extra)
    }

    fn similar_args(&self, user: &str, extra: &[&str]) -> SimilarArgs {
        self.parse(&["--user", user], extra)
    }

    /// A command's arguments: this test's MongoDB database, then `fixed`, then `extra`.
    fn parse<A: clap::Args + clap::FromArgMatches>(&self, fixed: &[&str], extra: &[&str]) -> A {
        let mongo = ["--mongo-url", &self.mongo_url, "--mongo-db", &self.db_name];
        let argv: Vec<&str> = mongo.iter().chain(fixed).chain(extra).copied().collect();
        shopstream_test_support::parse_args(&argv).unwrap()
    }

    async fn cleanup(&self) {
        self.db().await.drop().await.unwrap();
        let client = shopstream_clients::EsArgs::for_url(&self.es_url).client(None).unwrap();
        client
            .indices()
            .delete(elasticsearch::indices::IndicesDeleteParts::Index(&[&self.index]))
            .send()
            .await
            .unwrap();
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

#[tokio::test]
async fn similarity_from_file_to_mongo_and_es_then_similar() {
    let env = Env::new();
    let sessions = sessions(21);
    let input = env.dir.join("sessions.jsonl");
    let lines: Vec<String> = sessions.iter().map(|s| s.to_json()).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let output = env.dir.join("similar.jsonl");

    run_similarity(env.similarity_args(&[
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]))
    .await
    .unwrap();

    // What the library computes for the same sessions is what the stores hold.
    let users: UserTokens = sessions.iter().collect();
    let expected = compute(&users, &SimilarityParams::default()).unwrap();
    let db = env.db().await;
    assert_eq!(count_mongo(&db, "similar_users").await.unwrap(), users.len() as u64);
    let es = shopstream_clients::EsArgs::for_url(&env.es_url).client(None).unwrap();
    let mut checked = 0;
    for u in expected.users.iter().filter(|u| !u.similar.is_empty()).take(15) {
        let stored = read_mongo(&db, "similar_users", &u.user_id).await.unwrap().unwrap();
        assert_eq!(stored.similar, u.similar);
        assert_eq!((stored.params.bands, stored.params.rows), (30, 4));
        let src = read_es(&es, &env.index, &u.user_id).await.unwrap().unwrap();
        assert_eq!(src["userId"], u.user_id.as_str());
        assert_eq!(src["similarCount"], u.similar.len());
        assert_eq!(src["similar"][0]["userId"], u.similar[0].user_id.as_str());

        // `similar --user` from MongoDB and from the output file agree with the computation.
        let from_mongo = lookup(&env.similar_args(&u.user_id, &[])).await.unwrap().unwrap();
        assert_eq!(from_mongo.similar, u.similar);
        let from_file =
            lookup(&env.similar_args(&u.user_id, &["--from", output.to_str().unwrap()]))
                .await
                .unwrap()
                .unwrap();
        assert_eq!(from_file.similar, u.similar);
        let text = render(&from_mongo, Some(3));
        assert!(text.contains(&u.similar[0].user_id));
        assert!(text.contains(&format!("{:.4}", u.similar[0].similarity)));
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} users with similar users");
    assert!(lookup(&env.similar_args("no-such-user", &[])).await.unwrap().is_none());

    // The mapping is the explicit one.
    let index = [env.index.as_str()];
    let mapping_parts = elasticsearch::indices::IndicesGetMappingParts::Index(&index);
    let mapping = json(es.indices().get_mapping(mapping_parts).send().await).await;
    let props = &mapping[&env.index]["mappings"]["properties"];
    assert_eq!(props["userId"]["type"], "keyword");
    assert_eq!(props["similar"]["type"], "nested");

    // A second run with fewer users replaces the first: earlier documents are removed.
    let fewer: Vec<String> = lines[..300].to_vec();
    std::fs::write(&input, fewer.join("\n")).unwrap();
    run_similarity(env.similarity_args(&["--input", input.to_str().unwrap()])).await.unwrap();
    let users2: UserTokens = sessions[..300].iter().collect();
    assert_eq!(count_mongo(&db, "similar_users").await.unwrap(), users2.len() as u64);
    let count = json(es.count(elasticsearch::CountParts::Index(&index)).send().await).await;
    assert_eq!(count["count"].as_u64().unwrap(), users2.len() as u64);

    env.cleanup().await;
}

#[tokio::test]
async fn similarity_reads_user_sessions_from_mongo() {
    let env = Env::new();
    let sessions = sessions(22);
    let db = env.db().await;
    // Documents of the sink's documented `user_sessions` shape (flattened, pseudonymised).
    let key = shopstream_pseudonym::Pseudonymizer::new(&[7u8; 32]).unwrap();
    let docs: Vec<Document> = sessions
        .iter()
        .map(|s| user_sessions::to_bson(&user_sessions::flatten(s, &key)))
        .collect::<Result<_, _>>()
        .unwrap();
    db.collection::<Document>("user_sessions").insert_many(docs).await.unwrap();
    db.collection::<Document>("user_sessions")
        .insert_one(doc! { "_id": "broken", "userId": "x" })
        .await
        .unwrap();

    run_similarity(env.similarity_args(&["--no-es"])).await.unwrap();

    let users: UserTokens = sessions.iter().collect();
    let expected = compute(&users, &SimilarityParams::default()).unwrap();
    assert_eq!(count_mongo(&db, "similar_users").await.unwrap(), users.len() as u64);
    for u in expected.users.iter().take(20) {
        let stored = read_mongo(&db, "similar_users", &u.user_id).await.unwrap().unwrap();
        assert_eq!(stored.similar, u.similar, "user {}", u.user_id);
    }
    env.cleanup().await;
}

/// The JSON body of an Elasticsearch response (the test fails on any error).
async fn json(
    response: Result<elasticsearch::http::response::Response, elasticsearch::Error>,
) -> serde_json::Value {
    response.unwrap().json().await.unwrap()
}
