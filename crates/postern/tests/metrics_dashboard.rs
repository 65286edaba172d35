//! The Grafana dashboard (deploy/grafana/postern.json) queries only metrics a running server
//! exposes, with the suffix their type has; every metric on `/metrics` is documented in the
//! README; a delivered message shows up by tenant, channel and provider, with its latency.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{App, Backend, run_blocking, simple_message, workspace_root};
use serde_json::Value;

/// `# TYPE name kind` lines of the exposition: metric family name → kind.
fn families(metrics: &str) -> BTreeMap<String, String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect()
}

/// Every `postern_...` identifier in a PromQL expression.
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("postern_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The family a queried series belongs to, if its suffix fits the family's kind.
fn family_of(series: &str, fams: &BTreeMap<String, String>) -> Option<String> {
    if fams.get(series).is_some_and(|k| k == "gauge") {
        return Some(series.to_owned());
    }
    for (suffix, kinds) in [
        ("_total", &["counter"][..]),
        ("_bucket", &["histogram"][..]),
        ("_sum", &["histogram"][..]),
        ("_count", &["histogram"][..]),
    ] {
        if let Some(base) = series.strip_suffix(suffix)
            && fams.get(base).is_some_and(|k| kinds.contains(&k.as_str()))
        {
            return Some(base.to_owned());
        }
    }
    None
}

fn exprs(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {} must use the datasource variable",
            p["title"]
        );
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_owned());
        }
    }
    out
}

#[test]
fn the_dashboard_queries_only_what_the_server_exposes() {
    run_blocking(async {
        let app = App::spawn(Backend::Sqlite, &[]);
        let (code, v) = app.send(&app.key, simple_message("bob@example.org")).await;
        assert_eq!(code, 202);
        app.wait_status(v["id"].as_str().unwrap(), "delivered", 30)
            .await;
        // Counters are written after the outcome; wait for the scrape to show it.
        let deadline = Instant::now() + Duration::from_secs(30);
        let metrics = loop {
            let m = app.metrics().await;
            if m.contains("outcome=\"delivered\"") {
                break m;
            }
            assert!(Instant::now() < deadline, "no delivered outcome in {m}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let fams = families(&metrics);

        let text =
            std::fs::read_to_string(workspace_root().join("deploy/grafana/postern.json")).unwrap();
        let dash: Value = serde_json::from_str(&text).unwrap();
        let vars = dash["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter().any(|v| v["type"] == "datasource"
                && v["query"] == "prometheus"
                && v["name"] == "datasource"),
            "a Prometheus datasource variable: {vars:?}"
        );
        let mut queried = Vec::new();
        for e in exprs(&dash) {
            for series in names_in(&e) {
                let fam = family_of(&series, &fams).unwrap_or_else(|| {
                    panic!("the dashboard queries {series} ({e}); /metrics has no such series:\n{metrics}")
                });
                queried.push(fam);
            }
        }
        // Every family is on the dashboard, and in the README's table.
        let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
        for f in fams.keys() {
            assert!(queried.contains(f), "{f} is not on the dashboard");
            assert!(
                readme.contains(&format!("`{f}")),
                "{f} is not documented in README.md"
            );
        }

        // The delivered message, by tenant, channel and provider, with its latency.
        let tenant_id = metrics
            .lines()
            .find(|l| l.starts_with("postern_tenant_info{") && l.contains("tenant=\"default\""))
            .and_then(|l| l.split("tenant_id=\"").nth(1))
            .and_then(|s| s.split('"').next())
            .unwrap_or_else(|| panic!("no tenant_info for default: {metrics}"))
            .to_owned();
        let delivered = metrics.lines().find(|l| {
            l.starts_with("postern_messages_total{")
                && l.contains("outcome=\"delivered\"")
                && l.contains("provider=\"local\"")
                && l.contains("channel=\"email\"")
                && l.contains(&format!("tenant_id=\"{tenant_id}\""))
        });
        assert!(delivered.is_some_and(|l| l.ends_with(" 1")), "{metrics}");
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("postern_messages_total{")
                    && l.contains("outcome=\"accepted\"")
                    && l.ends_with(" 1"))
        );
        assert!(metrics.contains("postern_delivery_seconds_count{provider=\"local\"} 1"));
        assert!(metrics.contains("postern_pauses_active{scope=\"all\"} 0"));
    });
}
