//! `manifest.json`: a structural comparison by JSON path (`verity.root_hash`,
//! `disk.partitions[2].uuid`), so key order and whitespace never count as differences.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use super::{Component, Diffs, Options};

fn load(p: &Path) -> Result<Value> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))
}

/// The `manifest.json` component.
pub fn compare(a: &Path, b: &Path, opts: &Options) -> Result<Component> {
    let mut d = Diffs::new(opts.limit);
    diff_values("", &load(a)?, &load(b)?, &mut d);
    Ok(d.into_component("manifest.json"))
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Records every leaf where `a` and `b` differ, under JSON path `path`.
pub fn diff_values(path: &str, a: &Value, b: &Value, d: &mut Diffs) {
    let item = if path.is_empty() { "(document)" } else { path };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = child(path, k);
                match (x.get(k), y.get(k)) {
                    (Some(va), Some(vb)) => diff_values(&p, va, vb, d),
                    (va, vb) => d.push(&p, "presence", va.map(shown), vb.map(shown)),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let p = format!("{item}[{i}]");
                match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => diff_values(&p, va, vb, d),
                    (va, vb) => d.push(&p, "presence", va.map(shown), vb.map(shown)),
                }
            }
        }
        _ if a != b => d.push(item, "value", Some(shown(a)), Some(shown(b))),
        _ => {}
    }
}
