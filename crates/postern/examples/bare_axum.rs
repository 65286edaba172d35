//! The reference for bench/accept.sh: a bare axum JSON handler answering like
//! `POST /v1/messages` (202 `{"id":"x","status":"queued"}`), with no authentication,
//! validation or storage. It parses the JSON body, as Postern's handler does.
//!
//! Listens on the address given as the first argument (`127.0.0.1:PORT`, or just `PORT` for
//! 127.0.0.1), else on `$BARE_AXUM_LISTEN`, else on 127.0.0.1:8099.

use axum::Json;
use axum::http::StatusCode;
use axum::routing::post;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let arg = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BARE_AXUM_LISTEN").ok())
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    let addr = if arg.contains(':') {
        arg
    } else {
        format!("127.0.0.1:{arg}")
    };
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
    eprintln!("bare_axum listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
