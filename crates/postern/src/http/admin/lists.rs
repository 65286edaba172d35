//! Suppression lists (with CSV import and export) and guard alerts in the admin API.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use postern_api::admin::SuppressionsRequest;
use serde_json::json;

use super::ops::{LimitQuery, Reply, TenantQuery, required_tenant};
use super::{Admin, body, query};
use crate::admin::ops;
use crate::http::{ApiError, AppState};
use crate::store::Suppression;

fn tenant_required(q: &TenantQuery) -> Result<&str, ApiError> {
    q.tenant
        .as_deref()
        .ok_or_else(|| ops::OpError::Invalid("name the tenant: ?tenant=NAME".into()).into())
}

pub(super) async fn suppressions(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    q: Result<Query<TenantQuery>, QueryRejection>,
) -> Reply {
    let q = query(q)?;
    let t = required_tenant(&st, &admin, tenant_required(&q)?).await?;
    Ok(Json(json!(st.store.suppressions(&t.id).await?)))
}

pub(super) async fn suppress(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<SuppressionsRequest>, JsonRejection>,
) -> Reply {
    admin.may_change()?;
    let req = body(req)?;
    let t = required_tenant(&st, &admin, &req.tenant).await?;
    let now = st.clock.now_ms();
    let reason = req.reason.clone().unwrap_or_else(|| "manual".into());
    let list: Vec<Suppression> = ops::checked_addresses(&req.addresses)?
        .into_iter()
        .map(|address| Suppression {
            address,
            reason: reason.clone(),
            source: "admin".into(),
            detail: Some(admin.who.actor.clone()),
            created_at: now,
        })
        .collect();
    let n = st.store.suppress(&t.id, &list).await?;
    let addresses: Vec<&str> = list.iter().map(|s| s.address.as_str()).collect();
    let target = format!("tenant:{}", t.name);
    let detail = json!({"addresses": addresses, "added": n});
    admin
        .audit(&st, "suppression.add", &target, Some(&reason), detail)
        .await?;
    Ok(Json(json!({"added": n, "already": list.len() as u64 - n})))
}

pub(super) async fn unsuppress(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    req: Result<Json<SuppressionsRequest>, JsonRejection>,
) -> Reply {
    admin.may_change()?;
    let req = body(req)?;
    let t = required_tenant(&st, &admin, &req.tenant).await?;
    let addresses = ops::checked_addresses(&req.addresses)?;
    let n = st.store.unsuppress(&t.id, &addresses).await?;
    let target = format!("tenant:{}", t.name);
    let detail = json!({"addresses": addresses, "removed": n});
    admin
        .audit(
            &st,
            "suppression.remove",
            &target,
            req.reason.as_deref(),
            detail,
        )
        .await?;
    Ok(Json(json!({"removed": n})))
}

/// `POST /admin/v1/suppressions/import?tenant=T` with a CSV body (header row with an
/// `address` column); nothing is imported unless every row is good.
pub(super) async fn import(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    q: Result<Query<TenantQuery>, QueryRejection>,
    csv: Bytes,
) -> Reply {
    admin.may_change()?;
    let q = query(q)?;
    let t = required_tenant(&st, &admin, tenant_required(&q)?).await?;
    let list = ops::read_suppression_csv(&csv[..], "the CSV body", st.clock.now_ms())?;
    let n = st.store.suppress(&t.id, &list).await?;
    let target = format!("tenant:{}", t.name);
    let detail = json!({"rows": list.len(), "added": n});
    admin
        .audit(&st, "suppression.import", &target, None, detail)
        .await?;
    Ok(Json(json!({"rows": list.len(), "added": n})))
}

pub(super) async fn export(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    q: Result<Query<TenantQuery>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    let t = required_tenant(&st, &admin, tenant_required(&q)?).await?;
    let list = st.store.suppressions(&t.id).await?;
    let mut out = Vec::new();
    ops::write_suppression_csv(&mut out, &list)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out))
}

pub(super) async fn alerts(
    State(st): State<Arc<AppState>>,
    admin: Admin,
    q: Result<Query<LimitQuery>, QueryRejection>,
) -> Reply {
    let q = query(q)?;
    let mut list = st
        .store
        .alerts(q.limit.unwrap_or(50).clamp(1, 10_000))
        .await?;
    if admin.who.tenant.is_some() {
        let mut visible = Vec::new();
        for a in list {
            let ok = match a.scope.as_str() {
                "tenant" => admin.sees_tenant_id(&a.target),
                "key" => st
                    .store
                    .key(&a.target)
                    .await
                    .is_ok_and(|k| admin.sees_tenant_id(&k.tenant_id)),
                _ => false,
            };
            if ok {
                visible.push(a);
            }
        }
        list = visible;
    }
    Ok(Json(json!(list)))
}
