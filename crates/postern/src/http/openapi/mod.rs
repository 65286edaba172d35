//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API. Request and answer shapes
//! come from the wire types in `postern-api` (`ToSchema`); each operation is declared below,
//! next to the list the drift test compares with the router (`tests/openapi.rs` fails when a
//! route is served but not documented).

use axum::Json;
use postern_api::*;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

mod admin;

/// The routes served but deliberately left out of the API document (HTML pages, not API);
/// each entry covers the paths below it too (`/console/...`).
pub const UNDOCUMENTED: &[&str] = &["/console", "/openapi.json"];

pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document, for tests and tools.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        c.add_security_scheme(
            "api_key",
            bearer("a tenant API key (pst_live_… / pst_test_…)"),
        );
        c.add_security_scheme("admin_token", bearer("an admin token (pst_admin_…)"));
        c.add_security_scheme(
            "admin_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "postern_admin",
                "the session cookie POST /admin/v1/login sets",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Postern", description = "Self-hosted outbound messaging gateway: the HTTP API (v1) and the admin API."),
    modifiers(&Security),
    components(schemas(ErrorResponse, ErrorDetail, AcceptStatus, MessageEvent, RecipientStatus)),
    paths(
        post_v1_messages,
        get_v1_messages_id,
        post_v1_feedback_raw,
        post_v1_feedback_ses,
        get_status,
        get_status_json,
        get_status_feed_atom,
        post_v1_keys_leaked,
        get_healthz,
        get_readyz,
        get_metrics,
        admin::post_admin_v1_login,
        admin::post_admin_v1_enrol,
        admin::post_admin_v1_logout,
        admin::get_admin_v1_me,
        admin::get_admin_v1_admins,
        admin::post_admin_v1_admins,
        admin::post_admin_v1_admins_name_disable,
        admin::get_admin_v1_tokens,
        admin::post_admin_v1_tokens,
        admin::post_admin_v1_tokens_id_revoke,
        admin::get_admin_v1_tenants,
        admin::post_admin_v1_tenants,
        admin::get_admin_v1_keys,
        admin::post_admin_v1_keys,
        admin::post_admin_v1_keys_id_revoke,
        admin::post_admin_v1_keys_id_rotate,
        admin::get_admin_v1_routes,
        admin::put_admin_v1_routes_tenant,
        admin::delete_admin_v1_routes_tenant,
        admin::post_admin_v1_routes_move,
        admin::get_admin_v1_providers,
        admin::get_admin_v1_pauses,
        admin::post_admin_v1_pause,
        admin::post_admin_v1_resume,
        admin::get_admin_v1_held,
        admin::post_admin_v1_held_release,
        admin::post_admin_v1_held_purge,
        admin::get_admin_v1_suppressions,
        admin::post_admin_v1_suppressions,
        admin::post_admin_v1_suppressions_remove,
        admin::post_admin_v1_suppressions_import,
        admin::get_admin_v1_suppressions_export,
        admin::get_admin_v1_alerts,
    )
)]
struct ApiDoc;

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    summary = "Accept a message",
    request_body = SendMessageRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeat-safe submission")),
    responses((status = 202, description = "Accept a message", body = SendMessageResponse), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("api_key" = []))
)]
#[allow(dead_code)]
fn post_v1_messages() {}

#[utoipa::path(
    get,
    path = "/v1/messages/{id}",
    tag = "messages",
    summary = "A message's status, recipients and events",
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, description = "A message's status, recipients and events", body = MessageView), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("api_key" = []))
)]
#[allow(dead_code)]
fn get_v1_messages_id() {}

#[utoipa::path(
    post,
    path = "/v1/feedback/raw",
    tag = "feedback",
    summary = "Submit a raw bounce, complaint or auto-reply (message/rfc822)",
    request_body(content = String, content_type = "message/rfc822", description = "the report as received"),
    responses((status = 202, description = "Submit a raw bounce, complaint or auto-reply (message/rfc822)", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("api_key" = []))
)]
#[allow(dead_code)]
fn post_v1_feedback_raw() {}

#[utoipa::path(
    post,
    path = "/v1/keys/leaked",
    tag = "keys",
    summary = "Leaked-key report (GitHub secret-scanning partner format)",
    request_body(content = String, content_type = "application/json", description = "[{\"token\",\"type\",\"url\",\"source\"}], signed (Github-Public-Key-Identifier, Github-Public-Key-Signature)"),
    responses((status = 200, description = "Leaked-key report (GitHub secret-scanning partner format)", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn post_v1_keys_leaked() {}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "ops",
    summary = "The process is up",
    responses((status = 200, description = "The process is up", body = HealthResponse), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn get_healthz() {}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "ops",
    summary = "The store answers (503 otherwise)",
    responses((status = 200, description = "The store answers (503 otherwise)", body = HealthResponse), (status = 503, description = "not ready", body = HealthResponse), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn get_readyz() {}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "ops",
    summary = "Prometheus/OpenMetrics text",
    responses((status = 200, description = "Prometheus/OpenMetrics text", body = String, content_type = "application/openmetrics-text"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn get_metrics() {}

#[utoipa::path(
    post,
    path = "/v1/feedback/ses",
    tag = "feedback",
    summary = "Amazon SNS notification (SES Bounce, Complaint, Delivery), authenticated by its SNS signature",
    request_body(content = String, content_type = "text/plain", description = "the SNS message (JSON text)"),
    responses((status = 200, description = "taken", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn post_v1_feedback_ses() {}

#[utoipa::path(
    get,
    path = "/status",
    tag = "status",
    summary = "The public status page (HTML)",
    responses((status = 200, description = "the status page", body = String, content_type = "text/html"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn get_status() {}

#[utoipa::path(
    get,
    path = "/status.json",
    tag = "status",
    summary = "Channel states and incidents (JSON)",
    responses((status = 200, description = "channel states and incidents", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn get_status_json() {}

#[utoipa::path(
    get,
    path = "/status/feed.atom",
    tag = "status",
    summary = "Incidents as an Atom 1.0 feed",
    responses((status = 200, description = "the feed", body = String, content_type = "application/atom+xml"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn get_status_feed_atom() {}
