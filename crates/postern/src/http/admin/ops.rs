//! The admin API's operations: the same library calls as the command line
//! ([`crate::admin::ops`]), with role checks in front.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use postern_api::admin::{
    AddTenantRequest, CreateKeyRequest, HeldActionRequest, MoveRouteRequest, PauseRequest,
    RotateKeyRequest, SetRouteRequest,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, body, query};
use crate::admin::ops;
use crate::clock::rfc3339;
use crate::guard::{Pause, PauseScope};
use crate::http::{ApiError, AppState};

pub(super) type Reply = Result<Json<Value>, ApiError>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantQuery {
    pub(super) tenant: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct HeldQuery {
    tenant: Option<String>,
    key: Option<String>,
    limit: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitQuery {
    pub(super) limit: Option<i64>,
}

/// A tenant named in a request, within what this admin may touch.
async fn tenant_of(
    st: &AppState,
    admin: &Admin,
    name: Option<&str>,
) -> Result<Option<crate::store::Tenant>, ApiError> {
    let name = admin.tenant(name)?;
    Ok(ops::tenant_if(&st.store, name).await?)
}

pub(super) async fn required_tenant(
    st: &AppState,
    admin: &Admin,
    name: &str,
) -> Result<crate::store::Tenant, ApiError> {
    let name = admin.tenant(Some(name))?;
    Ok(ops::tenant(&st.store, name.unwrap_or_default()).await?)
}

// ---- tenants and keys -------------------------------------------------------------------

pub(super) async fn tenants(State(st): State<Arc<AppState>>, admin: Admin) -> Reply {
    let list: Vec<_> = st
        .store
        .list_tenants()
        .await?
        .into_iter()
        .filter(|t| admin.sees_tenant_id(&t.id))
        .collect();
    Ok(Json(json!(list)))
}

pub(super) async fn add_tenant(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<AddTenantRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.may_change()?;
    admin.not_confined()?;
    let req = body(req)?;
    let t = ops::add_tenant(&st.store, &req.name, st.clock.now_ms()).await?;
    let target = format!("tenant:{}", t.name);
    admin
        .audit(&st, "tenant.add", &target, None, json!({"id": t.id}))
        .await?;
    Ok((StatusCode::CREATED, Json(json!(t))))
}

pub(super) async fn keys(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    q: Result<Query<TenantQuery>, QueryRejection>,
) -> Reply {
    let q = query(q)?;
    let t = tenant_of(&st, &admin, q.tenant.as_deref()).await?;
    let keys = st
        .store
        .list_keys(t.as_ref().map(|t| t.id.as_str()))
        .await?;
    Ok(Json(json!(keys)))
}

pub(super) async fn create_key(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<CreateKeyRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    admin.may_change()?;
    let req = body(req)?;
    let tenant = required_tenant(&st, &admin, &req.tenant).await?;
    let now = st.clock.now_ms();
    let scopes = ops::scopes(req.scopes.iter().map(String::as_str))?;
    let (policy, expires_at) = ops::KeyLimits {
        flag: "",
        from_domains: req.from_domains,
        rcpt_domains: req.rcpt_domains,
        rate_per_sec: req.rate_per_sec,
        daily_limit: req.daily_limit,
        allow_ips: req.allow_ips,
        expires: req.expires,
    }
    .policy(now)?;
    let new = ops::NewKey {
        tenant,
        scopes,
        test: req.test,
        description: req.description,
        policy,
        expires_at,
    };
    let (rec, secret) = ops::create_key(&st.store, new, now).await?;
    let detail = json!({"tenant": rec.tenant, "scopes": rec.scopes, "policy": rec.policy, "expires_at": rec.expires_at, "description": rec.description});
    admin
        .audit(&st, "key.create", &format!("key:{}", rec.id), None, detail)
        .await?;
    let mut v = json!(rec);
    v["secret"] = secret.expose().into();
    Ok((StatusCode::CREATED, Json(v)))
}

/// A key this admin may act on.
async fn own_key(
    st: &AppState,
    admin: &Admin,
    id: &str,
) -> Result<crate::store::KeyRecord, ApiError> {
    let k = ops::key(&st.store, id).await?;
    admin.tenant_id(&k.tenant_id)?;
    Ok(k)
}

pub(super) async fn revoke_key(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> Reply {
    admin.may_change()?;
    let k = own_key(&st, &admin, &id).await?;
    st.store.revoke_key(&k.id, st.clock.now_ms()).await?;
    admin
        .audit(&st, "key.revoke", &format!("key:{}", k.id), None, json!({}))
        .await?;
    Ok(Json(json!({"id": k.id, "revoked": true})))
}

pub(super) async fn rotate_key(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
    req: Result<Json<RotateKeyRequest>, JsonRejection>,
) -> Reply {
    admin.may_change()?;
    let req = body(req)?;
    let old = own_key(&st, &admin, &id).await?;
    let grace = req.grace.as_deref().unwrap_or("24h");
    let grace_ms = crate::clock::parse_duration_ms(grace)
        .map_err(|e| ops::OpError::Invalid(format!("grace: {e}")))?;
    let now = st.clock.now_ms();
    let old_id = old.id.clone();
    let (new, secret) = ops::rotate_key(&st.store, old, grace_ms, now).await?;
    let detail = json!({"successor": new.id, "grace_until": now + grace_ms});
    admin
        .audit(&st, "key.rotate", &format!("key:{old_id}"), None, detail)
        .await?;
    Ok(Json(
        json!({"id": new.id, "secret": secret.expose(), "replaces": old_id, "old_key_works_until": rfc3339(now + grace_ms)}),
    ))
}

// ---- routes and providers ---------------------------------------------------------------

pub(super) async fn routes(State(st): State<Arc<AppState>>, admin: Admin) -> Reply {
    let tenants: Vec<_> = st
        .store
        .list_tenants()
        .await?
        .into_iter()
        .filter(|t| admin.sees_tenant_id(&t.id))
        .collect();
    let mut table = ops::route_table(&st.store, &st.admin.config).await?;
    table.moves.retain(|m| {
        m.tenant_id
            .as_deref()
            .is_none_or(|t| admin.sees_tenant_id(t))
    });
    table.tenants.retain(|t, _| admin.sees_tenant_id(t));
    Ok(Json(ops::routes_view(&table, &tenants)))
}

pub(super) async fn set_route(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    Path(tenant): Path<String>,
    req: Result<Json<SetRouteRequest>, JsonRejection>,
) -> Reply {
    admin.may_change()?;
    let req = body(req)?;
    let t = required_tenant(&st, &admin, &tenant).await?;
    let list = ops::set_route(
        &st.store,
        &st.admin.config,
        &t,
        &req.providers,
        st.clock.now_ms(),
    )
    .await?;
    let target = format!("tenant:{}", t.name);
    admin
        .audit(&st, "route.set", &target, None, json!({"route": list}))
        .await?;
    Ok(Json(json!({"tenant": t.name, "route": list})))
}

pub(super) async fn clear_route(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    Path(tenant): Path<String>,
) -> Reply {
    admin.may_change()?;
    let t = required_tenant(&st, &admin, &tenant).await?;
    st.store.set_route(&t.id, &[], st.clock.now_ms()).await?;
    let target = format!("tenant:{}", t.name);
    admin
        .audit(&st, "route.clear", &target, None, json!({}))
        .await?;
    Ok(Json(
        json!({"tenant": t.name, "route": st.admin.config.routes.default}),
    ))
}

pub(super) async fn move_route(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<MoveRouteRequest>, JsonRejection>,
) -> Reply {
    admin.may_change()?;
    let req = body(req)?;
    let t = tenant_of(&st, &admin, req.tenant.as_deref()).await?;
    let m = ops::move_route(
        &st.store,
        &st.admin.config,
        &req.from,
        &req.to,
        t.as_ref(),
        st.clock.now_ms(),
    )
    .await?;
    let tenant = t.map(|t| t.name);
    let detail = json!({"from": req.from, "to": req.to, "tenant": tenant, "in_force": m.is_some()});
    let target = format!("provider:{}", req.from.trim());
    admin
        .audit(&st, "route.move", &target, None, detail.clone())
        .await?;
    Ok(Json(detail))
}

pub(super) async fn providers(State(st): State<Arc<AppState>>, _admin: Admin) -> Reply {
    let cfg = &st.admin.config;
    let health = st.admin.health.views();
    let list: Vec<Value> = cfg
        .providers
        .iter()
        .map(|(name, p)| {
            let h = health.iter().find(|h| &h.provider == name);
            json!({
                "name": name,
                "type": p.kind(),
                "in_default_route": cfg.routes.default.contains(name),
                "health": h.map(|h| h.state.as_str()),
                "share": h.map(|h| h.share),
                "since": h.map(|h| rfc3339(h.since)),
                "reason": h.map(|h| h.reason.clone()),
            })
        })
        .collect();
    Ok(Json(json!(list)))
}

// ---- pauses and held messages -----------------------------------------------------------

/// A pause scope this admin may use: a tenant-admin only its tenant or one of its keys.
async fn scope_of(
    st: &AppState,
    admin: &Admin,
    req: &PauseRequest,
) -> Result<(PauseScope, String), ApiError> {
    let kind = req.scope.trim();
    let target = match kind {
        "tenant" => admin.tenant(req.target.as_deref())?,
        "key" => req.target.as_deref(),
        _ => {
            admin.not_confined()?;
            req.target.as_deref()
        }
    };
    let (scope, label) = ops::pause_scope(&st.store, &st.admin.config, kind, target).await?;
    if let PauseScope::Key(id) = &scope {
        own_key(st, admin, id).await?;
    }
    Ok((scope, label))
}

pub(super) async fn pauses(State(st): State<Arc<AppState>>, admin: Admin) -> Reply {
    let mut out = Vec::new();
    for p in st.store.pauses().await? {
        let visible = match &p.scope {
            PauseScope::Tenant(t) => admin.sees_tenant_id(t),
            PauseScope::Key(k) => match st.store.key(k).await {
                Ok(k) => admin.sees_tenant_id(&k.tenant_id),
                Err(_) => admin.who.tenant.is_none(),
            },
            _ => true,
        };
        if visible {
            out.push(p);
        }
    }
    Ok(Json(json!(out)))
}

pub(super) async fn pause(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<PauseRequest>, JsonRejection>,
) -> Reply {
    admin.may_change()?;
    let req = body(req)?;
    let (scope, label) = scope_of(&st, &admin, &req).await?;
    let p = Pause {
        scope,
        reason: req
            .reason
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "no reason given".into()),
        actor: admin.who.actor.clone(),
        created_at: st.clock.now_ms(),
    };
    let new = st.store.pause(&p).await?;
    admin
        .audit(
            &st,
            "pause",
            &scope_target(&p.scope),
            Some(&p.reason),
            json!({"already": !new}),
        )
        .await?;
    Ok(Json(json!({"paused": p, "label": label, "already": !new})))
}

pub(super) async fn resume(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<PauseRequest>, JsonRejection>,
) -> Reply {
    admin.may_change()?;
    let req = body(req)?;
    let (scope, label) = scope_of(&st, &admin, &req).await?;
    let (was, released) = st
        .store
        .resume(&scope, &admin.who.actor, st.clock.now_ms())
        .await?;
    let detail = json!({"was_paused": was, "released": released});
    admin
        .audit(
            &st,
            "resume",
            &scope_target(&scope),
            req.reason.as_deref(),
            detail,
        )
        .await?;
    Ok(Json(
        json!({"resumed": scope, "label": label, "was_paused": was, "released": released}),
    ))
}

pub(super) async fn held(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    q: Result<Query<HeldQuery>, QueryRejection>,
) -> Reply {
    let q = query(q)?;
    let tenant = admin.tenant(q.tenant.as_deref())?;
    let f = ops::held_filter(&st.store, tenant, q.key.as_deref(), None, "").await?;
    let (total, list) = st
        .store
        .held(&f, q.limit.unwrap_or(100).clamp(0, 10_000))
        .await?;
    Ok(Json(json!({"total": total, "messages": list})))
}

async fn held_action(
    st: &AppState,
    admin: &Admin,
    req: &HeldActionRequest,
) -> Result<crate::store::HeldFilter, ApiError> {
    admin.may_change()?;
    let tenant = admin.tenant(req.tenant.as_deref())?;
    Ok(ops::held_filter(&st.store, tenant, req.key.as_deref(), Some(req.all), "").await?)
}

pub(super) async fn release(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<HeldActionRequest>, JsonRejection>,
) -> Reply {
    let req = body(req)?;
    let f = held_action(&st, &admin, &req).await?;
    let why = req.reason.as_deref().unwrap_or("released by an operator");
    let n = st
        .store
        .release_held(&f, &admin.who.actor, why, st.clock.now_ms())
        .await?;
    admin
        .audit(
            &st,
            "held.release",
            &held_target(&req),
            req.reason.as_deref(),
            json!({"released": n}),
        )
        .await?;
    Ok(Json(json!({"released": n})))
}

pub(super) async fn purge(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<HeldActionRequest>, JsonRejection>,
) -> Reply {
    let req = body(req)?;
    let reason = ops::purge_reason(req.reason.as_deref().unwrap_or(""), "")?.to_owned();
    let f = held_action(&st, &admin, &req).await?;
    let n = st
        .store
        .purge_held(&f, &admin.who.actor, &reason, st.clock.now_ms())
        .await?;
    admin
        .audit(
            &st,
            "held.purge",
            &held_target(&req),
            Some(&reason),
            json!({"purged": n}),
        )
        .await?;
    Ok(Json(json!({"purged": n, "by": admin.who.actor})))
}

/// What a held-message action applied to, as the audit log names it (like the CLI).
fn held_target(r: &HeldActionRequest) -> String {
    let parts: Vec<String> = [("tenant", &r.tenant), ("key", &r.key)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}:{v}")))
        .collect();
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(",")
    }
}

/// A pause scope as the audit log names it: `all`, `tenant:ID`, `key:ID`, ...
fn scope_target(scope: &PauseScope) -> String {
    format!("{}:{}", scope.kind(), scope.target())
        .trim_end_matches(':')
        .to_owned()
}
