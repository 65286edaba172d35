//! One SMTP submission session: a state machine over a buffered stream. Replies are buffered
//! and flushed only when the client has nothing more pipelined, so a pipelined batch of
//! commands costs one write.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::SessionContext;
use super::command::{Command, parse};
use crate::auth::Principal;
use crate::compose::prepare_submission;
use crate::domain::EmailAddress;
use crate::store::{Inserted, NewMessage};

/// RFC 5321 asks servers to take command lines of at least 512 octets; AUTH responses can be
/// longer, so a little more is allowed.
const MAX_COMMAND_LINE: usize = 2048;
/// As Postfix's `smtpd_hard_error_limit`.
const MAX_ERRORS: u32 = 20;

pub(super) enum End<S> {
    Closed,
    /// The client asked for TLS: the raw stream, with any pipelined plaintext discarded.
    StartTls(S),
}

/// One line as read: its bytes with the line ending still on them.
enum Line {
    Text(Vec<u8>),
    /// Longer than allowed, read to its end and dropped; `crlf`: it ended in CRLF.
    TooLong {
        crlf: bool,
    },
    Eof,
}

/// A command line as text: its ending (and any stray CR before it) taken off.
fn command_text(mut raw: Vec<u8>) -> String {
    while matches!(raw.last(), Some(b'\n' | b'\r')) {
        raw.pop();
    }
    String::from_utf8_lossy(&raw).into_owned()
}

/// The content of one line of mail data, and whether it ended in CRLF (otherwise in a bare LF).
fn data_line(raw: &[u8]) -> (&[u8], bool) {
    match raw.strip_suffix(b"\r\n") {
        Some(content) => (content, true),
        None => (raw.strip_suffix(b"\n").unwrap_or(raw), false),
    }
}

#[derive(Default)]
struct Transaction {
    from: String,
    rcpts: Vec<String>,
}

pub(super) struct Session<'a> {
    ctx: &'a Arc<SessionContext>,
    peer: SocketAddr,
    tls: bool,
    greeted: bool,
    principal: Option<Principal>,
    tx: Option<Transaction>,
    errors: u32,
    out: Vec<u8>,
}

impl<'a> Session<'a> {
    pub(super) fn new(ctx: &'a Arc<SessionContext>, peer: SocketAddr, tls: bool) -> Self {
        Self {
            ctx,
            peer,
            tls,
            greeted: false,
            principal: None,
            tx: None,
            errors: 0,
            out: Vec::with_capacity(512),
        }
    }

    fn reply(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn error(&mut self, line: &str) {
        self.errors += 1;
        self.reply(line);
    }

    /// [`Self::error`] for handlers that return early.
    fn fail(&mut self, line: &str) -> std::io::Result<()> {
        self.error(line);
        Ok(())
    }

    fn auth_allowed(&self) -> bool {
        self.tls || self.peer.ip().is_loopback() || self.ctx.allow_plaintext_auth
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, w: &mut S) -> std::io::Result<()> {
        if !self.out.is_empty() {
            w.write_all(&self.out).await?;
            w.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads one line of at most `max` octets. An over-long line is consumed to its end and
    /// reported, so the session can answer and go on.
    ///
    /// `idle` bounds each wait for more bytes, not the whole line: a long line that keeps
    /// arriving is not cut off. A wait that runs out is an error of kind `TimedOut`.
    async fn read_line<S: AsyncRead + Unpin>(
        r: &mut BufReader<S>,
        max: usize,
        idle: std::time::Duration,
    ) -> std::io::Result<Line> {
        let mut buf = Vec::new();
        let mut too_long = false;
        // The last two bytes read, to tell how an over-long line ended.
        let mut tail = [0u8; 2];
        loop {
            let chunk = tokio::time::timeout(idle, r.fill_buf())
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            if chunk.is_empty() {
                return Ok(Line::Eof);
            }
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            for &b in chunk[..take].iter().rev().take(2).rev() {
                tail = [tail[1], b];
            }
            if !too_long {
                buf.extend_from_slice(&chunk[..take]);
                if buf.len() > max + 2 {
                    too_long = true;
                    buf.clear();
                }
            }
            r.consume(take);
            if done {
                break;
            }
        }
        if too_long {
            return Ok(Line::TooLong {
                crlf: tail == *b"\r\n",
            });
        }
        Ok(Line::Text(buf))
    }

    /// [`Self::read_line`] within the idle timeout. A client silent for that long is told so
    /// and the session ends (RFC 5321 4.5.3.2: a server should time out rather than wait
    /// forever), in the middle of AUTH or DATA as between commands.
    async fn read_line_timed<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        r: &mut BufReader<S>,
        max: usize,
    ) -> std::io::Result<Line> {
        match Self::read_line(r, max, self.ctx.idle_timeout).await {
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                self.close_idle(r).await?;
                Err(e)
            }
            line => line,
        }
    }

    /// Tells a client silent for the idle timeout that the session ends.
    async fn close_idle<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        r: &mut BufReader<S>,
    ) -> std::io::Result<()> {
        self.reply("421 4.4.2 Idle too long, closing connection");
        self.flush(r.get_mut()).await
    }

