//! Pages that act: held messages (summary, preview, release, purge), keys (create, rotate,
//! revoke), the kill switch. Each action goes through the admin API's own checks and the
//! operations it calls; only the forms and the pages are the console's.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use postern_api::admin::{HeldActionRequest, PauseRequest};
use serde::Deserialize;

use super::html::{self, Notice, csrf_field, esc, input, input_in, may_change, page};
use super::{Fields, Posted, Session, record, when};
use crate::admin::ops;
use crate::guard::Pause;
use crate::http::admin::ops::{
    held_action, held_target, own_key, required_tenant, scope_of, scope_target, tenant_of,
    visible_pauses,
};
use crate::http::{ApiError, AppState};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FilterQuery {
    tenant: Option<String>,
    key: Option<String>,
}

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
        e.body_text(),
    )
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

// ---- held messages ----------------------------------------------------------------------

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

// ---- keys -------------------------------------------------------------------------------

async fn keys_body(
    st: &AppState,
    sess: &Session,
    tenant: Option<&str>,
    form: Option<&Fields>,
) -> Result<String, ApiError> {
    let t = tenant_of(st, &sess.admin, tenant).await?;
    let keys = st
        .store
        .list_keys(t.as_ref().map(|t| t.id.as_str()))
        .await?;
    let now = st.clock.now_ms();
    let change = may_change(sess);
    let mut out = String::from(
        "<section><div class=\"scroll\"><table id=\"keys\"><tr><th>Key</th><th>Tenant</th><th>Scopes</th><th>State</th><th>Last used</th><th></th></tr>",
    );
    for k in &keys {
        let state = match (k.revoked_at, k.grace_until, k.expires_at) {
            (Some(at), _, _) => format!("revoked {}", when(at)),
            (None, Some(g), _) if g > now => format!("rotated; works until {}", when(g)),
            (None, Some(_), _) => "rotated; ended".into(),
            (None, None, Some(e)) if e <= now => "expired".into(),
            _ => "active".into(),
        };
        let used = k.last_used_at.map_or("never".into(), |at| {
            format!(
                "{} <span class=\"muted\">{}</span>",
                when(at),
                esc(k.last_ip.as_deref().unwrap_or(""))
            )
        });
        let actions = if change && k.revoked_at.is_none() {
            format!(
                "<form method=\"post\" action=\"/console/keys/{id}/rotate\">{csrf}\
                 <label for=\"g-{id}\">Old key works for</label><input type=\"text\" id=\"g-{id}\" name=\"grace\" value=\"24h\">\
                 <button type=\"submit\" class=\"plain\">Rotate</button></form>\
                 <form method=\"post\" action=\"/console/keys/{id}/revoke\">{csrf}\
                 <label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> revoke now</label>\
                 <button type=\"submit\" class=\"danger\">Revoke</button></form>",
                id = esc(&k.id),
                csrf = csrf_field(sess)
            )
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr><td><code>{}</code><br><span class=\"muted\">{}</span></td><td>{}</td><td>{}</td><td>{state}</td><td>{used}</td><td>{actions}</td></tr>",
            esc(&k.id),
            esc(k.description.as_deref().unwrap_or("")),
            esc(&k.tenant),
            esc(&k.scopes)
        );
    }
    out.push_str("</table></div></section>");
    if change {
        let field = |k: &str| form.and_then(|f| f.get(k));
        let tenant = match &sess.admin.who.tenant {
            Some((_, own)) => format!("<p>Tenant <strong>{}</strong>.</p>", esc(own)),
            None => input("tenant", "Tenant", field("tenant"), ""),
        };
        let _ = write!(
            out,
            "<section><h2>Create a key</h2><form method=\"post\" action=\"/console/keys\" id=\"create-key\">{}{tenant}{}{}{}\
             <label><input type=\"checkbox\" name=\"test\" value=\"yes\"> test key (accepted, never sent)</label>\
             <button type=\"submit\">Create key</button></form></section>",
            csrf_field(sess),
            input(
                "scopes",
                &format!("Scopes ({})", ops::SCOPES.join(", ")),
                Some(field("scopes").unwrap_or("send")),
                ""
            ),
            input("description", "Description", field("description"), ""),
            input(
                "expires",
                "Expires after (90d, 12h; empty: never)",
                field("expires"),
                ""
            ),
        );
    }
    Ok(out)
}

