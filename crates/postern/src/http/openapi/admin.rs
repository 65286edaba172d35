//! The admin API's operations (`/admin/v1/...`) for the OpenAPI document ([`super`]).

use postern_api::ErrorResponse;
use postern_api::admin::*;

#[utoipa::path(
    post,
    path = "/admin/v1/login",
    tag = "admin",
    summary = "Log in (password + TOTP or recovery code); first login enrols",
    request_body = LoginRequest,
    responses((status = 200, description = "Log in (password + TOTP or recovery code); first login enrols", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
pub(super) fn post_admin_v1_login() {}

#[utoipa::path(
    post,
    path = "/admin/v1/enrol",
    tag = "admin",
    summary = "Finish enrolment: TOTP code and a new password",
    request_body = EnrolRequest,
    responses((status = 200, description = "Finish enrolment: TOTP code and a new password", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse))
)]
#[allow(dead_code)]
pub(super) fn post_admin_v1_enrol() {}

#[utoipa::path(
    post,
    path = "/admin/v1/logout",
    tag = "admin",
    summary = "End the session",
    responses((status = 200, description = "End the session", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
pub(super) fn post_admin_v1_logout() {}

#[utoipa::path(
    get,
    path = "/admin/v1/me",
    tag = "admin",
    summary = "Who is logged in",
    responses((status = 200, description = "Who is logged in", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
pub(super) fn get_admin_v1_me() {}

#[utoipa::path(
    get,
    path = "/admin/v1/admins",
    tag = "admin",
    summary = "Admin accounts",
    responses((status = 200, description = "Admin accounts", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
pub(super) fn get_admin_v1_admins() {}

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
pub(super) fn post_admin_v1_admins() {}

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
pub(super) fn post_admin_v1_admins_name_disable() {}

#[utoipa::path(
    get,
    path = "/admin/v1/tokens",
    tag = "admin",
    summary = "Admin tokens",
    responses((status = 200, description = "Admin tokens", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
pub(super) fn get_admin_v1_tokens() {}

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
pub(super) fn post_admin_v1_tokens() {}

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
pub(super) fn post_admin_v1_tokens_id_revoke() {}

#[utoipa::path(
    get,
    path = "/admin/v1/tenants",
    tag = "admin",
    summary = "Tenants",
    responses((status = 200, description = "Tenants", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
pub(super) fn get_admin_v1_tenants() {}

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
pub(super) fn post_admin_v1_tenants() {}

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
pub(super) fn get_admin_v1_keys() {}

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
pub(super) fn post_admin_v1_keys() {}

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
pub(super) fn post_admin_v1_keys_id_revoke() {}

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
pub(super) fn post_admin_v1_keys_id_rotate() {}

#[utoipa::path(
    get,
    path = "/admin/v1/routes",
    tag = "admin",
    summary = "Routes and moves",
    responses((status = 200, description = "Routes and moves", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
pub(super) fn get_admin_v1_routes() {}

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
pub(super) fn put_admin_v1_routes_tenant() {}

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
pub(super) fn delete_admin_v1_routes_tenant() {}

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
pub(super) fn post_admin_v1_routes_move() {}

#[utoipa::path(
    get,
    path = "/admin/v1/providers",
    tag = "admin",
    summary = "Providers and their health",
    responses((status = 200, description = "Providers and their health", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
pub(super) fn get_admin_v1_providers() {}

#[utoipa::path(
    get,
    path = "/admin/v1/pauses",
    tag = "admin",
    summary = "Active pauses",
    responses((status = 200, description = "Active pauses", content_type = "application/json"), (status = "4XX", description = "refused: `{\"error\":{\"code\",\"message\"}}`", body = ErrorResponse), (status = "5XX", description = "the store is unavailable", body = ErrorResponse)),
    security(("admin_session" = []), ("admin_token" = []))
)]
#[allow(dead_code)]
pub(super) fn get_admin_v1_pauses() {}

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
pub(super) fn post_admin_v1_pause() {}

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
pub(super) fn post_admin_v1_resume() {}

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
pub(super) fn get_admin_v1_held() {}

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
pub(super) fn post_admin_v1_held_release() {}

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
pub(super) fn post_admin_v1_held_purge() {}

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
pub(super) fn get_admin_v1_suppressions() {}

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
pub(super) fn post_admin_v1_suppressions() {}

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
pub(super) fn post_admin_v1_suppressions_remove() {}

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
pub(super) fn post_admin_v1_suppressions_import() {}

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
pub(super) fn get_admin_v1_suppressions_export() {}

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
pub(super) fn get_admin_v1_alerts() {}
