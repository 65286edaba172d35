//! Relay to any SMTP server, over lettre's connection-level API so each recipient gets its own
//! outcome (lettre's high-level `send` gives up on the first refused recipient). Connections
//! are pooled and reused across messages.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use super::{
    Delivery, FailureClass, OutboundMessage, Provider, ProviderError, ProviderWideKind,
    RecipientOutcome,
};
use crate::config::{ProviderConfig, SmtpTls};

/// Idle connections older than this are closed rather than reused (servers time out idle
/// clients after a few minutes; reusing one that is about to close costs a failed attempt).
const MAIL_FROM: &str = "MAIL FROM";
const END_OF_DATA: &str = "end of DATA";

const MAX_IDLE: Duration = Duration::from_secs(30);

pub struct SmtpProvider {
    name: String,
    host: String,
    port: u16,
    tls: SmtpTls,
    accept_invalid_certs: bool,
    credentials: Option<(String, SecretString)>,
    hello: ClientId,
    timeout: Duration,
    permits: Semaphore,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

fn wide(kind: ProviderWideKind, code: Option<u16>, msg: String) -> ProviderError {
    ProviderError::new(FailureClass::ProviderWide(kind), code, msg)
}

fn code_of(e: &lettre::transport::smtp::Error) -> Option<u16> {
    e.status().map(u16::from)
}

/// Classifies an error to a whole-transaction command (MAIL FROM, DATA, end of data).
fn classify(stage: &str, e: &lettre::transport::smtp::Error) -> ProviderError {
    let code = code_of(e);
    let text = format!("{stage}: {e}");
    match code {
        // The connection broke before the content was sent: the server certainly has not
        // taken the message. After it was sent (end of DATA) nobody can tell, so that one
        // stays transient.
        None if !e.is_response() && stage != END_OF_DATA => {
            wide(ProviderWideKind::Unavailable, code, text)
        }
        Some(421) => wide(ProviderWideKind::Unavailable, code, text),
        Some(454) | Some(452) if stage == MAIL_FROM => {
            wide(ProviderWideKind::Throttled, code, text)
        }
        Some(530) | Some(534) | Some(535) => wide(ProviderWideKind::AuthFailed, code, text),
        Some(_) if e.is_permanent() => ProviderError::new(FailureClass::Permanent, code, text),
        _ => ProviderError::new(FailureClass::Transient, code, text),
    }
}

impl SmtpProvider {
    pub fn new(name: &str, cfg: &ProviderConfig, default_hello: &str) -> anyhow::Result<Self> {
        let ProviderConfig::Smtp {
            host,
            port,
            tls,
            username,
            password,
            max_connections,
            timeout_secs,
            hello_name,
            danger_accept_invalid_certs,
        } = cfg
        else {
            anyhow::bail!("provider {name} is not an smtp provider");
        };
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (None, None) => None,
            _ => anyhow::bail!("provider {name}: set both username and password, or neither"),
        };
        Ok(Self {
            name: name.to_owned(),
            host: host.clone(),
            port: *port,
            tls: *tls,
            accept_invalid_certs: *danger_accept_invalid_certs,
            credentials,
            hello: ClientId::Domain(
                hello_name
                    .clone()
                    .unwrap_or_else(|| default_hello.to_owned()),
            ),
            timeout: Duration::from_secs(*timeout_secs),
            permits: Semaphore::new((*max_connections).max(1)),
            idle: Mutex::new(Vec::new()),
        })
    }

    fn tls_parameters(&self) -> Result<TlsParameters, ProviderError> {
        TlsParameters::builder(self.host.clone())
            .dangerous_accept_invalid_certs(self.accept_invalid_certs)
            .build_rustls()
            .map_err(|e| {
                wide(
                    ProviderWideKind::Unavailable,
                    None,
                    format!("TLS setup: {e}"),
                )
            })
    }

    /// Connects, upgrades and authenticates within the timeout: a server that stalls mid-way
    /// must not hold a delivery slot forever.
    async fn connect(&self) -> Result<AsyncSmtpConnection, ProviderError> {
        tokio::time::timeout(self.timeout, self.open())
            .await
            .unwrap_or_else(|_| {
                Err(wide(
                    ProviderWideKind::Unavailable,
                    None,
                    format!(
                        "connect to {}:{}: no answer within {:?}",
                        self.host, self.port, self.timeout
                    ),
                ))
            })
    }

