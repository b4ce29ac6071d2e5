//! The API reference (docs/api-reference.md), generated from the CRDs' schemas: every
//! field with its type, constraints and description. No IO.

use kube::CustomResourceExt;
use serde_json::Value;

use super::{AWSAccount, ClusterSnapshot, SnapshotCopy, SnapshotSchedule};

fn kind_of(s: &Value) -> String {
    match s["type"].as_str() {
        Some("array") => format!("[]{}", kind_of(&s["items"])),
        Some("object") if s.get("additionalProperties").is_some() => {
            format!("map[string]{}", kind_of(&s["additionalProperties"]))
        }
        Some(t) => t.to_string(),
        None => "object".to_string(),
    }
}

fn constraints(s: &Value) -> String {
    let mut c = Vec::new();
    if let Some(e) = s["enum"].as_array() {
        c.push(format!(
            "one of {}",
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (k, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("maxItems", "max items"),
        ("maxProperties", "max entries"),
    ] {
        if let Some(v) = s[k].as_f64() {
            c.push(format!("{label} {v}"));
        }
    }
    if let Some(p) = s["pattern"].as_str() {
        c.push(format!("pattern `{p}`"));
    }
    if let Some(p) = s["items"]["pattern"].as_str() {
        c.push(format!("items match `{p}`"));
    }
    if let Some(d) = s.get("default") {
        c.push(format!("default `{d}`"));
    }
    if let Some(rules) = s["x-kubernetes-validations"].as_array() {
        for r in rules {
            if let Some(m) = r["message"].as_str() {
                c.push(m.to_string());
            }
        }
    }
    c.join("; ")
}

fn fields(out: &mut String, path: &str, schema: &Value, required: &[Value]) {
    let Some(props) = schema["properties"].as_object() else {
        return;
    };
    for (name, s) in props {
        let p = format!("{path}.{name}");
        let description = s["description"]
            .as_str()
            .unwrap_or_default()
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        let req = if required.iter().any(|r| r == name) {
            "yes"
        } else {
            ""
        };
        out.push_str(&format!(
            "| `{p}` | {} | {req} | {description} | {} |\n",
            kind_of(s).replace('|', "\\|"),
            constraints(s).replace('|', "\\|")
        ));
        let empty = Vec::new();
        let child_required = s["required"].as_array().unwrap_or(&empty);
        fields(out, &p, s, child_required);
        if s["type"] == "array" {
            let item_required = s["items"]["required"].as_array().unwrap_or(&empty);
            fields(out, &format!("{p}[]"), &s["items"], item_required);
        }
    }
}

/// The reference, as Markdown.
pub fn markdown() -> String {
    let mut out = String::from(
        "# API reference: dbsnapshot.io/v1alpha1\n\n\
         Generated from the CRDs (`crds/`); a test fails when it is out of date \
         (regenerate with `UPDATE_DOCS=1 cargo test --test docs`).\n",
    );
    for crd in [
        ClusterSnapshot::crd(),
        SnapshotCopy::crd(),
        SnapshotSchedule::crd(),
        AWSAccount::crd(),
    ] {
        let names = &crd.spec.names;
        let v = &crd.spec.versions[0];
        let schema = serde_json::to_value(
            v.schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        out.push_str(&format!(
            "\n## {kind}\n\n{desc}\n\nPlural `{plural}`, short name `{short}`, category `{cat}`.\n\n\
             | field | type | required | description | constraints |\n| --- | --- | --- | --- | --- |\n",
            kind = names.kind,
            desc = schema["description"].as_str().unwrap_or_default(),
            plural = names.plural,
            short = names.short_names.clone().unwrap_or_default().join(", "),
            cat = names.categories.clone().unwrap_or_default().join(", "),
        ));
        for part in ["spec", "status"] {
            let empty = Vec::new();
            let s = &schema["properties"][part];
            let required = s["required"].as_array().unwrap_or(&empty);
            fields(&mut out, part, s, required);
        }
    }
    out
}
