//! Held messages: the summary (count, top recipient domains, sample subjects), a preview,
//! release and purge, through the admin API's checks and the store calls it makes.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use postern_api::admin::HeldActionRequest;

use super::actions::{FilterQuery, bad_query, nonempty};
use super::html::{self, Notice, csrf_field, esc, input, input_in, may_change, page};
use super::{Fields, Posted, Session, record, when};
use crate::admin::ops;
use crate::http::admin::ops::{held_action, held_target, visible_pauses};
use crate::http::{ApiError, AppState};

async fn held_body(
    st: &AppState,
    sess: &Session,
    tenant: Option<&str>,
    key: Option<&str>,
) -> Result<String, ApiError> {
    let t = sess.admin.tenant(tenant)?;
    let f = ops::held_filter(&st.store, t, key, None, "").await?;
    let (total, list) = st.store.held(&f, 20).await?;
    let sample = st.store.held_sample(&f, 2000).await?;
    let mut domains: HashMap<String, i64> = HashMap::new();
    let mut subjects: Vec<String> = Vec::new();
    for (rcpts, subject) in &sample {
        for r in rcpts {
            let d = r.rsplit_once('@').map_or(r.as_str(), |(_, d)| d);
            *domains.entry(d.to_ascii_lowercase()).or_default() += 1;
        }
        let s = subject.clone().unwrap_or_else(|| "(no subject)".into());
        if subjects.len() < 10 && !subjects.contains(&s) {
            subjects.push(s);
        }
    }
    let mut domains: Vec<_> = domains.into_iter().collect();
    domains.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let scope = match (t, key) {
        (None, None) => "all tenants".to_owned(),
        (t, k) => format!("tenant {} key {}", t.unwrap_or("*"), k.unwrap_or("*")),
    };
    let mut out = format!(
        "<section><form method=\"get\" action=\"/console/held\">{}{}<button type=\"submit\" class=\"plain\">Filter</button></form></section>\
         <section><h2>Summary ({})</h2><p><strong id=\"held-total\" style=\"font-size:1.6rem\">{total}</strong> held message(s).</p>",
        if sess.admin.who.tenant.is_some() {
            String::new()
        } else {
            input("tenant", "Tenant", t, "")
        },
        input("key", "Key id", key, ""),
        esc(&scope)
    );
    out.push_str("<h3>Top recipient domains</h3><ul id=\"held-domains\">");
    for (d, n) in domains.iter().take(10) {
        let _ = write!(out, "<li>{} — {n}</li>", esc(d));
    }
    out.push_str("</ul><h3>Sample subjects</h3><ul id=\"held-subjects\">");
    for s in &subjects {
        let _ = write!(out, "<li>{}</li>", esc(s));
    }
    out.push_str("</ul><h3>Oldest held</h3><div class=\"scroll\"><table id=\"held\"><tr><th>Message</th><th>Subject</th><th>From</th><th>Held by</th><th>Since</th></tr>");
    for m in &list {
        let _ = write!(
            out,
            "<tr><td><a href=\"/console/held/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.id),
            esc(&m.id),
            esc(m.subject.as_deref().unwrap_or("")),
            esc(&m.mail_from),
            esc(m.held_by.as_deref().unwrap_or("")),
            when(m.created_at)
        );
    }
    out.push_str("</table></div></section>");
    let pauses = visible_pauses(st, &sess.admin).await?;
    if !pauses.is_empty() {
        out.push_str("<section id=\"held-pauses\"><h2>Pauses in force</h2><ul>");
        for p in &pauses {
            let _ = write!(
                out,
                "<li>{} {} — by {}: {}</li>",
                esc(p.scope.kind()),
                esc(p.scope.target()),
                esc(&p.actor),
                esc(&p.reason)
            );
        }
        out.push_str("</ul><p>A released message that one of these still covers is held again at its next attempt. To send those, resume the pause (<a href=\"/console/kill\">Kill switch</a>, or <code>postern resume</code>): that releases what it held, in accept order.</p></section>");
    }
    if may_change(sess) {
        let scope_fields = |id: &str| {
            let tenant = match &sess.admin.who.tenant {
                Some((_, own)) => format!("<p>Tenant <strong>{}</strong>.</p>", esc(own)),
                None => input_in(id, "tenant", "Tenant (empty: any)", t, ""),
            };
            format!(
                "{}{tenant}{}<label><input type=\"checkbox\" name=\"all\" value=\"yes\" id=\"{id}-all\"> every held message in this scope</label>",
                csrf_field(sess),
                input_in(id, "key", "Key id (empty: any)", key, "")
            )
        };
        let _ = write!(
            out,
            "<section><h2>Release</h2><p>Released messages go back to the queue in accept order and are sent. Messages still under a pause stay held.</p>\
             <form method=\"post\" action=\"/console/held/release\" id=\"release\">{}{}\
             <button type=\"submit\">Release</button></form></section>\
             <section><h2>Purge</h2><p>Purged messages are never sent. This is final; say why.</p>\
             <form method=\"post\" action=\"/console/held/purge\" id=\"purge\">{}{}\
             <button type=\"submit\" class=\"danger\">Purge</button></form></section>",
            scope_fields("release"),
            input_in("release", "reason", "Reason (optional)", None, ""),
            scope_fields("purge"),
            input_in("purge", "reason", "Reason (required)", None, ""),
        );
    }
    Ok(out)
}