    async fn open(&self) -> Result<AsyncSmtpConnection, ProviderError> {
        let implicit = if self.tls == SmtpTls::Tls {
            Some(self.tls_parameters()?)
        } else {
            None
        };
        let unavailable = |e: lettre::transport::smtp::Error| {
            let code = code_of(&e);
            wide(
                ProviderWideKind::Unavailable,
                code,
                format!("connect to {}:{}: {e}", self.host, self.port),
            )
        };
        let mut conn = if let Some(tls) = implicit {
            AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &self.hello,
                Some(tls),
                None,
            )
            .await
            .map_err(unavailable)?
        } else {
            // Our own socket, for TCP_NODELAY: lettre writes the end-of-data dot separately
            // from the content, and with Nagle's algorithm that second write waits for the
            // peer's delayed ACK (40 ms per message on Linux).
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| {
                    wide(
                        ProviderWideKind::Unavailable,
                        None,
                        format!("connect to {}:{}: {e}", self.host, self.port),
                    )
                })?;
            let _ = tcp.set_nodelay(true);
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                .await
                .map_err(unavailable)?
        };
        if self.tls == SmtpTls::Starttls {
            if !conn.can_starttls() {
                return Err(wide(
                    ProviderWideKind::Unavailable,
                    None,
                    "server does not offer STARTTLS".into(),
                ));
            }
            conn.starttls(self.tls_parameters()?, &self.hello)
                .await
                .map_err(unavailable)?;
        }
        if let Some((user, pass)) = &self.credentials {
            let creds = Credentials::new(user.clone(), pass.expose_secret().to_owned());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds)
                .await
                .map_err(|e| {
                    // The error text is the server's answer; it never contains the password.
                    let code = code_of(&e);
                    if code == Some(454) || e.is_transient() {
                        wide(ProviderWideKind::Unavailable, code, format!("AUTH: {e}"))
                    } else {
                        wide(
                            ProviderWideKind::AuthFailed,
                            code,
                            format!("AUTH refused: {e}"),
                        )
                    }
                })?;
        }
        Ok(conn)
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && !conn.has_broken() {
                return Some(conn);
            }
        }
        None
    }

    async fn timed_transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        msg: &OutboundMessage,
    ) -> Result<Delivery, ProviderError> {
        tokio::time::timeout(self.timeout * 4, self.transaction(conn, msg))
            .await
            .unwrap_or_else(|_| {
                Err(ProviderError::new(
                    FailureClass::Transient,
                    None,
                    "SMTP transaction timed out",
                ))
            })
    }

    /// Keeps a connection that is still in a clean state for the next message.
    async fn release(
        &self,
        mut conn: AsyncSmtpConnection,
        result: Result<Delivery, ProviderError>,
    ) -> Result<Delivery, ProviderError> {
        match &result {
            Ok(_) => self.put_idle(conn),
            // A refused command may leave a transaction open; RSET makes the connection clean.
            Err(e)
                if e.code.is_some() && e.code != Some(421) && conn.command(Rset).await.is_ok() =>
            {
                self.put_idle(conn)
            }
            Err(_) => conn.abort().await,
        }
        result
    }

    fn put_idle(&self, conn: AsyncSmtpConnection) {
        if !conn.has_broken() {
            self.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((conn, Instant::now()));
        }
    }

    /// One SMTP transaction. `Err` only for whole-transaction failures; refused recipients
    /// are outcomes.
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        msg: &OutboundMessage,
    ) -> Result<Delivery, ProviderError> {
        let bad_address = |a: &str| {
            ProviderError::new(
                FailureClass::Permanent,
                None,
                format!("invalid address {a:?}"),
            )
        };
        let from = if msg.mail_from.is_empty() {
            None
        } else {
            Some(Address::from_str(&msg.mail_from).map_err(|_| bad_address(&msg.mail_from))?)
        };
        let mut params = vec![];
        if !msg.raw.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        conn.command(Mail::new(from, params))
            .await
            .map_err(|e| classify(MAIL_FROM, &e))?;

        let mut outcomes: Vec<(String, Option<RecipientOutcome>)> =
            Vec::with_capacity(msg.recipients.len());
        for rcpt in &msg.recipients {
            let outcome = match Address::from_str(rcpt) {
                Err(_) => Some(RecipientOutcome::Bounced {
                    code: None,
                    reason: format!("invalid address {rcpt:?}"),
                }),
                Ok(addr) => match conn.command(Rcpt::new(addr, vec![])).await {
                    Ok(_) => None,
                    // 552 to RCPT is "too many recipients": to be taken as temporary (RFC
                    // 5321 4.5.3.1.10). Checked before the 5xx arm.
                    Err(e) if code_of(&e) == Some(552) => Some(RecipientOutcome::Deferred {
                        code: code_of(&e),
                        reason: format!("RCPT TO: {e}"),
                    }),
                    Err(e) if e.is_permanent() => Some(RecipientOutcome::Bounced {
                        code: code_of(&e),
                        reason: format!("RCPT TO: {e}"),
                    }),
                    // No reply code (the connection failed, the reply did not parse), or 421
                    // (the server is closing): the whole transaction failed, not this address.
                    // lettre's `is_response()` means a malformed reply, not "a 4xx/5xx reply".
                    Err(e) if code_of(&e) == Some(421) || !e.is_transient() => {
                        return Err(classify("RCPT TO", &e));
                    }
                    Err(e) => Some(RecipientOutcome::Deferred {
                        code: code_of(&e),
                        reason: format!("RCPT TO: {e}"),
                    }),
                },
            };
            outcomes.push((rcpt.clone(), outcome));
        }
        if outcomes.iter().all(|(_, o)| o.is_some()) {
            conn.command(Rset).await.map_err(|e| classify("RSET", &e))?;
        } else {
            let whole = |stage: &str, e: lettre::transport::smtp::Error| classify(stage, &e);
            conn.command(Data).await.map_err(|e| whole("DATA", e))?;
            let resp = match conn.message(&msg.raw).await {
                Ok(r) => r,
                // A truncated reply has no code: that is the connection failing, not a verdict.
                Err(e)
                    if (e.is_transient() || e.is_permanent())
                        && code_of(&e).is_some_and(|c| c != 421) =>
                {
                    // The server refused the content: every accepted recipient shares the fate.
                    let reason = format!("end of DATA: {e}");
                    let o = if e.is_permanent() {
                        RecipientOutcome::Bounced {
                            code: code_of(&e),
                            reason,
                        }
                    } else {
                        RecipientOutcome::Deferred {
                            code: code_of(&e),
                            reason,
                        }
                    };
                    for (_, slot) in outcomes.iter_mut().filter(|(_, s)| s.is_none()) {
                        *slot = Some(o.clone());
                    }
                    return Ok(finish(outcomes, ""));
                }
                Err(e) => return Err(classify(END_OF_DATA, &e)),
            };
            let text = format!(
                "{} {}",
                u16::from(resp.code()),
                resp.message().collect::<Vec<_>>().join(" ")
            );
            return Ok(finish(outcomes, &text));
        }
        Ok(finish(outcomes, ""))
    }
}

