//! Sending a notice on one channel. Nothing here goes through the queue or the pauses: an
//! alert must reach operators even when everything is paused, so each call goes straight to
//! the webhook URL or the chosen provider.

use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use serde_json::json;

use super::{ChannelConfig, Notifier};
use crate::clock::rfc3339;
use crate::providers::{
    Channel, OutboundMessage, Providers, WEBHOOK_SIGNATURE_HEADER, webhook_signature,
};
use crate::store::{Alert, Notice};

/// At startup: every provider a channel names exists and carries the right channel.
pub(super) fn check(c: &ChannelConfig, providers: &Providers) -> anyhow::Result<()> {
    let want = |name: &str, ch: Channel| -> anyhow::Result<()> {
        match providers.get(name) {
            None => bail!("[alerts] channel {}: no provider {name:?}", c_kind(ch)),
            Some(p) if p.channel() != ch => {
                bail!(
                    "[alerts] channel {}: provider {name:?} does not carry {}",
                    c_kind(ch),
                    ch.as_str()
                )
            }
            Some(_) => Ok(()),
        }
    };
    match c {
        ChannelConfig::Webhook { url, .. } => {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                bail!("[alerts] webhook channel: url must start with https:// or http://");
            }
        }
        ChannelConfig::Email {
            providers: names,
            to,
            ..
        } => {
            if names.is_empty() || to.is_empty() {
                bail!("[alerts] email channel: `providers` and `to` must not be empty");
            }
            for n in names {
                want(n, Channel::Email)?;
            }
        }
        ChannelConfig::Sms { provider, to, .. } => {
            if to.is_empty() {
                bail!("[alerts] sms channel: `to` must not be empty");
            }
            want(provider, Channel::Sms)?;
        }
    }
    Ok(())
}

fn c_kind(ch: Channel) -> &'static str {
    match ch {
        Channel::Sms => "sms",
        _ => "email",
    }
}

/// One line an operator reads first.
fn headline(n: &Notice) -> String {
    let what = if n.target.is_empty() {
        n.scope.clone()
    } else {
        format!("{} {}", n.scope, n.target)
    };
    let times = if n.count > 1 {
        format!(" ({} times)", n.count)
    } else {
        String::new()
    };
    format!(
        "Postern guard: {} on {what}, action {}{times}",
        n.signal, n.action
    )
}

pub(super) async fn send(
    nf: &Notifier,
    c: &ChannelConfig,
    n: &Notice,
    alert: Option<&Alert>,
    suspects: &[String],
) -> anyhow::Result<String> {
    let escalated = alert.is_none();
    match c {
        ChannelConfig::Webhook { url, secret, .. } => {
            let body = serde_json::to_vec(&json!({
                "notice": n.id,
                "signal": n.signal,
                "scope": n.scope,
                "target": n.target,
                "action": n.action,
                "count": n.count,
                "first_at": rfc3339(n.first_at),
                "last_at": rfc3339(n.last_at),
                "level": n.level,
                "escalated": escalated,
                "evidence": alert.map(|a| a.evidence.clone()),
                "summary": headline(n),
            }))?;
            let ts = (nf.clock.now_ms() / 1000).max(0) as u64;
            let sig = webhook_signature(secret.expose_secret().as_bytes(), ts, &body);
            let resp = nf
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(WEBHOOK_SIGNATURE_HEADER, sig)
                .header("Idempotency-Key", format!("{}-{}", n.id, n.level))
                .body(body)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "webhook {}: {}",
                        crate::config::redact_url(url),
                        e.without_url()
                    )
                })?;
            if !resp.status().is_success() {
                bail!(
                    "webhook {} answered {}",
                    crate::config::redact_url(url),
                    resp.status()
                );
            }
            Ok("webhook".into())
        }
        ChannelConfig::Email {
            from,
            to,
            providers,
            ..
        } => {
            let Some(name) = providers.iter().find(|p| nf.usable(p, suspects)) else {
                bail!(
                    "every email provider of the channel is under suspicion or down ({suspects:?})"
                );
            };
            let p = nf.providers.get(name).context("provider vanished")?;
            let subject = headline(n);
            let mut text = format!(
                "{subject}\r\n\r\nNotice: {}\r\nFirst seen: {}\r\nLast seen: {}\r\nCount: {}\r\n",
                n.id,
                rfc3339(n.first_at),
                rfc3339(n.last_at),
                n.count
            );
            if let Some(a) = alert {
                text.push_str(&format!("Evidence: {}\r\n", a.evidence));
            }
            if escalated {
                text.push_str(
                    "Not acknowledged yet: escalated. Acknowledge with `postern alerts ack ",
                );
                text.push_str(&n.id);
                text.push_str("`.\r\n");
            }
            let mid = format!("<alert-{}-{}@postern>", n.id, n.level);
            let raw = format!(
                "From: {from}\r\nTo: {}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\nDate: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nAuto-Submitted: auto-generated\r\n\r\n{text}",
                to.join(", "),
                rfc2822(nf.clock.now_ms()),
            );
            let out = OutboundMessage {
                id: format!("alert-{}-{}", n.id, n.level),
                tenant_id: String::new(),
                channel: Channel::Email,
                mail_from: from.clone(),
                recipients: to.clone(),
                raw: Arc::from(raw.into_bytes()),
                message_id_header: mid,
            };
            p.send(&out)
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            Ok(format!("email via {name}"))
        }
        ChannelConfig::Sms { provider, to, .. } => {
            let p = nf.providers.get(provider).context("provider vanished")?;
            let text = format!("{} [ack: postern alerts ack {}]", headline(n), n.id);
            let out = OutboundMessage {
                id: format!("alert-{}-{}", n.id, n.level),
                tenant_id: String::new(),
                channel: Channel::Sms,
                mail_from: String::new(),
                recipients: to.clone(),
                raw: Arc::from(text.into_bytes()),
                message_id_header: String::new(),
            };
            p.send(&out)
                .await
                .map_err(|e| anyhow::anyhow!("{provider}: {e}"))?;
            Ok(format!("sms via {provider}"))
        }
    }
}

fn rfc2822(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_default()
}