    /// Runs until QUIT, EOF, shutdown, or STARTTLS.
    pub(super) async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        mut self,
        stream: S,
        mut stop: watch::Receiver<bool>,
    ) -> std::io::Result<End<S>> {
        let mut r = BufReader::new(stream);
        if !self.tls {
            self.reply(&format!("220 {} ESMTP Postern ready", self.ctx.hostname));
        }
        loop {
            if r.buffer().is_empty() {
                self.flush(r.get_mut()).await?;
            }
            if self.errors >= MAX_ERRORS {
                self.reply("421 4.7.0 Too many errors, closing connection");
                self.flush(r.get_mut()).await?;
                return Ok(End::Closed);
            }
            let line = tokio::select! {
                l = Self::read_line(&mut r, MAX_COMMAND_LINE, self.ctx.idle_timeout) => l,
                _ = stop.changed() => {
                    self.reply("421 4.3.2 Service shutting down, try again later");
                    self.flush(r.get_mut()).await?;
                    return Ok(End::Closed);
                }
            };
            let line = match line {
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    self.close_idle(&mut r).await?;
                    return Ok(End::Closed);
                }
                l => l?,
            };
            let line = match line {
                Line::Eof => return Ok(End::Closed),
                Line::TooLong { .. } => {
                    self.error("500 5.5.6 Line too long");
                    continue;
                }
                Line::Text(l) => command_text(l),
            };
            let cmd = match parse(&line) {
                Ok(c) => c,
                Err(e) => {
                    self.error(&e.to_string());
                    continue;
                }
            };
            match cmd {
                Command::Ehlo(_) => {
                    self.greeted = true;
                    self.tx = None;
                    let mut lines = vec![
                        self.ctx.hostname.clone(),
                        "PIPELINING".into(),
                        format!("SIZE {}", self.ctx.max_message_bytes),
                        "8BITMIME".into(),
                        "ENHANCEDSTATUSCODES".into(),
                    ];
                    if !self.tls && self.ctx.tls.is_some() {
                        lines.push("STARTTLS".into());
                    }
                    if self.auth_allowed() {
                        lines.push("AUTH PLAIN LOGIN".into());
                    }
                    lines.push("HELP".into());
                    let n = lines.len();
                    for (i, l) in lines.iter().enumerate() {
                        self.reply(&format!("250{}{l}", if i + 1 == n { ' ' } else { '-' }));
                    }
                }
                Command::Helo(_) => {
                    self.greeted = true;
                    self.tx = None;
                    self.reply(&format!("250 {}", self.ctx.hostname));
                }
                Command::StartTls => {
                    if self.tls {
                        self.error("503 5.5.1 TLS already active");
                    } else if self.ctx.tls.is_none() {
                        self.error("454 4.7.0 TLS not available");
                    } else {
                        self.reply("220 2.0.0 Ready to start TLS");
                        self.flush(r.get_mut()).await?;
                        // Anything pipelined after STARTTLS was sent in clear text and must
                        // not be executed inside the TLS session (CVE-2011-0411).
                        return Ok(End::StartTls(r.into_inner()));
                    }
                }
                Command::Auth { mechanism, initial } => {
                    self.auth(&mut r, &mechanism, initial).await?
                }
                Command::Mail { from, size } => self.mail(from, size).await,
                Command::Rcpt { to } => self.rcpt(to),
                Command::Data => self.data(&mut r).await?,
                Command::Rset => {
                    self.tx = None;
                    self.reply("250 2.0.0 Ok");
                }
                Command::Noop => self.reply("250 2.0.0 Ok"),
                Command::Vrfy => self.reply("252 2.5.0 Cannot VRFY user, but will accept message"),
                Command::Help => self.reply(
                    "214 2.0.0 See RFC 5321; AUTH with your Postern API key as the password",
                ),
                Command::Quit => {
                    self.reply("221 2.0.0 Bye");
                    self.flush(r.get_mut()).await?;
                    return Ok(End::Closed);
                }
            }
        }
    }

    async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        r: &mut BufReader<S>,
        mechanism: &str,
        initial: Option<String>,
    ) -> std::io::Result<()> {
        if !self.greeted {
            return self.fail("503 5.5.1 Send EHLO first");
        }
        if self.principal.is_some() {
            return self.fail("503 5.5.1 Already authenticated");
        }
        if self.tx.is_some() {
            return self.fail("503 5.5.1 AUTH not allowed during a mail transaction");
        }
        if !self.auth_allowed() {
            return self.fail("538 5.7.11 Encryption required: use STARTTLS first");
        }
        let password = match mechanism {
            "PLAIN" => {
                let resp = match initial {
                    Some(i) if i != "=" => i,
                    Some(_) => String::new(),
                    None => match self.challenge(r, "").await? {
                        Some(l) => l,
                        None => return Ok(()),
                    },
                };
                let Some(decoded) = B64.decode(resp.trim()).ok() else {
                    return self.fail("501 5.5.2 Cannot decode AUTH PLAIN response");
                };
                let mut parts = decoded.split(|&b| b == 0);
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(_), Some(_), Some(pass), None) => {
                        String::from_utf8_lossy(pass).into_owned()
                    }
                    _ => {
                        return self.fail("501 5.5.2 AUTH PLAIN expects authzid\\0user\\0password");
                    }
                }
            }
            "LOGIN" => {
                let user = match initial {
                    Some(u) => u,
                    None => match self.challenge(r, "VXNlcm5hbWU6").await? {
                        Some(l) => l,
                        None => return Ok(()),
                    },
                };
                if B64.decode(user.trim()).is_err() {
                    return self.fail("501 5.5.2 Cannot decode AUTH LOGIN response");
                }
                let Some(pass) = self.challenge(r, "UGFzc3dvcmQ6").await? else {
                    return Ok(());
                };
                match B64.decode(pass.trim()) {
                    Ok(p) => String::from_utf8_lossy(&p).into_owned(),
                    Err(_) => return self.fail("501 5.5.2 Cannot decode AUTH LOGIN response"),
                }
            }
            _ => {
                return self.fail("504 5.5.4 Unrecognized authentication type; use PLAIN or LOGIN");
            }
        };
        match self
            .ctx
            .keys
            .authenticate(password.trim(), "send", Some(self.peer.ip()))
            .await
        {
            Ok(p) => {
                tracing::debug!(key = %p.key_id, peer = %self.peer, "SMTP AUTH succeeded");
                self.principal = Some(p);
                self.reply("235 2.7.0 Authentication successful");
            }
            Err(crate::auth::AuthError::Store(_)) => {
                self.error("454 4.7.0 Temporary authentication failure")
            }
            Err(e) => {
                tracing::info!(peer = %self.peer, reason = %e, "SMTP AUTH refused");
                self.error("535 5.7.8 Authentication credentials invalid");
            }
        }
        Ok(())
    }

    /// Sends a 334 challenge and reads the answer; `None` if the client cancelled with `*`.
    async fn challenge<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        r: &mut BufReader<S>,
        prompt: &str,
    ) -> std::io::Result<Option<String>> {
        self.reply(&format!("334 {prompt}"));
        self.flush(r.get_mut()).await?;
        match self.read_line_timed(r, MAX_COMMAND_LINE).await? {
            Line::Text(l) => match command_text(l) {
                l if l.trim() == "*" => {
                    self.error("501 5.0.0 Authentication cancelled");
                    Ok(None)
                }
                l => Ok(Some(l)),
            },
            Line::TooLong { .. } => {
                self.error("500 5.5.6 Line too long");
                Ok(None)
            }
            Line::Eof => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }

    async fn mail(&mut self, from: String, size: Option<usize>) {
        if !self.greeted {
            return self.error("503 5.5.1 Send EHLO first");
        }
        if self.principal.is_none() && self.ctx.inbound.is_none() {
            return self.error("530 5.7.0 Authentication required");
        }
        if self.tx.is_some() {
            return self.error("503 5.5.1 Nested MAIL command");
        }
        // The key is checked again for every message: revoked, expired or rotated out while
        // the session stays open, it sends no more, and the session must authenticate anew.
        if let Some(who) = self.principal.take() {
            match self.ctx.keys.recheck(&who, "send").await {
                Ok(who) => self.principal = Some(who),
                // The key could not be read: a passing fault, not a verdict on the key.
                Err(e @ crate::auth::AuthError::Store(_)) => {
                    self.principal = Some(who);
                    return self.error(&format!("451 4.3.0 {e}; try again"));
                }
                Err(e) => {
                    tracing::info!(peer = %self.peer, reason = %e, "SMTP session's key no longer valid");
                    return self.error(&format!("530 5.7.0 Authentication required: {e}"));
                }
            }
        }
        if size.is_some_and(|s| s > self.ctx.max_message_bytes) {
            return self.error("552 5.3.4 Message size exceeds fixed maximum message size");
        }
        // Bounces come from the null sender, which only the bounce listener takes.
        let null_bounce = from.is_empty() && self.ctx.inbound.is_some();
        if let Err(e) = EmailAddress::parse(&from).map_err(|e| e.to_string())
            && !null_bounce
        {
            return self.error(&format!("553 5.1.7 Bad sender address: {e}"));
        }
        if let Some(p) = &self.principal
            && !p.key.policy.allows_from(&from)
        {
            return self.error(&format!(
                "550 5.7.1 This API key may not send from {from} (allowed: {})",
                p.key.policy.from_domains.join(", ")
            ));
        }
        self.tx = Some(Transaction {
            from,
            rcpts: Vec::new(),
        });
        self.reply("250 2.1.0 Sender OK");
    }

    fn rcpt(&mut self, to: String) {
        let max = self.ctx.max_recipients;
        let Some(tx) = self.tx.as_mut() else {
            return self.error("503 5.5.1 Need MAIL before RCPT");
        };
        if tx.rcpts.len() >= max {
            return self.reply("452 4.5.3 Too many recipients");
        }
        let inbound_domain = self.ctx.inbound.as_ref().map(|i| i.bounce_domain.as_str());
        match EmailAddress::parse(&to) {
            Err(e) => self.error(&format!("553 5.1.3 Bad recipient address: {e}")),
            Ok(a)
                if inbound_domain.is_some_and(|d| {
                    !a.as_str()
                        .rsplit_once('@')
                        .is_some_and(|(_, dom)| dom.eq_ignore_ascii_case(d))
                }) =>
            {
                self.error("550 5.7.1 Relay access denied: this server only takes bounces")
            }
            Ok(a)
                if self
                    .principal
                    .as_ref()
                    .is_some_and(|p| !p.key.policy.allows_rcpt(a.as_str())) =>
            {
                self.error(&format!(
                    "550 5.7.1 This API key may not send to {}",
                    a.as_str()
                ))
            }
            Ok(a) => {
                if !tx.rcpts.iter().any(|r| r.eq_ignore_ascii_case(a.as_str())) {
                    tx.rcpts.push(a.as_str().to_owned());
                }
                self.reply("250 2.1.5 Recipient OK");
            }
        }
    }

    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        r: &mut BufReader<S>,
    ) -> std::io::Result<()> {
        match &self.tx {
            None => return self.fail("503 5.5.1 Need MAIL before DATA"),
            Some(t) if t.rcpts.is_empty() => {
                return self.fail("503 5.5.1 Need RCPT before DATA");
            }
            Some(_) => {}
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>");
        self.flush(r.get_mut()).await?;
        let max = self.ctx.max_message_bytes;
        let mut body = Vec::with_capacity(8 * 1024);
        let mut too_big = false;
        // The data ends only at CRLF "." CRLF (RFC 5321 4.1.1.4): a "." line ended by a bare LF,
        // or one after a line that was, is data. Ending at LF "." LF as well would let a body
        // carry commands of its own past this server (SMTP smuggling). A bare LF ending a line
        // is stored as CRLF, so no later hop can read such a sequence in it either. The bytes
        // are kept as sent: 8BITMIME is offered.
        let mut after_crlf = true;
        loop {
            // Line length is not limited here (only the total), as many clients exceed 998.
            let raw = match self.read_line_timed(r, max).await? {
                Line::Eof => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Line::TooLong { crlf } => {
                    too_big = true;
                    after_crlf = crlf;
                    continue;
                }
                Line::Text(l) => l,
            };
            let (content, crlf) = data_line(&raw);
            if crlf && after_crlf && content == b"." {
                break;
            }
            after_crlf = crlf;
            if too_big {
                continue;
            }
            // Transparency (4.5.2): a leading dot was doubled by the client.
            let content = match content {
                [b'.', rest @ ..] if !rest.is_empty() => rest,
                c => c,
            };
            if body.len() + content.len() + 2 > max {
                too_big = true;
                body = Vec::new();
                continue;
            }
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        if too_big {
            return self.fail(&format!(
                "552 5.3.4 Message exceeds the {max}-byte limit; not accepted"
            ));
        }
        if let Some(inb) = &self.ctx.inbound {
            let reply = apply_feedback(inb, &tx.rcpts, &body, self.ctx.clock.now_ms()).await;
            self.reply(&reply);
            return Ok(());
        }
        let composed = match prepare_submission(body, tx.from, tx.rcpts, &self.ctx.hostname) {
            Ok(c) => c,
            Err(e) => return self.fail(&format!("550 5.6.0 {e}")),
        };
        let Some(who) = self.principal.clone() else {
            return self.fail("530 5.7.0 Authentication required");
        };
        // The key's sender domains bind the From header as well as the envelope: providers
        // with an HTTP API send as the header's address.
        let policy = &who.key.policy;
        if !policy.from_domains.is_empty() {
            let allowed = policy.from_domains.join(", ");
            if composed.from_header.is_empty() {
                return self.fail(&format!(
                    "550 5.7.1 The From header names no address, and this API key may only send from {allowed}"
                ));
            }
            if let Some(a) = composed.from_header.iter().find(|a| !policy.allows_from(a)) {
                return self.fail(&format!(
                    "550 5.7.1 This API key may not send as {a} in the From header (allowed: {allowed})"
                ));
            }
        }
        if let Err(e) = self
            .ctx
            .keys
            .admit_send(&who, &composed.mail_from, &composed.recipients)
            .await
        {
            let code = match e {
                crate::auth::SendRefusal::Rate(..)
                | crate::auth::SendRefusal::Daily(..)
                | crate::auth::SendRefusal::Store(_) => "451 4.7.1",
                _ => "550 5.7.1",
            };
            return self.fail(&format!("{code} {e}"));
        }
        let now = self.ctx.clock.now_ms();
        let msg = NewMessage {
            id: crate::domain::new_message_uuid().to_string(),
            tenant_id: who.tenant_id,
            key_id: Some(who.key_id),
            source: "smtp",
            mail_from: composed.mail_from,
            recipients: composed.recipients,
            subject: composed.subject,
            message_id_header: composed.message_id,
            raw: composed.raw,
            created_at: now,
            expires_at: now + self.ctx.retry_window_ms,
            idempotency: None,
            held: None,
            tags: Vec::new(),
        };
        match self.ctx.acceptor.accept(msg).await {
            Ok(
                Inserted::New { id, .. } | Inserted::Replay { id, .. } | Inserted::KeyReused { id },
            ) => {
                self.reply(&format!("250 2.0.0 Ok: queued as {id}"));
            }
            Err(e) => self.reply(&format!("451 4.3.0 {e}")),
        }
        Ok(())
    }
}

/// The bounce listener's DATA: apply what arrived as feedback. Anything that is not feedback
/// is still answered 250 (and dropped, with a log line): a 5xx would make the reporting server
/// send a bounce of the bounce.
async fn apply_feedback(inb: &super::Inbound, rcpts: &[String], body: &[u8], now: i64) -> String {
    use crate::feedback::ingest::{IngestError, Origin, ingest, verp_token};
    let token = rcpts.iter().find_map(|r| verp_token(r));
    let origin = Origin {
        source: "smtp",
        tenant_id: None,
        verp_message_id: token,
        guard: inb.guard.as_ref(),
        metrics: Some(&inb.metrics),
    };
    match ingest(&inb.store, body, &origin, &inb.suppression, now).await {
        Ok(applied) => {
            format!("250 2.0.0 Ok: {} feedback readings recorded", applied.len())
        }
        Err(IngestError::Classify(e)) => {
            tracing::info!(error = %e, "message to the bounce address is not feedback; dropped");
            "250 2.0.0 Ok: not feedback; nothing recorded".into()
        }
        Err(IngestError::Store(e)) => {
            tracing::warn!(error = %e, "recording feedback failed");
            "451 4.3.0 Feedback not recorded; try again later".into()
        }
    }
}
