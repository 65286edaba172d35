//! The reference for bench/accept: a bare axum JSON handler answering like POST /v1/messages,
//! with no authentication, validation or storage. `bare_axum 127.0.0.1:PORT`.

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    let app = axum::Router::new().route(
        "/v1/messages",
        post(|Json(_body): Json<serde_json::Value>| async {
            (
                StatusCode::ACCEPTED,
                Json(serde_json::json!({"id": "x", "status": "queued"})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
