//! Pages that act: keys (create, rotate, revoke) and the kill switch (held messages are in
//! `held.rs`). Each action goes through the admin API's own checks and the
//! operations it calls; only the forms and the pages are the console's.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use postern_api::admin::PauseRequest;
use serde::Deserialize;

use super::html::{self, Notice, csrf_field, esc, input, may_change, page};
use super::{Fields, Posted, Session, record, when};
use crate::admin::ops;
use crate::guard::Pause;
use crate::http::admin::ops::{
    own_key, required_tenant, scope_of, scope_target, tenant_of, visible_pauses,
};
use crate::http::{ApiError, AppState};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FilterQuery {
    pub tenant: Option<String>,
    pub key: Option<String>,
}

pub(super) fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request",
        e.body_text(),
    )
}

pub(super) fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
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
