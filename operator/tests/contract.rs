//! The operator-workload contract, checked end to end without a cluster: every container the
//! operator renders is parsed by the real `shopstream` command-line parser, and what it parses
//! is what the resource asked for.
//!
//! Each rendered variable must be read by an argument of the container's subcommand (found by
//! its `env` name in the parser itself), so a variable that is rendered but read by nobody, or
//! misspelled on either side, fails here. Environment variables cannot be set for one parse
//! without touching the whole test process, so each `NAME=value` is handed to the parser as the
//! `--flag value` that declares `env = NAME`: the same argument, the same value parser.

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

fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
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
            (None, Some(from)) => {
                let r = from.secret_key_ref.expect("only secretKeyRef is rendered");
                // what the kubelet would put there: the Secret's value
                format!("secret-{}-{}", r.name, r.key)
            }
            other => {
                panic!("{key}: {} has neither or both of value and valueFrom: {other:?}", e.name)
            }
        };
        argv.push(format!("--{long}"));
        argv.push(value);
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
                "spec: { kafka: { credentialsSecret: { name: kafka-creds } }, \
                 workloads: { generator: null }, mongodb: { database: null }, \
                 offline: { training: { models: [mlp] } } }",
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
        let id = PipelineId::new("team-a", "shop");
        let rendered = containers(&p);
        let mut seen = Vec::new();
        for (key, c) in &rendered {
            let cli = parse(key, c);
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
                        assert_eq!(a.redis_url, "redis://shop-redis.team-a.svc:6379");
                    }
                    if what == "kafka credentials" {
                        assert_eq!(
                            a.kafka.username.as_deref(),
                            Some("secret-kafka-creds-username")
                        );
                        assert_eq!(
                            a.kafka.password.as_deref(),
                            Some("secret-kafka-creds-password")
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
                    assert_eq!(a.database, p.database(), "{what}");
                    assert_eq!(a.input_topic, t.valid.name, "{what}");
                    assert_eq!(a.dead_letter_topic, t.dead_letter.name, "{what}");
                    assert_eq!(a.key.key.as_deref(), Some("secret-shopstream-pseudonym-key"));
                    assert_eq!(a.metrics_addr.port(), 9100, "{what}");
                }
                Command::Similarity(a) => {
                    seen.push(Workload::Similarity);
                    assert_eq!(a.es_index, id.similarity_index(), "{what}");
                    assert_eq!(a.mongo.mongo_db, p.database(), "{what}");
                    assert!(a.mongo.mongo_url.is_some() && a.es_url.is_some(), "{what}");
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
