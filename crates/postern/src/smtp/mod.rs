//! SMTP submission (RFC 6409 style): AUTH with an API key as the password, STARTTLS, SIZE,
//! PIPELINING. Accepted messages go to the same acceptor as the HTTP API.

mod command;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use command::{Command, ParseError, parse};

use crate::auth::KeyAuthenticator;
use crate::clock::SharedClock;
use crate::queue::Acceptor;

pub struct SessionContext {
    pub acceptor: Acceptor,
    pub keys: KeyAuthenticator,
    pub clock: SharedClock,
    pub hostname: String,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub retry_window_ms: i64,
    pub allow_plaintext_auth: bool,
    /// How long a read from the client may take: a command, an AUTH answer, a line of mail
    /// data, the TLS handshake.
    pub idle_timeout: Duration,
    pub tls: Option<TlsAcceptor>,
    /// Set on the bounce listener: no AUTH, mail only to the bounce domain, and what arrives
    /// is feedback to apply rather than a message to send.
    pub inbound: Option<Inbound>,
}

/// The bounce listener's settings.
pub struct Inbound {
    pub bounce_domain: String,
    pub store: crate::store::Store,
    pub suppression: crate::config::SuppressionConfig,
    pub metrics: crate::telemetry::Metrics,
    pub guard: Option<crate::guard::Guard>,
}

/// Accepts connections until `stop`, then lets open sessions finish their current command
/// (they answer 421 to the next one) for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let (ctx, stop) = (ctx.clone(), stop.clone());
                    sessions.spawn(async move {
                        if let Err(e) = handle(sock, peer, ctx, stop).await {
                            tracing::debug!(%peer, error = %e, "SMTP session ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SMTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
}

async fn handle(
    sock: TcpStream,
    peer: SocketAddr,
    ctx: Arc<SessionContext>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let _ = sock.set_nodelay(true);
    match session::Session::new(&ctx, peer, false)
        .run(sock, stop.clone())
        .await?
    {
        session::End::Closed => Ok(()),
        session::End::StartTls(sock) => {
            let Some(tls) = ctx.tls.clone() else {
                return Ok(());
            };
            let stream = tokio::time::timeout(ctx.idle_timeout, tls.accept(sock))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            session::Session::new(&ctx, peer, true)
                .run(stream, stop)
                .await
                .map(|_| ())
        }
    }
}