pub(super) async fn held(
    State(st): State<Arc<AppState>>,
    sess: Session,
    q: Result<Query<FilterQuery>, QueryRejection>,
) -> Response {
    let body = match q {
        Ok(Query(q)) => held_body(&st, &sess, nonempty(&q.tenant), nonempty(&q.key)).await,
        Err(e) => Err(bad_query(e)),
    };
    match body {
        Ok(body) => page(&sess, StatusCode::OK, "held", "Held messages", None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}

fn held_request(f: &Fields) -> HeldActionRequest {
    HeldActionRequest {
        tenant: f.get("tenant").map(str::to_owned),
        key: f.get("key").map(str::to_owned),
        all: f.checked("all"),
        reason: f.get("reason").map(str::to_owned),
    }
}

/// After a held action: the held page with its notice.
async fn held_after(st: &AppState, p: &Posted, r: Result<String, ApiError>) -> Response {
    let (status, notice) = html::outcome(r, Notice::ok);
    let (t, k) = (p.form.get("tenant"), p.form.get("key"));
    match held_body(st, &p.sess, t, k).await {
        Ok(body) => page(
            &p.sess,
            status,
            "held",
            "Held messages",
            Some(notice),
            &body,
        ),
        Err(e) => html::error_page(&p.sess, e),
    }
}

/// `POST /admin/v1/held/release`, from a form.
pub(super) async fn release(State(st): State<Arc<AppState>>, p: Posted) -> Response {
    let req = held_request(&p.form);
    let r = async {
        let f = held_action(&st, &p.sess.admin, &req).await?;
        let why = req.reason.as_deref().unwrap_or("released by an operator");
        let n = st
            .store
            .release_held(&f, &p.sess.admin.who.actor, why, st.clock.now_ms())
            .await?;
        let target = held_target(&req);
        record(
            &st,
            &p.sess.admin,
            "held.release",
            &target,
            req.reason.as_deref(),
        )
        .await?;
        Ok(format!("released {n} message(s)"))
    }
    .await;
    held_after(&st, &p, r).await
}

/// `POST /admin/v1/held/purge`, from a form: the reason is required.
pub(super) async fn purge(State(st): State<Arc<AppState>>, p: Posted) -> Response {
    let req = held_request(&p.form);
    let r = async {
        let reason = ops::purge_reason(req.reason.as_deref().unwrap_or(""), "")?.to_owned();
        let f = held_action(&st, &p.sess.admin, &req).await?;
        let n = st
            .store
            .purge_held(&f, &p.sess.admin.who.actor, &reason, st.clock.now_ms())
            .await?;
        let target = held_target(&req);
        record(&st, &p.sess.admin, "held.purge", &target, Some(&reason)).await?;
        Ok(format!("purged {n} message(s): they will never be sent"))
    }
    .await;
    held_after(&st, &p, r).await
}

/// Shown of a held message's raw content, at most.
const PREVIEW_BYTES: usize = 64 * 1024;

pub(super) async fn preview(
    State(st): State<Arc<AppState>>,
    sess: Session,
    Path(id): Path<String>,
) -> Response {
    let body = async {
        let m = match st.store.held_message(&id).await {
            Err(crate::store::StoreError::NotFound) => {
                return Err(ApiError::not_found(&format!("held message {id}")));
            }
            r => r?,
        };
        if !sess.admin.sees_tenant_id(&m.tenant_id) {
            return Err(ApiError::not_found(&format!("held message {id}")));
        }
        let raw = String::from_utf8_lossy(&m.raw[..m.raw.len().min(PREVIEW_BYTES)]).into_owned();
        let cut = if m.raw.len() > PREVIEW_BYTES {
            format!("<p class=\"muted\">first {PREVIEW_BYTES} of {} bytes</p>", m.raw.len())
        } else {
            String::new()
        };
        Ok(format!(
            "<section><table><tr><th>Id</th><td>{}</td></tr><tr><th>Subject</th><td id=\"subject\">{}</td></tr>\
             <tr><th>From</th><td>{}</td></tr><tr><th>To</th><td>{}</td></tr><tr><th>Key</th><td>{}</td></tr>\
             <tr><th>Held by</th><td>{}</td></tr><tr><th>Accepted</th><td>{}</td></tr></table></section>\
             <section><h2>Content</h2>{cut}<pre id=\"raw\">{}</pre></section><p><a href=\"/console/held\">Back to held messages</a></p>",
            esc(&m.id),
            esc(m.subject.as_deref().unwrap_or("")),
            esc(&m.mail_from),
            esc(&m.recipients.join(", ")),
            esc(m.key_id.as_deref().unwrap_or("")),
            esc(m.held_by.as_deref().unwrap_or("")),
            when(m.created_at),
            esc(&raw)
        ))
    }
    .await;
    match body {
        Ok(body) => page(&sess, StatusCode::OK, "held", "Held message", None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}