fn finish(outcomes: Vec<(String, Option<RecipientOutcome>)>, accepted: &str) -> Delivery {
    Delivery {
        recipients: outcomes
            .into_iter()
            .map(|(r, o)| {
                (
                    r,
                    o.unwrap_or_else(|| RecipientOutcome::Delivered {
                        response: accepted.to_owned(),
                    }),
                )
            })
            .collect(),
    }
}

#[async_trait]
impl Provider for SmtpProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let _permit = self.permits.acquire().await.map_err(|_| {
            ProviderError::new(FailureClass::Transient, None, "provider is shutting down")
        })?;
        // A pooled connection may have been closed by the server while idle. If it breaks at
        // MAIL FROM, nothing can have been accepted, so retry once on a fresh connection.
        if let Some(mut conn) = self.take_idle() {
            let result = self.timed_transaction(&mut conn, msg).await;
            match &result {
                Err(e) if e.code.is_none() && e.message.starts_with(MAIL_FROM) => {
                    conn.abort().await
                }
                _ => return self.release(conn, result).await,
            }
        }
        let mut conn = self.connect().await?;
        let result = self.timed_transaction(&mut conn, msg).await;
        self.release(conn, result).await
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        let mut conn = self.connect().await?;
        let _ = conn.quit().await;
        Ok(())
    }

    async fn shutdown(&self) {
        let conns: Vec<_> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for (mut c, _) in conns {
            let _ = c.quit().await;
        }
    }
}
