//! The operator-workload contract, checked end to end without a cluster: every container the
//! operator renders is parsed by the real `shopstream` command-line parser, and what it parses
//! is what the resource asked for.
//!
//! Each rendered variable must be read by an argument of the container's subcommand (found by
//! its `env` name in the parser itself), so a variable that is rendered but read by nobody, or
//! misspelled on either side, fails here. Environment variables cannot be set for one parse
//! without touching the whole test process, so each `NAME=value` is handed to the parser as the
//! `--flag value` that declares `env = NAME`: the same argument, the same value parser.

#![allow(clippy::unwrap_used)] // A test: failing loudly is the point.

use shopstream_test_support::merge_json as merge;
use std::ffi::OsStr;

use clap::{CommandFactory, Parser};
use k8s_openapi::api::core::v1::Container;
use shopstream::{Cli, Command};
use shopstream_contract::{PipelineId, Workload};
use shopstream_operator::crd::AnalyticsPipeline;
use shopstream_operator::render::{RenderInputs, render};

const EXAMPLE: &str = include_str!("../../crds/examples/pipeline.yaml");

/// Variables read outside clap: `RUST_LOG` by the tracing subscriber (`shopstream-telemetry`).
const READ_OUTSIDE_CLAP: [&str; 1] = ["RUST_LOG"];

fn pipeline(yaml_patch: &str) -> AnalyticsPipeline {
    let mut v: serde_json::Value = serde_norway::from_str(EXAMPLE).expect("example yaml");
    let patch: serde_json::Value = serde_norway::from_str(yaml_patch).expect("patch yaml");
    merge(&mut v, &patch);
    let mut p: AnalyticsPipeline = serde_json::from_value(v).expect("an AnalyticsPipeline");
    p.metadata.namespace = Some("team-a".into());
    p.metadata.uid = Some("uid-1".into());
    p
}

/// Every container of every rendered workload object.
fn containers(p: &AnalyticsPipeline) -> Vec<(String, Container)> {
    let mut out = Vec::new();
    for d in render(p, &RenderInputs::default()).expect("renders") {
        if !matches!(d.resource.kind.as_str(), "Deployment" | "CronJob") {
            continue;
        }
        let v = serde_json::to_value(&d.object).expect("json");
        let list = v
            .pointer("/spec/template/spec/containers")
            .or_else(|| v.pointer("/spec/jobTemplate/spec/template/spec/containers"))
            .cloned()
            .expect("containers");
        for c in serde_json::from_value::<Vec<Container>>(list).expect("containers") {
            out.push((d.key(), c));
        }
    }
    out
}

/// Parses a rendered container with the `shopstream` parser, as the image's entrypoint would.
fn parse(key: &str, c: &Container) -> Cli {
    let args = c.args.clone().unwrap_or_default();
    let sub_name = args.first().unwrap_or_else(|| panic!("{key}: no subcommand in args"));
    let root = Cli::command();
    let sub = root
        .find_subcommand(sub_name)
        .unwrap_or_else(|| panic!("{key}: `shopstream {sub_name}` does not exist"));
    let mut argv: Vec<String> = vec!["shopstream".into()];
    argv.extend(args.iter().cloned());
    for e in c.env.clone().unwrap_or_default() {
        if READ_OUTSIDE_CLAP.contains(&e.name.as_str()) {
            continue;
        }
        let arg = sub
            .get_arguments()
            .find(|a| a.get_env() == Some(OsStr::new(&e.name)))
            .unwrap_or_else(|| {
                panic!(
                    "{key}: {} is rendered but `shopstream {sub_name}` reads no such variable",
                    e.name
                )
            });
        let long = arg.get_long().unwrap_or_else(|| panic!("{key}: {} has no --flag", e.name));
        let value = match (e.value, e.value_from) {
            (Some(v), None) => v,
            (None, Some(from)) => match (from.secret_key_ref, from.field_ref) {
                // what the kubelet would put there: the pod's field
                (None, Some(f)) => format!("field-{}", f.field_path),
                // Secrets reach containers only as files
                (Some(r), _) => panic!("{key}: {} is a secretKeyRef to {}", e.name, r.name),
                other => panic!("{key}: {} is not a pod field: {other:?}", e.name),
            },
            other => {
                panic!("{key}: {} has neither or both of value and valueFrom: {other:?}", e.name)
            }
        };
        if arg.get_action().takes_values() {
            argv.push(format!("--{long}"));
            argv.push(value);
        } else {
            // A switch (`SetTrue`): clap reads its variable as a boolean, on unless falsey.
            let falsey = ["", "0", "false", "no", "off", "n", "f"];
            if !falsey.contains(&value.to_ascii_lowercase().as_str()) {
                argv.push(format!("--{long}"));
            }
        }
    }
    Cli::try_parse_from(&argv)
        .unwrap_or_else(|err| panic!("{key}: {argv:?} does not parse:\n{err}"))
}

