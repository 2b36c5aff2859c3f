//! Checks the Kibana saved objects in `kibana/` against the mappings the processor creates
//! (Kibana itself cannot run here): every NDJSON line parses, ids are unique, every reference
//! resolves, index patterns name the processor's indexes with a date time field, and every
//! field a visualization aggregates or queries exists in that index's mapping with a type the
//! aggregation accepts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use shopstream_processor::mapping::{Indexes, field_types, product_mapping, session_mapping};

const NDJSON: &str = include_str!("../../../kibana/shopstream.ndjson");

fn objects() -> Vec<Value> {
    NDJSON
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("line {}: not JSON: {e}", n + 1))
        })
        .collect()
}

/// Field name to type, per index name, from the processor's own mapping code.
fn mappings() -> HashMap<String, BTreeMap<String, String>> {
    let ix = Indexes::with_prefix("shopstream-");
    HashMap::from([
        (ix.sessions, field_types(&session_mapping()).into_iter().collect()),
        (ix.products, field_types(&product_mapping()).into_iter().collect()),
    ])
}

fn json_attr(o: &Value, path: &[&str]) -> Value {
    let mut v = &o["attributes"];
    for p in path {
        v = &v[*p];
    }
    let text = v.as_str().unwrap_or_else(|| panic!("{}: {path:?} is not a JSON string", o["id"]));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{}: {path:?}: {e}", o["id"]))
}

/// Field names used in a KQL query such as `purchaseMade:true and reviewSentiment:*`.
fn kql_fields(query: &str) -> Vec<String> {
    query
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|tok| tok.split_once(':').map(|(f, _)| f.to_string()))
        .filter(|f| !f.is_empty())
        .collect()
}

fn accepts(agg: &str, kind: &str) -> bool {
    let numeric = matches!(kind, "integer" | "long" | "float" | "double" | "short" | "byte");
    match agg {
        "sum" | "avg" | "min" | "max" | "percentiles" => numeric,
        "date_histogram" => kind == "date",
        "histogram" => numeric,
        "terms" | "cardinality" => kind != "text",
        _ => false,
    }
}

#[test]
fn saved_objects_are_consistent_with_the_mappings() {
    let objs = objects();
    assert!(objs.len() >= 9, "index patterns, visualizations and a dashboard");

    let mut ids = BTreeSet::new();
    for o in &objs {
        let key = (
            o["type"].as_str().expect("type").to_string(),
            o["id"].as_str().expect("id").to_string(),
        );
        assert!(ids.insert(key.clone()), "duplicate saved object {key:?}");
    }
    for o in &objs {
        for r in o["references"].as_array().expect("references") {
            let key = (
                r["type"].as_str().expect("ref type").to_string(),
                r["id"].as_str().expect("ref id").to_string(),
            );
            assert!(ids.contains(&key), "{}: reference {key:?} does not resolve", o["id"]);
        }
    }

    let maps = mappings();
    let mut pattern_index: HashMap<String, String> = HashMap::new();
    for o in objs.iter().filter(|o| o["type"] == "index-pattern") {
        let title = o["attributes"]["title"].as_str().expect("title").to_string();
        let fields = maps
            .get(&title)
            .unwrap_or_else(|| panic!("index pattern {title} is not a processor index"));
        let time = o["attributes"]["timeFieldName"].as_str().expect("time field");
        assert_eq!(
            fields.get(time).map(String::as_str),
            Some("date"),
            "{title}: time field {time}"
        );
        pattern_index.insert(o["id"].as_str().expect("id").to_string(), title);
    }
    assert_eq!(pattern_index.len(), 2, "one data view per processor index");

    let mut visualizations = BTreeSet::new();
    let wanted_types: BTreeSet<&str> = ["line", "histogram", "pie", "table", "metric"].into();
    for o in objs.iter().filter(|o| o["type"] == "visualization") {
        let id = o["id"].as_str().expect("id");
        visualizations.insert(id.to_string());
        let search = json_attr(o, &["kibanaSavedObjectMeta", "searchSourceJSON"]);
        let ref_name = search["indexRefName"].as_str().expect("indexRefName");
        let pattern = o["references"]
            .as_array()
            .expect("refs")
            .iter()
            .find(|r| r["name"] == ref_name)
            .unwrap_or_else(|| panic!("{id}: no reference named {ref_name}"));
        let index = &pattern_index[pattern["id"].as_str().expect("pattern id")];
        let fields = &maps[index];

        let state = json_attr(o, &["visState"]);
        assert!(wanted_types.contains(state["type"].as_str().expect("vis type")), "{id}");
        let aggs = state["aggs"].as_array().expect("aggs");
        assert!(!aggs.is_empty(), "{id}: no aggregation");
        for agg in aggs {
            let kind = agg["type"].as_str().expect("agg type");
            if kind == "count" {
                continue;
            }
            let field = agg["params"]["field"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: {kind} without field"));
            let ftype = fields
                .get(field)
                .unwrap_or_else(|| panic!("{id}: field {field} not in the {index} mapping"));
            assert!(accepts(kind, ftype), "{id}: {kind} on {field} of type {ftype}");
        }
        let query = search["query"]["query"].as_str().unwrap_or_default();
        for f in kql_fields(query) {
            assert!(fields.contains_key(&f), "{id}: query field {f} not in the {index} mapping");
        }
    }

    // The dashboard shows every visualization, and its panels point at references.
    let dashboards: Vec<&Value> = objs.iter().filter(|o| o["type"] == "dashboard").collect();
    assert_eq!(dashboards.len(), 1);
    let d = dashboards[0];
    let panels = json_attr(d, &["panelsJSON"]);
    let refs: HashMap<&str, &str> = d["references"]
        .as_array()
        .expect("refs")
        .iter()
        .map(|r| (r["name"].as_str().expect("name"), r["id"].as_str().expect("id")))
        .collect();
    let shown: BTreeSet<String> = panels
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| refs[p["panelRefName"].as_str().expect("panelRefName")].to_string())
        .collect();
    assert_eq!(shown, visualizations);
}

#[test]
fn the_checker_catches_a_wrong_field() {
    // The same check on a broken object must fail: a field that no mapping has.
    let maps = mappings();
    let fields = &maps["shopstream-products"];
    assert!(!fields.contains_key("revenu"));
    assert!(accepts("sum", &fields["revenue"]));
    assert!(!accepts("sum", &fields["category"]));
    assert!(!accepts("terms", &fields["review"]));
    assert_eq!(
        kql_fields("purchaseMade:true and reviewSentiment:*"),
        vec!["purchaseMade", "reviewSentiment"]
    );
}
