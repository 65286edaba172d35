//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API. Request and answer shapes
//! come from the wire types in `postern-api` (`ToSchema`); each operation is declared below,
//! next to the list the drift test compares with the router (`tests/openapi.rs` fails when a
//! route is served but not documented).

use axum::Json;
use postern_api::admin::*;
use postern_api::*;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
        post_admin_v1_login,
        post_admin_v1_enrol,
        post_admin_v1_logout,
        get_admin_v1_me,
        get_admin_v1_admins,
        post_admin_v1_admins,
        post_admin_v1_admins_name_disable,
        get_admin_v1_tokens,
        post_admin_v1_tokens,
        post_admin_v1_tokens_id_revoke,
        get_admin_v1_tenants,
        post_admin_v1_tenants,
        get_admin_v1_keys,
        post_admin_v1_keys,
        post_admin_v1_keys_id_revoke,
        post_admin_v1_keys_id_rotate,
        get_admin_v1_routes,
        put_admin_v1_routes_tenant,
        delete_admin_v1_routes_tenant,
        post_admin_v1_routes_move,
        get_admin_v1_providers,
        get_admin_v1_pauses,
        post_admin_v1_pause,
        post_admin_v1_resume,
        get_admin_v1_held,
        post_admin_v1_held_release,
        post_admin_v1_held_purge,
        get_admin_v1_suppressions,
        post_admin_v1_suppressions,
        post_admin_v1_suppressions_remove,
        post_admin_v1_suppressions_import,
        get_admin_v1_suppressions_export,
        get_admin_v1_alerts,
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
    path = "/admin/v1/login",
    tag = "admin",
    summary = "Log in (password + TOTP or recovery code); first login enrols",
    request_body = LoginRequest,
    responses((status = 200, description = "Log in (password + TOTP or recovery code); first login enrols", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn post_admin_v1_login() {}

#[utoipa::path(
    post,
    path = "/admin/v1/enrol",
    tag = "admin",
    summary = "Finish enrolment: TOTP code and a new password",
    request_body = EnrolRequest,
    responses((status = 200, description = "Finish enrolment: TOTP code and a new password", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
fn post_admin_v1_enrol() {}

#[utoipa::path(
    post,
    path = "/admin/v1/logout",
    tag = "admin",
    summary = "End the session",
    responses((status = 200, description = "End the session", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_logout() {}

#[utoipa::path(
    get,
    path = "/admin/v1/me",
    tag = "admin",
    summary = "Who is logged in",
    responses((status = 200, description = "Who is logged in", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_me() {}

#[utoipa::path(
    get,
    path = "/admin/v1/admins",
    tag = "admin",
    summary = "Admin accounts",
    responses((status = 200, description = "Admin accounts", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_admins() {}

#[utoipa::path(
    post,
    path = "/admin/v1/admins",
    tag = "admin",
    summary = "Add an admin (one-time password)",
    request_body = AddAdminRequest,
    responses((status = 201, description = "Add an admin (one-time password)", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_admins() {}

#[utoipa::path(
    post,
    path = "/admin/v1/admins/{name}/disable",
    tag = "admin",
    summary = "Disable an admin",
    params(("name" = String, Path)),
    responses((status = 200, description = "Disable an admin", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_admins_name_disable() {}

#[utoipa::path(
    get,
    path = "/admin/v1/tokens",
    tag = "admin",
    summary = "Admin tokens",
    responses((status = 200, description = "Admin tokens", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_tokens() {}

#[utoipa::path(
    post,
    path = "/admin/v1/tokens",
    tag = "admin",
    summary = "Create an admin token (shown once)",
    request_body = CreateTokenRequest,
    responses((status = 201, description = "Create an admin token (shown once)", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_tokens() {}

#[utoipa::path(
    post,
    path = "/admin/v1/tokens/{id}/revoke",
    tag = "admin",
    summary = "Revoke an admin token",
    params(("id" = String, Path)),
    responses((status = 200, description = "Revoke an admin token", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_tokens_id_revoke() {}

#[utoipa::path(
    get,
    path = "/admin/v1/tenants",
    tag = "admin",
    summary = "Tenants",
    responses((status = 200, description = "Tenants", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_tenants() {}

#[utoipa::path(
    post,
    path = "/admin/v1/tenants",
    tag = "admin",
    summary = "Add a tenant",
    request_body = AddTenantRequest,
    responses((status = 201, description = "Add a tenant", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_tenants() {}

#[utoipa::path(
    get,
    path = "/admin/v1/keys",
    tag = "admin",
    summary = "API keys",
    params(("tenant" = Option<String>, Query)),
    responses((status = 200, description = "API keys", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_keys() {}

#[utoipa::path(
    post,
    path = "/admin/v1/keys",
    tag = "admin",
    summary = "Create an API key (shown once)",
    request_body = CreateKeyRequest,
    responses((status = 201, description = "Create an API key (shown once)", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_keys() {}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/revoke",
    tag = "admin",
    summary = "Revoke an API key",
    params(("id" = String, Path)),
    responses((status = 200, description = "Revoke an API key", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_keys_id_revoke() {}

#[utoipa::path(
    post,
    path = "/admin/v1/keys/{id}/rotate",
    tag = "admin",
    summary = "Rotate an API key",
    request_body = RotateKeyRequest,
    params(("id" = String, Path)),
    responses((status = 200, description = "Rotate an API key", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_keys_id_rotate() {}

#[utoipa::path(
    get,
    path = "/admin/v1/routes",
    tag = "admin",
    summary = "Routes and moves",
    responses((status = 200, description = "Routes and moves", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_routes() {}

#[utoipa::path(
    put,
    path = "/admin/v1/routes/{tenant}",
    tag = "admin",
    summary = "Set a tenant's route",
    request_body = SetRouteRequest,
    params(("tenant" = String, Path)),
    responses((status = 200, description = "Set a tenant's route", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn put_admin_v1_routes_tenant() {}

#[utoipa::path(
    delete,
    path = "/admin/v1/routes/{tenant}",
    tag = "admin",
    summary = "Clear a tenant's route",
    params(("tenant" = String, Path)),
    responses((status = 200, description = "Clear a tenant's route", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn delete_admin_v1_routes_tenant() {}

#[utoipa::path(
    post,
    path = "/admin/v1/routes/move",
    tag = "admin",
    summary = "Move traffic off a provider (reversible)",
    request_body = MoveRouteRequest,
    responses((status = 200, description = "Move traffic off a provider (reversible)", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_routes_move() {}

#[utoipa::path(
    get,
    path = "/admin/v1/providers",
    tag = "admin",
    summary = "Providers and their health",
    responses((status = 200, description = "Providers and their health", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_providers() {}

#[utoipa::path(
    get,
    path = "/admin/v1/pauses",
    tag = "admin",
    summary = "Active pauses",
    responses((status = 200, description = "Active pauses", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_pauses() {}

#[utoipa::path(
    post,
    path = "/admin/v1/pause",
    tag = "admin",
    summary = "Pause a scope (the kill switch)",
    request_body = PauseRequest,
    responses((status = 200, description = "Pause a scope (the kill switch)", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_pause() {}

#[utoipa::path(
    post,
    path = "/admin/v1/resume",
    tag = "admin",
    summary = "Resume a scope",
    request_body = PauseRequest,
    responses((status = 200, description = "Resume a scope", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_resume() {}

#[utoipa::path(
    get,
    path = "/admin/v1/held",
    tag = "admin",
    summary = "Held messages",
    params(("tenant" = Option<String>, Query), ("key" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, description = "Held messages", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_held() {}

#[utoipa::path(
    post,
    path = "/admin/v1/held/release",
    tag = "admin",
    summary = "Release held messages",
    request_body = HeldActionRequest,
    responses((status = 200, description = "Release held messages", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_held_release() {}

#[utoipa::path(
    post,
    path = "/admin/v1/held/purge",
    tag = "admin",
    summary = "Purge held messages",
    request_body = HeldActionRequest,
    responses((status = 200, description = "Purge held messages", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_held_purge() {}

#[utoipa::path(
    get,
    path = "/admin/v1/suppressions",
    tag = "admin",
    summary = "Suppressed addresses",
    params(("tenant" = Option<String>, Query)),
    responses((status = 200, description = "Suppressed addresses", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_suppressions() {}

#[utoipa::path(
    post,
    path = "/admin/v1/suppressions",
    tag = "admin",
    summary = "Suppress addresses",
    request_body = SuppressionsRequest,
    responses((status = 200, description = "Suppress addresses", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_suppressions() {}

#[utoipa::path(
    post,
    path = "/admin/v1/suppressions/remove",
    tag = "admin",
    summary = "Remove suppressions",
    request_body = SuppressionsRequest,
    responses((status = 200, description = "Remove suppressions", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_suppressions_remove() {}

#[utoipa::path(
    post,
    path = "/admin/v1/suppressions/import",
    tag = "admin",
    summary = "Import suppressions (CSV)",
    request_body(content = String, content_type = "text/csv"),
    params(("tenant" = Option<String>, Query)),
    responses((status = 200, description = "Import suppressions (CSV)", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn post_admin_v1_suppressions_import() {}

#[utoipa::path(
    get,
    path = "/admin/v1/suppressions/export",
    tag = "admin",
    summary = "Export suppressions (CSV)",
    params(("tenant" = Option<String>, Query)),
    responses((status = 200, description = "Export suppressions (CSV)", body = String, content_type = "text/csv"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_suppressions_export() {}

#[utoipa::path(
    get,
    path = "/admin/v1/alerts",
    tag = "admin",
    summary = "Guard alerts",
    params(("limit" = Option<i64>, Query)),
    responses((status = 200, description = "Guard alerts", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
fn get_admin_v1_alerts() {}

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