#[test]
fn every_rendered_container_parses_with_the_real_workload_parser() {
    let variants = [
        // the example as shipped: external backends, generator, three models
        ("example", pipeline("{}")),
        // SASL credentials for Kafka, no generator, one model, a database derived from the id
        (
            "kafka credentials",
            pipeline(
                "spec: { kafka: { credentialsSecret: { name: kafka-creds }, tls: {} }, \
                 workloads: { generator: null }, mongodb: { database: null }, \
                 offline: { training: { models: [mlp] } } }",
            ),
        ),
        // TLS with CAs and credentials to every backend, a client certificate and
        // PLAIN for Kafka, an API key for Elasticsearch: every `*_FILE` variable parses
        (
            "secure",
            pipeline(
                "spec: { kafka: { credentialsSecret: { name: kafka-creds }, saslMechanism: PLAIN, \
                   tls: { caSecret: { name: kafka-ca }, clientCertSecret: { name: kafka-client } } }, \
                 redis: { external: { url: 'rediss://redis:6380', credentialsSecret: { name: redis-creds }, \
                   tls: { caSecret: { name: redis-ca }, insecureSkipVerify: true } } }, \
                 mongodb: { external: { url: 'mongodb://mongo:27017/?replicaSet=rs0', \
                   credentialsSecret: { name: mongo-creds }, tls: { caSecret: { name: mongo-ca } } } }, \
                 elasticsearch: { external: { url: 'https://es:9200', \
                   apiKeySecret: { name: es-key, key: apiKey }, tls: { caSecret: { name: es-ca } } } } }",
            ),
        ),
        // managed backends: the workloads reach them through their Services
        (
            "managed",
            pipeline(
                "spec: { redis: { external: null, managed: {} }, \
                 mongodb: { external: null, managed: {} }, \
                 elasticsearch: { external: null, managed: {} } }",
            ),
        ),
    ];
    for (what, p) in variants {
        assert_eq!(shopstream_operator::validate::check_spec(&p.spec), vec![], "{what}");
        let id = PipelineId::new("team-a", "shop");
        let rendered = containers(&p);
        let mut seen = Vec::new();
        for (key, c) in &rendered {
            let cli = parse(key, c);
            // Every file the container is told about is in what it parsed (the parser does
            // not read files; the workload does when it connects).
            let parsed = format!("{cli:?}");
            for e in c.env.iter().flatten().filter(|e| e.name.ends_with("_FILE")) {
                let path = e.value.as_deref().unwrap_or_default();
                assert!(path.starts_with("/var/run/secrets/shopstream/"), "{key}: {path}");
                assert!(parsed.contains(path), "{what} {key}: {} = {path} not parsed", e.name);
            }
            let t = &p.spec.kafka.topics;
            match cli.command {
                Command::Generate(a) => {
                    seen.push(Workload::Generator);
                    assert_eq!(a.topic.as_deref(), Some(t.raw.name.as_str()), "{what}");
                    assert_eq!(a.rate, Some(50.0), "{what}");
                    assert_eq!(a.seed, 7, "{what}");
                    assert_eq!(a.kafka.bootstrap, p.spec.kafka.bootstrap_servers, "{what}");
                    assert_eq!(a.metrics_addr.map(|m| m.port()), Some(9100), "{what}");
                }
                Command::Gate(a) => {
                    seen.push(Workload::Gate);
                    assert_eq!(a.group, id.consumer_group(Workload::Gate), "{what}");
                    assert_eq!(a.redis_prefix, id.redis_prefix(), "{what}");
                    assert_eq!(
                        (&a.input_topic, &a.valid_topic, &a.suspicious_topic, &a.dead_letter_topic),
                        (&t.raw.name, &t.valid.name, &t.suspicious.name, &t.dead_letter.name),
                        "{what}"
                    );
                    let r = &p.spec.workloads.gate.rules;
                    assert_eq!(a.bloom_capacity, 1_000_000, "{what}");
                    assert_eq!(a.bloom_error_rate, r.bloom_error_rate, "{what}");
                    assert_eq!(a.verdict_ttl_secs, 691_200, "{what}");
                    assert_eq!(a.metrics_addr.port(), 9100, "{what}");
                    if what == "managed" {
                        assert_eq!(a.redis.redis_url, "redis://shop-redis.team-a.svc:6379");
                    }
                    if what == "kafka credentials" || what == "secure" {
                        let k = format!("{:?}", a.kafka);
                        for file in ["kafka/username", "kafka/password"] {
                            assert!(
                                k.contains(&format!("/var/run/secrets/shopstream/{file}")),
                                "{k}"
                            );
                        }
                        assert!(k.contains("SaslSsl"), "{what}: {k}");
                    }
                    if what == "secure" {
                        let r = format!("{:?}", a.redis);
                        assert!(r.contains("/var/run/secrets/shopstream/redis/ca.crt"), "{r}");
                        assert!(r.contains("redis_insecure_skip_verify: true"), "{r}");
                        assert!(
                            !format!("{:?}", a.kafka).contains("mongodb/"),
                            "gate reads no Mongo"
                        );
                    }
                }
                Command::Process(a) => {
                    seen.push(Workload::Processor);
                    assert_eq!(a.group, id.consumer_group(Workload::Processor), "{what}");
                    assert_eq!(a.index_prefix, id.es_index_prefix(), "{what}");
                    assert_eq!(a.input_topic, t.valid.name, "{what}");
                    assert_eq!(a.dead_letter_topic, t.processor_dead_letter().name, "{what}");
                    assert_eq!(a.metrics_addr.port(), 9100, "{what}");
                }
                Command::Sink(a) => {
                    seen.push(Workload::Sink);
                    assert_eq!(a.group, id.consumer_group(Workload::Sink), "{what}");
                    assert_eq!(a.mongo.mongo_db, p.database(), "{what}");
                    assert_eq!(a.input_topic, t.valid.name, "{what}");
                    assert_eq!(a.dead_letter_topic, t.dead_letter.name, "{what}");
                    assert_eq!(
                        a.key.key_file.as_deref(),
                        Some(std::path::Path::new("/var/run/secrets/shopstream/pseudonym/key"))
                    );
                    assert_eq!(a.key.key, None, "the key itself is never on the command line");
                    assert_eq!(a.metrics_addr.port(), 9100, "{what}");
                }
                Command::Similarity(a) => {
                    seen.push(Workload::Similarity);
                    assert_eq!(a.es_index, id.similarity_index(), "{what}");
                    assert_eq!(a.mongo.mongo_db, p.database(), "{what}");
                    assert!(a.mongo.mongo_url.is_some() && a.es.es_url.is_some(), "{what}");
                    if what == "secure" {
                        assert!(a.es.es_api_key_file.is_some() && a.mongo.mongo_ca_file.is_some());
                    }
                    assert_eq!(a.threshold, p.spec.offline.similarity.threshold, "{what}");
                }
                Command::Train(a) => {
                    seen.push(Workload::Train);
                    assert_eq!(a.pipeline, id.key(), "{what}");
                    assert_eq!(a.mongo.mongo_db, p.database(), "{what}");
                    assert_eq!(a.models.len(), p.spec.offline.training.models.len(), "{what}");
                    assert_eq!(format!("{:?}", a.privacy), "Private", "{what}");
                    let pr = &p.spec.offline.training.privacy;
                    assert_eq!(
                        (a.total_epsilon, a.total_delta, a.epsilon_per_run),
                        (pr.total_epsilon, pr.delta, pr.epsilon_per_run),
                        "{what}"
                    );
                }
                other => panic!("{key}: unexpected command {other:?}"),
            }
        }
        let mut want: Vec<Workload> = Workload::ALL.to_vec();
        if p.spec.workloads.generator.is_none() {
            want.retain(|w| *w != Workload::Generator);
        }
        seen.sort();
        assert_eq!(seen, want, "{what}: one container per workload");
    }
}