pub(super) async fn keys(
    State(st): State<Arc<AppState>>,
    sess: Session,
    q: Result<Query<FilterQuery>, QueryRejection>,
) -> Response {
    let body = match q {
        Ok(Query(q)) => keys_body(&st, &sess, nonempty(&q.tenant), None).await,
        Err(e) => Err(bad_query(e)),
    };
    match body {
        Ok(body) => page(&sess, StatusCode::OK, "keys", "Keys", None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}

/// After a key action: the keys page with its notice (and the form as typed, on an error).
async fn keys_after(st: &AppState, p: &Posted, r: Result<Notice, ApiError>) -> Response {
    let (status, notice) = match r {
        Ok(n) => (StatusCode::OK, n),
        Err(e) => (e.status, Notice::err(e.message)),
    };
    let form = (status != StatusCode::OK).then_some(&p.form);
    match keys_body(st, &p.sess, None, form).await {
        Ok(body) => page(&p.sess, status, "keys", "Keys", Some(notice), &body),
        Err(e) => html::error_page(&p.sess, e),
    }
}

fn secret_notice(what: &str, id: &str, secret: &str) -> Notice {
    Notice::ok_html(format!(
        "{} <code>{}</code>. Its secret is shown this once; copy it now:<code class=\"secret\" id=\"new-secret\">{}</code>",
        esc(what),
        esc(id),
        esc(secret)
    ))
}

/// `POST /admin/v1/keys`, from a form.
pub(super) async fn create_key(State(st): State<Arc<AppState>>, p: Posted) -> Response {
    let (admin, f) = (&p.sess.admin, &p.form);
    let r = async {
        let named = match (&admin.who.tenant, f.get("tenant")) {
            (None, None) => {
                return Err(ops::OpError::Invalid("name the tenant the key is for".into()).into());
            }
            (_, t) => t.unwrap_or_default(),
        };
        let tenant = if named.is_empty() {
            tenant_of(&st, admin, None).await?.ok_or_else(|| {
                ApiError::from(ops::OpError::Invalid(
                    "name the tenant the key is for".into(),
                ))
            })?
        } else {
            required_tenant(&st, admin, named).await?
        };
        let now = st.clock.now_ms();
        let scopes = ops::scopes(
            f.get("scopes")
                .unwrap_or("")
                .split(|c: char| c == ',' || c.is_whitespace()),
        )?;
        let (policy, expires_at) = ops::KeyLimits {
            flag: "",
            from_domains: Vec::new(),
            rcpt_domains: Vec::new(),
            rate_per_sec: None,
            daily_limit: None,
            allow_ips: Vec::new(),
            expires: f.get("expires").map(str::to_owned),
        }
        .policy(now)?;
        let new = ops::NewKey {
            tenant,
            scopes,
            test: f.checked("test"),
            description: f.get("description").map(str::to_owned),
            policy,
            expires_at,
        };
        let (rec, secret) = ops::create_key(&st.store, new, now).await?;
        record(&st, admin, "key.create", &format!("key:{}", rec.id), None).await?;
        Ok(secret_notice(
            &format!("Created key for tenant {}:", rec.tenant),
            &rec.id,
            secret.expose(),
        ))
    }
    .await;
    keys_after(&st, &p, r).await
}

/// `POST /admin/v1/keys/{id}/rotate`, from a form.
pub(super) async fn rotate_key(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    p: Posted,
) -> Response {
    let admin = &p.sess.admin;
    let r = async {
        let old = own_key(&st, admin, &id).await?;
        let grace = p.form.get("grace").unwrap_or("24h");
        let grace_ms = crate::clock::parse_duration_ms(grace)
            .map_err(|e| ops::OpError::Invalid(format!("grace {grace:?}: {e}")))?;
        let old_id = old.id.clone();
        let (new, secret) = ops::rotate_key(&st.store, old, grace_ms, st.clock.now_ms()).await?;
        record(&st, admin, "key.rotate", &format!("key:{old_id}"), None).await?;
        Ok(secret_notice(
            &format!("Rotated {old_id}; its successor is"),
            &new.id,
            secret.expose(),
        ))
    }
    .await;
    keys_after(&st, &p, r).await
}

/// `POST /admin/v1/keys/{id}/revoke`, from a form that must be confirmed.
pub(super) async fn revoke_key(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    p: Posted,
) -> Response {
    let admin = &p.sess.admin;
    let r = async {
        if !p.form.checked("confirm") {
            return Err(ops::OpError::Invalid("tick \"revoke now\" to confirm".into()).into());
        }
        let k = own_key(&st, admin, &id).await?;
        st.store.revoke_key(&k.id, st.clock.now_ms()).await?;
        record(&st, admin, "key.revoke", &format!("key:{}", k.id), None).await?;
        Ok(Notice::ok(format!("revoked key {}", k.id)))
    }
    .await;
    keys_after(&st, &p, r).await
}

// ---- kill switch ------------------------------------------------------------------------

/// What the kill switch pauses: everything, or a tenant-admin's own tenant.
fn kill_request(sess: &Session, reason: Option<&str>) -> PauseRequest {
    match &sess.admin.who.tenant {
        Some((_, own)) => PauseRequest {
            scope: "tenant".into(),
            target: Some(own.clone()),
            reason: reason.map(str::to_owned),
        },
        None => PauseRequest {
            scope: "all".into(),
            target: None,
            reason: reason.map(str::to_owned),
        },
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct KillQuery {
    confirm: Option<String>,
}

async fn kill_body(
    st: &AppState,
    sess: &Session,
    confirm: Option<&str>,
) -> Result<String, ApiError> {
    let (scope, label) = scope_of(st, &sess.admin, &kill_request(sess, None)).await?;
    let pauses = visible_pauses(st, &sess.admin).await?;
    let mine = pauses.iter().find(|p| p.scope == scope);
    let mut out = match mine {
        Some(p) => format!(
            "<div class=\"banner paused\" id=\"kill-state\">SENDING PAUSED ({})</div><p>Since {} by {}: {}</p>",
            esc(&label),
            when(p.created_at),
            esc(&p.actor),
            esc(&p.reason)
        ),
        None => format!(
            "<div class=\"banner running\" id=\"kill-state\">Sending is running ({})</div>",
            esc(&label)
        ),
    };
    let action = if mine.is_some() { "resume" } else { "pause" };
    if may_change(sess) {
        match confirm {
            Some(c) if c == action => {
                let (text, class) = if action == "pause" {
                    (format!("Yes, pause {} now", label), "danger big")
                } else {
                    (format!("Yes, resume {} now", label), "big")
                };
                let _ = write!(
                    out,
                    "<section><h2>Are you sure?</h2><p>{}</p><form method=\"post\" action=\"/console/kill\" id=\"kill-confirm\">{}\
                     <input type=\"hidden\" name=\"action\" value=\"{action}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
                     <label for=\"f-reason\">Reason</label><input type=\"text\" id=\"f-reason\" name=\"reason\">\
                     <button type=\"submit\" class=\"{class}\" id=\"kill-yes\">{}</button></form>\
                     <p><a href=\"/console/kill\">Cancel</a></p></section>",
                    if action == "pause" {
                        "New messages are accepted and held; nothing is sent until you resume. Held messages are released in accept order on resume."
                    } else {
                        "Messages held by this pause are released in accept order and sent."
                    },
                    csrf_field(sess),
                    esc(&text)
                );
            }
            _ => {
                let (text, class) = if action == "pause" {
                    ("PAUSE ALL SENDING", "danger big")
                } else {
                    ("Resume sending", "big")
                };
                let _ = write!(
                    out,
                    "<section><form method=\"get\" action=\"/console/kill\"><input type=\"hidden\" name=\"confirm\" value=\"{action}\">\
                     <button type=\"submit\" class=\"{class}\" id=\"kill-button\">{text}</button></form></section>"
                );
            }
        }
    }
    out.push_str("<section><h2>All pauses in force</h2><ul id=\"pauses\">");
    if pauses.is_empty() {
        out.push_str("<li class=\"muted\">none</li>");
    }
    for p in &pauses {
        let _ = write!(
            out,
            "<li>{} {} — by {} since {}: {}</li>",
            esc(p.scope.kind()),
            esc(p.scope.target()),
            esc(&p.actor),
            when(p.created_at),
            esc(&p.reason)
        );
    }
    out.push_str("</ul></section>");
    Ok(out)
}

pub(super) async fn kill(
    State(st): State<Arc<AppState>>,
    sess: Session,
    q: Result<Query<KillQuery>, QueryRejection>,
) -> Response {
    let body = match q {
        Ok(Query(q)) => kill_body(&st, &sess, q.confirm.as_deref()).await,
        Err(e) => Err(bad_query(e)),
    };
    match body {
        Ok(body) => page(&sess, StatusCode::OK, "kill", "Kill switch", None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}

/// Pause or resume (as `POST /admin/v1/pause` and `/resume`), only with the confirmation.
pub(super) async fn kill_act(State(st): State<Arc<AppState>>, p: Posted) -> Response {
    let (sess, f) = (&p.sess, &p.form);
    let r = async {
        let action = f.get("action").unwrap_or("");
        if !matches!(action, "pause" | "resume") {
            return Err(ops::OpError::Invalid("action must be pause or resume".into()).into());
        }
        if f.get("confirm") != Some("yes") {
            return Err(ops::OpError::Invalid(format!(
                "not confirmed: press the {action} button, then confirm"
            ))
            .into());
        }
        let req = kill_request(sess, f.get("reason"));
        let (scope, label) = scope_of(&st, &sess.admin, &req).await?;
        let now = st.clock.now_ms();
        let actor = &sess.admin.who.actor;
        if action == "pause" {
            let pause = Pause {
                scope: scope.clone(),
                reason: req
                    .reason
                    .clone()
                    .unwrap_or_else(|| "kill switch (console)".into()),
                actor: actor.clone(),
                created_at: now,
            };
            let new = st.store.pause(&pause).await?;
            record(
                &st,
                &sess.admin,
                "pause",
                &scope_target(&scope),
                Some(&pause.reason),
            )
            .await?;
            Ok(if new {
                format!("paused {label}: nothing is sent until you resume")
            } else {
                format!("{label} was paused already")
            })
        } else {
            let (was, released) = st.store.resume(&scope, actor, now).await?;
            record(
                &st,
                &sess.admin,
                "resume",
                &scope_target(&scope),
                req.reason.as_deref(),
            )
            .await?;
            Ok(if was {
                format!("resumed {label}; {released} held message(s) released")
            } else {
                format!("{label} was not paused")
            })
        }
    }
    .await;
    let (status, notice) = html::outcome(r, Notice::ok);
    match kill_body(&st, sess, None).await {
        Ok(body) => page(sess, status, "kill", "Kill switch", Some(notice), &body),
        Err(e) => html::error_page(sess, e),
    }
}
