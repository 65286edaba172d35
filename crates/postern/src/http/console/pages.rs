//! Pages that mostly read: overview (throughput, queue depth, rates, charts), providers (with
//! the route move form), guard alerts, the audit log.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::html::{self, Notice, csrf_field, esc, input, may_change, page, pct, select};
use super::{Posted, Session, when};
use crate::admin::ops;
use crate::http::admin::lists::visible_alerts;
use crate::http::admin::ops::{tenant_of, visible_pauses};
use crate::http::{ApiError, AppState};
use crate::store::EventCount;

/// A window of the overview: its length and bucket size.
struct Window {
    label: &'static str,
    span_ms: i64,
    bucket_ms: i64,
}

const WINDOWS: [Window; 2] = [
    Window {
        label: "Last hour (per minute)",
        span_ms: 3_600_000,
        bucket_ms: 60_000,
    },
    Window {
        label: "Last day (per 15 minutes)",
        span_ms: 86_400_000,
        bucket_ms: 900_000,
    },
];

/// The kinds charted and counted, with their labels.
const KINDS: &[(&str, &str)] = &[
    ("queued", "Accepted"),
    ("delivered", "Delivered"),
    ("bounced", "Bounced"),
    ("complained", "Complaints"),
    ("auto_replied", "Auto-replies"),
    ("held", "Held"),
];

#[derive(Default)]
struct Tally {
    delivered: i64,
    bounced: i64,
    complained: i64,
    auto_replied: i64,
    accepted: i64,
}

impl Tally {
    fn add(&mut self, c: &EventCount) {
        match c.kind.as_str() {
            "delivered" => self.delivered += c.n,
            "bounced" => self.bounced += c.n,
            "complained" => self.complained += c.n,
            "auto_replied" => self.auto_replied += c.n,
            "queued" => self.accepted += c.n,
            _ => {}
        }
    }
}

fn rates_table(title: &str, rows: &BTreeMap<String, Tally>) -> String {
    let mut out = format!(
        "<h3>{}</h3><div class=\"scroll\"><table><tr><th></th><th>Accepted</th><th>Delivered</th><th>Bounced</th><th>Bounce rate</th><th>Complaints</th><th>Complaint rate</th><th>Auto-replies</th><th>Auto-reply rate</th></tr>",
        esc(title)
    );
    if rows.is_empty() {
        out.push_str("<tr><td colspan=\"9\" class=\"muted\">nothing in this window</td></tr>");
    }
    for (name, t) in rows {
        let sent = t.delivered + t.bounced;
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            t.accepted,
            t.delivered,
            t.bounced,
            pct(t.bounced, sent),
            t.complained,
            pct(t.complained, t.delivered),
            t.auto_replied,
            pct(t.auto_replied, t.delivered)
        );
    }
    out.push_str("</table></div>");
    out
}

async fn overview_body(st: &AppState, sess: &Session) -> Result<String, ApiError> {
    let own = sess.admin.who.tenant.as_ref().map(|(id, _)| id.as_str());
    let names: BTreeMap<String, String> = st
        .store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let now = st.clock.now_ms();
    let mut out = String::new();
    let depth = st.store.queue_depth(own).await?;
    out.push_str("<section><h2>Queue depth</h2><div class=\"grid small\">");
    for status in ["queued", "sending", "deferred", "held"] {
        let n = depth
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        let _ = write!(
            out,
            "<div><span class=\"muted\">{status}</span><br><strong id=\"depth-{status}\" style=\"font-size:1.6rem\">{n}</strong></div>"
        );
    }
    out.push_str("</div></section>");
    for w in &WINDOWS {
        let since = now - w.span_ms;
        let counts = st.store.event_counts(since, w.bucket_ms, own).await?;
        let buckets = (w.span_ms / w.bucket_ms) as usize + 1;
        let _ = write!(out, "<section><h2>{}</h2>", w.label);
        let accepted: i64 = counts
            .iter()
            .filter(|c| c.kind == "queued")
            .map(|c| c.n)
            .sum();
        let _ = write!(
            out,
            "<p>Throughput: <strong>{:.1}</strong> accepted per minute on average.</p><div class=\"grid\">",
            accepted as f64 * 60_000.0 / w.span_ms as f64
        );
        for (kind, label) in KINDS {
            let mut series = vec![0_i64; buckets];
            for c in counts.iter().filter(|c| c.kind == *kind) {
                if let Some(slot) = usize::try_from(c.bucket)
                    .ok()
                    .and_then(|b| series.get_mut(b))
                {
                    *slot += c.n;
                }
            }
            out.push_str(&html::sparkline(label, &series));
        }
        out.push_str("</div>");
        let mut by_provider: BTreeMap<String, Tally> = BTreeMap::new();
        let mut by_tenant: BTreeMap<String, Tally> = BTreeMap::new();
        for c in &counts {
            if c.kind != "queued" && c.kind != "held" {
                let p = c.provider.clone().unwrap_or_else(|| "(no provider)".into());
                by_provider.entry(p).or_default().add(c);
            }
            let t = names
                .get(&c.tenant_id)
                .cloned()
                .unwrap_or_else(|| c.tenant_id.clone());
            by_tenant.entry(t).or_default().add(c);
        }
        out.push_str(&rates_table("By provider", &by_provider));
        out.push_str(&rates_table("By tenant", &by_tenant));
        out.push_str("</section>");
    }
    Ok(out)
}