/// The database the workloads write is the one the operator reads the registry and budget
/// from, and the budget key is the one `shopstream train` charges.
#[test]
fn the_operator_reads_where_the_workloads_write() {
    let p = pipeline("spec: { mongodb: { database: null } }");
    assert_eq!(p.database(), "shopstream_team-a_shop");
    assert_eq!(p.id().key(), "team-a/shop");
    let train = containers(&p)
        .into_iter()
        .find(|(k, _)| k == "CronJob/shop-train")
        .map(|(k, c)| parse(&k, &c))
        .expect("train CronJob");
    let Command::Train(a) = train.command else { panic!("not train") };
    assert_eq!(a.mongo.mongo_db, p.database());
    assert_eq!(a.pipeline, p.id().key());
}

/// The training CronJob's container as the operator renders it for `p`, parsed.
fn rendered_train(p: &AnalyticsPipeline) -> shopstream_train::TrainArgs {
    let name = format!("CronJob/{}-train", p.name_or_empty());
    let train = containers(p)
        .into_iter()
        .find(|(k, _)| *k == name)
        .map(|(k, c)| parse(&k, &c))
        .expect("train CronJob");
    let Command::Train(a) = train.command else { panic!("not train") };
    a
}

/// What the registry and the budget look like to the operator (its own read path).
async fn operator_view(
    url: &str,
    p: &AnalyticsPipeline,
    db: &str,
) -> shopstream_operator::registry::RegistryView {
    let privacy = &p.spec.offline.training.privacy;
    shopstream_operator::registry::RegistryReader::default()
        .read(
            &shopstream_operator::registry::MongoConnection::plain(url),
            db,
            &p.id().key(),
            privacy,
        )
        .await
        .expect("the operator reads the registry")
}

/// The example resource's training, run for real: the environment the operator renders (models,
/// privacy mode, budget totals, per-run epsilon and delta, pipeline key, run id from the Job),
/// with only the MongoDB endpoint and database pointed at the local stack. It trains, registers
/// only private models, and the budget the operator reports falls by exactly what the ledger
/// charged; a retry of the same Job pays nothing; a budget whose delta cannot pay for a run is
/// reported as exhausted, naming delta.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_training_job_trains_private_models_and_pays_once() {
    use mongodb::bson::{Document, doc};
    let url = shopstream_test_support::env("SHOPSTREAM_MONGO_URL");
    let p = pipeline("{}");
    let mut args = rendered_train(&p);
    assert_eq!(args.run_id.as_deref(), Some("field-metadata.labels['controller-uid']"));
    let db_name = shopstream_test_support::unique("contract_train").replace('-', "_");
    args.mongo.mongo_url = Some(url.clone());
    args.mongo.mongo_db = db_name.clone();
    args.run_id = Some("job-uid-1".into()); // what the kubelet puts there for this Job

    // The sink's documents for a few thousand sessions.
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let db = client.database(&db_name);
    let key = shopstream_pseudonym::Pseudonymizer::new(&[9u8; 32]).unwrap();
    let config =
        shopstream_generator::GeneratorConfig { seed: 5, users: 300, ..Default::default() };
    let docs: Vec<Document> = shopstream_generator::Generator::new(config)
        .unwrap()
        .take(2400)
        .map(|g| {
            let d = shopstream_documents::user_sessions::flatten(&g.session, &key);
            shopstream_documents::user_sessions::to_bson(&d).unwrap()
        })
        .collect();
    db.collection::<Document>("user_sessions").insert_many(docs).await.unwrap();

    let before = operator_view(&url, &p, &db_name).await.budget;
    assert_eq!((before.spent_epsilon, before.spent_delta), (0.0, 0.0));
    shopstream::run(shopstream::Cli { command: Command::Train(args.clone()) }).await.unwrap();

    // Only private models, each once.
    let view = operator_view(&url, &p, &db_name).await;
    let mut names: Vec<&str> = view.models.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["dp_gbdt", "dp_mlp", "dp_random_forest"]);
    assert!(view.models.iter().all(|m| m.epsilon.is_some_and(|e| e > 0.0)), "{:?}", view.models);

    // The status's budget fell by exactly what the ledger charged for this run.
    let ledger = db
        .collection::<Document>("privacy_budget")
        .find_one(doc! { "_id": p.id().key() })
        .await
        .unwrap()
        .expect("a ledger");
    let entries = ledger.get_array("entries").unwrap();
    assert_eq!(entries.len(), 3, "one entry per private model");
    let (mut eps, mut delta) = (0.0, 0.0);
    for e in entries {
        let e = e.as_document().unwrap();
        assert_eq!(e.get_str("runId").unwrap(), "job-uid-1");
        eps += e.get_f64("epsilon").unwrap();
        delta += e.get_f64("delta").unwrap();
    }
    let privacy = &p.spec.offline.training.privacy;
    assert!(eps <= privacy.epsilon_per_run + 1e-9 && eps > 0.9 * privacy.epsilon_per_run, "{eps}");
    assert!((delta - privacy.delta_per_run()).abs() < 1e-18, "{delta}");
    assert_eq!(view.budget.spent_epsilon - before.spent_epsilon, eps);
    assert_eq!(view.budget.spent_delta - before.spent_delta, delta);
    assert_eq!(view.budget.remaining_delta, privacy.delta - delta);

    // The Job's retry (same uid) trains again but pays nothing.
    shopstream::run(shopstream::Cli { command: Command::Train(args.clone()) }).await.unwrap();
    let again = operator_view(&url, &p, &db_name).await.budget;
    assert_eq!(again, view.budget, "a retried Job does not pay twice");

    // A spec whose delta pays for fewer runs than its epsilon: after this run, delta is what
    // ran out, and the status says so.
    let tight =
        pipeline("spec: { offline: { training: { privacy: { deltaPerRun: 0.0000095 } } } }");
    let typed: shopstream_privacy::BudgetDoc = mongodb::bson::from_document(ledger).unwrap();
    let tight_budget =
        shopstream_operator::registry::budget(Some(&typed), &tight.spec.offline.training.privacy);
    let why = shopstream_operator::registry::exhausted(
        &tight_budget,
        &tight.spec.offline.training.privacy,
    )
    .expect("delta cannot pay for another run");
    assert!(why.contains("deltaPerRun") && !why.contains("epsilonPerRun"), "{why}");
    // ... and `shopstream train` with that spec's environment refuses before reading data.
    let mut tight_args = rendered_train(&tight);
    tight_args.mongo.mongo_url = Some(url.clone());
    tight_args.mongo.mongo_db = db_name.clone();
    tight_args.run_id = Some("job-uid-2".into());
    let err = shopstream::run(shopstream::Cli { command: Command::Train(tight_args) })
        .await
        .expect_err("the budget's delta cannot pay");
    assert!(format!("{err:#}").contains("exhausted"), "{err:#}");
    db.drop().await.unwrap();
}