pub(super) async fn overview(State(st): State<Arc<AppState>>, sess: Session) -> Response {
    match overview_body(&st, &sess).await {
        Ok(body) => page(&sess, StatusCode::OK, "overview", "Overview", None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}

// ---- providers ----------------------------------------------------------------------------

async fn providers_body(
    st: &AppState,
    sess: &Session,
    form: Option<&super::Fields>,
) -> Result<String, ApiError> {
    let cfg = &st.admin.config;
    let health = st.admin.health.views();
    let mut out = String::from(
        "<section><h2>Health</h2><div class=\"scroll\"><table id=\"providers\"><tr><th>Provider</th><th>Type</th><th>State</th><th>Share</th><th>Since</th><th>Reason</th><th>Default route</th></tr>",
    );
    for (name, p) in &cfg.providers {
        let h = health.iter().find(|h| &h.provider == name);
        let state = h.map_or("unknown", |h| h.state.as_str());
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td><span class=\"state {state}\">{state}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(p.kind()),
            h.map_or("–".into(), |h| format!("{}%", h.share)),
            h.map_or("–".into(), |h| when(h.since)),
            esc(h.map_or("", |h| h.reason.as_str())),
            if cfg.routes.default.contains(name) {
                "yes"
            } else {
                "no"
            }
        );
    }
    out.push_str("</table></div></section>");

    let tenants: Vec<_> = st
        .store
        .list_tenants()
        .await?
        .into_iter()
        .filter(|t| sess.admin.sees_tenant_id(&t.id))
        .collect();
    let mut table = ops::route_table(&st.store, cfg).await?;
    table.moves.retain(|m| {
        m.tenant_id
            .as_deref()
            .is_none_or(|t| sess.admin.sees_tenant_id(t))
    });
    let _ = write!(
        out,
        "<section><h2>Routes</h2><p>Default: <code>{}</code></p><div class=\"scroll\"><table><tr><th>Tenant</th><th>Own route</th><th>Sends through</th></tr>",
        esc(&table.default.join(" → "))
    );
    for t in &tenants {
        let own = table
            .tenants
            .get(&t.id)
            .map_or("–".into(), |r| r.join(" → "));
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            esc(&t.name),
            esc(&own),
            esc(&table.resolve(&t.id).join(" → "))
        );
    }
    out.push_str("</table></div><h3>Traffic moves in force</h3><ul id=\"moves\">");
    if table.moves.is_empty() {
        out.push_str("<li class=\"muted\">none</li>");
    }
    for m in &table.moves {
        let scope = m
            .tenant_id
            .as_deref()
            .map_or("all tenants".to_owned(), |id| {
                tenants
                    .iter()
                    .find(|t| t.id == id)
                    .map_or(id.to_owned(), |t| t.name.clone())
            });
        let _ = write!(
            out,
            "<li>{} → {} ({}) since {}</li>",
            esc(&m.from),
            esc(&m.to),
            esc(&scope),
            when(m.created_at)
        );
    }
    out.push_str("</ul></section>");

    if may_change(sess) {
        let names: Vec<String> = cfg.providers.keys().cloned().collect();
        let field = |k: &str| form.and_then(|f| f.get(k));
        let tenant_field = match &sess.admin.who.tenant {
            Some((_, own)) => format!("<p>For tenant <strong>{}</strong>.</p>", esc(own)),
            None => input("tenant", "Tenant (empty: all tenants)", field("tenant"), ""),
        };
        let _ = write!(
            out,
            "<section><h2>Move traffic</h2><p>Sends what would go to one provider to another instead. Moving back undoes the move.</p>\
             <form method=\"post\" action=\"/console/providers\" id=\"move\">{}{}{}{tenant_field}\
             <button type=\"submit\">Move traffic</button></form></section>",
            csrf_field(sess),
            select("from", "From", &names, field("from")),
            select("to", "To", &names, field("to")),
        );
    }
    Ok(out)
}

pub(super) async fn providers(State(st): State<Arc<AppState>>, sess: Session) -> Response {
    match providers_body(&st, &sess, None).await {
        Ok(body) => page(&sess, StatusCode::OK, "providers", "Providers", None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}

/// The route move, as `POST /admin/v1/routes/move` does it.
pub(super) async fn move_traffic(State(st): State<Arc<AppState>>, p: Posted) -> Response {
    let (sess, f) = (&p.sess, &p.form);
    let (from, to) = (f.get("from").unwrap_or(""), f.get("to").unwrap_or(""));
    let result = async {
        let t = tenant_of(&st, &sess.admin, f.get("tenant")).await?;
        let m = ops::move_route(
            &st.store,
            &st.admin.config,
            from,
            to,
            t.as_ref(),
            st.clock.now_ms(),
        )
        .await?;
        let scope = t
            .as_ref()
            .map_or("all tenants".to_owned(), |t| t.name.clone());
        super::record(
            &st,
            &sess.admin,
            "route.move",
            &format!("{from} -> {to} ({scope})"),
            None,
        )
        .await?;
        Ok::<_, ApiError>(match m {
            Some(_) => format!("traffic for {scope} now goes from {from} to {to}"),
            None => format!("move undone: {scope} sends through {to} again"),
        })
    }
    .await;
    let (status, notice) = html::outcome(result, Notice::ok);
    let form = (status != StatusCode::OK).then_some(f);
    match providers_body(&st, sess, form).await {
        Ok(body) => page(sess, status, "providers", "Providers", Some(notice), &body),
        Err(e) => html::error_page(sess, e),
    }
}

// ---- guard ------------------------------------------------------------------------------

pub(super) async fn guard(State(st): State<Arc<AppState>>, sess: Session) -> Response {
    let body = async {
        let mut out = String::from("<section><h2>Containment in force</h2><ul id=\"guard-pauses\">");
        let pauses = visible_pauses(&st, &sess.admin).await?;
        let by_guard: Vec<_> = pauses.iter().filter(|p| p.actor == "guard").collect();
        if by_guard.is_empty() {
            out.push_str("<li class=\"muted\">none: the guard holds nothing now</li>");
        }
        for p in by_guard {
            let _ = write!(
                out,
                "<li><strong>{} {}</strong> held since {}: {}</li>",
                esc(p.scope.kind()),
                esc(p.scope.target()),
                when(p.created_at),
                esc(&p.reason)
            );
        }
        out.push_str("</ul><p><a href=\"/console/held\">Review held messages</a></p></section>");
        out.push_str("<section><h2>Alerts</h2><div class=\"scroll\"><table id=\"alerts\"><tr><th>When</th><th>Signal</th><th>Scope</th><th>Action</th><th>Evidence</th></tr>");
        let alerts = visible_alerts(&st, &sess.admin, 100).await?;
        if alerts.is_empty() {
            out.push_str("<tr><td colspan=\"5\" class=\"muted\">no alerts</td></tr>");
        }
        for a in alerts {
            let evidence = serde_json::to_string_pretty(&a.evidence).unwrap_or_default();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td><pre>{}</pre></td></tr>",
                when(a.at),
                esc(&a.signal),
                esc(&a.scope),
                esc(&a.target),
                esc(&a.action),
                esc(&evidence)
            );
        }
        out.push_str("</table></div></section>");
        Ok::<_, ApiError>(out)
    }
    .await;
    match body {
        Ok(body) => page(&sess, StatusCode::OK, "guard", "Guard", None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}

// ---- audit log --------------------------------------------------------------------------

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    after: Option<u64>,
}

const AUDIT_PAGE: u64 = 50;

pub(super) async fn audit(
    State(st): State<Arc<AppState>>,
    sess: Session,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let body = async {
        // The log is not kept per tenant: it is for admins of the whole installation.
        sess.admin.not_confined()?;
        let after = match q {
            Ok(Query(q)) => q.after,
            Err(e) => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    format!("after must be an entry number: {}", e.body_text()),
                ));
            }
        };
        let (head, _) = st.store.audit_head().await?;
        let after = after.unwrap_or(head.saturating_sub(AUDIT_PAGE));
        let entries = st
            .store
            .audit_entries(after, 0, AUDIT_PAGE as i64)
            .await?;
        let mut out = format!(
            "<section><p>{head} entries. Showing from #{}. Check the chain with <code>postern audit verify</code>.</p><p>",
            after + 1
        );
        if after > 0 {
            let _ = write!(
                out,
                "<a href=\"/console/audit?after={}\">← older</a> ",
                after.saturating_sub(AUDIT_PAGE)
            );
        }
        if after + AUDIT_PAGE < head {
            let _ = write!(
                out,
                "<a href=\"/console/audit?after={}\">newer →</a>",
                after + AUDIT_PAGE
            );
        }
        out.push_str("</p><div class=\"scroll\"><table id=\"audit\"><tr><th>#</th><th>When</th><th>Who</th><th>Action</th><th>Target</th><th>Reason</th><th>Detail</th></tr>");
        for e in &entries {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}<br><span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                e.seq,
                when(e.at),
                esc(&e.actor),
                esc(e.source_ip.as_deref().unwrap_or("")),
                esc(&e.action),
                esc(&e.target),
                esc(e.reason.as_deref().unwrap_or("")),
                esc(&e.detail)
            );
        }
        out.push_str("</table></div></section>");
        Ok(out)
    }
    .await;
    match body {
        Ok(body) => page(&sess, StatusCode::OK, "audit", "Audit log", None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}
