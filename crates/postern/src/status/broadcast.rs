//! Incident broadcast: one notice per affected tenant on every channel it has a contact for
//! (email, SMS, webhook), the incident posted on the status page, and a per-channel report.
//!
//! Notices go **directly through the provider trait**, not through the queue, and each result
//! is recorded in the store (`broadcast_deliveries`). The queue would be the wrong path here:
//! during an incident the kill switch is often on (`pause --all`), and a queued notice would be
//! held with everything else; the queue carries only email; the provider to avoid (the suspect)
//! is a property of this broadcast, not of the tenant's route; and the operator needs to know
//! now which notices went out. What failed is reported (and recorded) with its reason, so it
//! can be sent again.

use std::path::Path;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;

use super::incident_file::{Audience, render};
use super::queue_channel;
use crate::config::{Config, ProviderConfig};
use crate::guard::PauseScope;
use crate::providers::health::HealthState;
use crate::providers::{
    Channel, FailureClass, OutboundMessage, Provider, Providers, RecipientOutcome,
};
use crate::store::{BroadcastDelivery, Contact, Store, Tenant};

pub use super::incident_file::{
    BROADCAST_CHANNELS, Draft, IncidentFile, Invalid, Origin, load as load_incident_file,
};

/// One line of the report: what was (or, in a dry run, would be) sent to whom, how.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeReport {
    pub tenant: String,
    pub channel: String,
    /// The contact; empty when the tenant has none on this channel.
    pub address: String,
    pub provider: Option<String>,
    /// `sent`, `failed`, `skipped` (no contact) or, in a dry run, `would_send`.
    pub outcome: String,
    pub detail: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BroadcastReport {
    pub broadcast_id: Option<String>,
    pub incident_id: Option<String>,
    pub dry_run: bool,
    pub notices: Vec<NoticeReport>,
}

impl BroadcastReport {
    /// The detail of the audit entry a sent broadcast is recorded with (by the CLI and the
    /// console alike).
    pub fn audit_detail(&self, file: &IncidentFile) -> serde_json::Value {
        let count = |o: &str| self.notices.iter().filter(|n| n.outcome == o).count();
        serde_json::json!({
            "broadcast_id": self.broadcast_id,
            "title": file.title,
            "channels": file.channels,
            "suspect_provider": file.suspect_provider,
            "sent": count("sent"),
            "failed": count("failed"),
            "skipped": count("skipped"),
        })
    }

    pub fn failed(&self) -> usize {
        self.notices
            .iter()
            .filter(|n| n.outcome == "failed")
            .count()
    }
}

/// A notice planned for one tenant and channel.
struct Planned {
    tenant: Tenant,
    channel: String,
    contact: Option<String>,
    subject: String,
    text: String,
    /// Providers to try in order (email, SMS); empty for webhooks.
    providers: Vec<String>,
    /// Why no provider can carry it.
    no_provider: Option<String>,
}

/// The key per-tenant webhook signing secrets are derived from; made on first use in
/// `data_dir` (like the TLS key), never stored in the database.
fn broadcast_key(cfg: &Config) -> anyhow::Result<Vec<u8>> {
    let path = cfg.data_dir.join("broadcast.key");
    if let Ok(s) = std::fs::read_to_string(&path)
        && let Ok(k) = hex::decode(s.trim())
        && k.len() >= 32
    {
        return Ok(k);
    }
    std::fs::create_dir_all(&cfg.data_dir)?;
    let key: [u8; 32] = rand::random();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, hex::encode(key))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(key.to_vec())
}

/// The secret a tenant's webhook receiver checks `Postern-Signature` with: an HMAC of the
/// tenant id under the installation's broadcast key, so tenants cannot sign for each other.
pub fn tenant_webhook_secret(cfg: &Config, tenant_id: &str) -> anyhow::Result<SecretString> {
    use hmac::{Hmac, Mac};
    let key = broadcast_key(cfg)?;
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key)
        .map_err(|_| anyhow::anyhow!("broadcast key"))?;
    mac.update(b"postern-broadcast-webhook:");
    mac.update(tenant_id.as_bytes());
    Ok(SecretString::from(format!(
        "whsec_{}",
        hex::encode(mac.finalize().into_bytes())
    )))
}

/// Checks a contact address for its channel.
pub fn check_contact(channel: &str, address: &str) -> anyhow::Result<String> {
    let a = address.trim();
    match channel {
        "email" => Ok(crate::domain::EmailAddress::parse(a)
            .map_err(|e| anyhow::anyhow!("--email {a:?}: {e}"))?
            .as_str()
            .to_owned()),
        "sms" => {
            let digits = a.strip_prefix('+').unwrap_or("");
            if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                anyhow::bail!("--sms {a:?}: not an E.164 number (+ and 8 to 15 digits)");
            }
            Ok(a.to_owned())
        }
        "webhook" => {
            let ok = (a.starts_with("https://") || a.starts_with("http://"))
                && reqwest::Url::parse(a).is_ok_and(|u| u.host_str().is_some());
            if !ok {
                anyhow::bail!("--webhook {a:?}: not an http(s) URL");
            }
            Ok(a.to_owned())
        }
        other => anyhow::bail!("unknown contact channel {other:?}"),
    }
}

/// What the delivering nodes last recorded about each provider, and the kill switch: the
/// providers a notice can go through, best first.
async fn candidates(
    store: &Store,
    cfg: &Config,
    file: &IncidentFile,
    tenant_id: &str,
    routes: &crate::queue::routing::Routes,
    channel: Channel,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    let health = store.provider_health().await?;
    let pauses = store.pauses().await?;
    let route = routes.resolve(tenant_id);
    let mut order: Vec<String> = route
        .into_iter()
        .filter(|n| cfg.providers.contains_key(n))
        .collect();
    for n in cfg.providers.keys() {
        if !order.contains(n) {
            order.push(n.clone());
        }
    }
    let mut why = Vec::new();
    let ok: Vec<String> = order
        .into_iter()
        .filter(|n| {
            let Some(p) = cfg.providers.get(n) else {
                return false;
            };
            // Webhook providers deliver to a fixed receiver, not to a tenant's contact.
            if queue_channel(p.kind()) != channel || matches!(p, ProviderConfig::Webhook { .. }) {
                return false;
            }
            if file.suspect_provider.as_deref() == Some(n.as_str()) {
                why.push(format!("{n} is the suspect"));
                return false;
            }
            if pauses
                .iter()
                .any(|p| matches!(&p.scope, PauseScope::Provider(q) if q == n))
            {
                why.push(format!("{n} is paused"));
                return false;
            }
            match health.iter().find(|h| &h.provider == n) {
                Some(h)
                    if h.state == HealthState::Down.as_str()
                        || h.state == HealthState::Suspended.as_str() =>
                {
                    why.push(format!("{n} is {}", h.state));
                    false
                }
                _ => true,
            }
        })
        .collect();
    let none = ok.is_empty().then(|| {
        if why.is_empty() {
            format!("no {} provider is configured", channel.as_str())
        } else {
            format!(
                "no usable {} provider ({})",
                channel.as_str(),
                why.join(", ")
            )
        }
    });
    Ok((ok, none))
}

async fn affected(store: &Store, file: &IncidentFile) -> anyhow::Result<Vec<Tenant>> {
    let all = store.list_tenants().await?;
    match &file.tenants {
        Audience::All => Ok(all),
        Audience::Named(names) => {
            let mut out = Vec::new();
            for n in names {
                match all.iter().find(|t| &t.name == n) {
                    Some(t) => out.push(t.clone()),
                    None => {
                        return Err(file
                            .invalid(
                                "tenants",
                                format!("no tenant {n:?} (see `postern tenants list`)"),
                            )
                            .into());
                    }
                }
            }
            Ok(out)
        }
    }
}

fn default_status_url(cfg: &Config) -> String {
    format!("http://{}/status", cfg.http.listen)
}

async fn plan(store: &Store, cfg: &Config, file: &IncidentFile) -> anyhow::Result<Vec<Planned>> {
    if let Some(s) = &file.suspect_provider
        && !cfg.providers.contains_key(s)
    {
        let known: Vec<&str> = cfg.providers.keys().map(String::as_str).collect();
        return Err(file
            .invalid(
                "suspect_provider",
                format!(
                    "no provider {s:?} in the config (configured: {})",
                    known.join(", ")
                ),
            )
            .into());
    }
    if let Some(from) = &file.from {
        crate::domain::EmailAddress::parse(from)
            .map_err(|e| file.invalid("from", format!("{from:?}: {e}")))?;
    }
    if let Some(id) = &file.incident {
        match store.incident(id).await {
            Err(crate::store::StoreError::NotFound) => {
                return Err(file
                    .invalid(
                        "incident",
                        format!("no incident {id:?} (see `postern incident list`)"),
                    )
                    .into());
            }
            r => r?,
        };
    }
    let tenants = affected(store, file).await?;
    let contacts = store.contacts(None).await?;
    let routes = crate::queue::routing::Routes::new(cfg.routes.default.clone());
    routes.reload(store).await?;
    let status_url = file
        .status_url
        .clone()
        .unwrap_or_else(|| default_status_url(cfg));
    let mut out = Vec::new();
    for t in tenants {
        let values = [
            ("tenant", t.name.as_str()),
            ("status_url", status_url.as_str()),
            ("title", file.title.as_str()),
        ];
        let subject = render(&file.subject, &values);
        let text = render(&file.body, &values);
        for ch in &file.channels {
            let contact = contacts
                .iter()
                .find(|c: &&Contact| c.tenant_id == t.id && &c.channel == ch)
                .map(|c| c.address.clone());
            let (providers, no_provider) = match ch.as_str() {
                "email" => candidates(store, cfg, file, &t.id, &routes, Channel::Email).await?,
                "sms" => candidates(store, cfg, file, &t.id, &routes, Channel::Sms).await?,
                _ => (Vec::new(), None),
            };
            out.push(Planned {
                tenant: t.clone(),
                channel: ch.clone(),
                contact,
                subject: subject.clone(),
                text: text.clone(),
                providers,
                no_provider,
            });
        }
    }
    Ok(out)
}

fn report(p: &Planned, provider: Option<String>, outcome: &str, detail: String) -> NoticeReport {
    NoticeReport {
        tenant: p.tenant.name.clone(),
        channel: p.channel.clone(),
        address: p.contact.clone().unwrap_or_default(),
        provider,
        outcome: outcome.into(),
        detail,
        subject: p.subject.clone(),
        text: p.text.clone(),
    }
}

/// Sends one message through the first provider that takes it. A provider that refuses as a
/// whole certainly did not send it, so the next one is tried (as the worker's failover does);
/// any other answer is final for this broadcast.
async fn send_via(
    providers: &Providers,
    names: &[String],
    msg: &OutboundMessage,
) -> (Option<String>, Result<String, String>) {
    let mut refused = Vec::new();
    for n in names {
        let Some(p) = providers.get(n) else { continue };
        match p.send(msg).await {
            Ok(d) => {
                let r = match d.recipients.first().map(|(_, o)| o) {
                    Some(RecipientOutcome::Delivered { response }) => Ok(response.clone()),
                    Some(RecipientOutcome::Deferred { reason, .. }) => {
                        Err(format!("deferred: {reason}"))
                    }
                    Some(RecipientOutcome::Bounced { reason, .. }) => {
                        Err(format!("bounced: {reason}"))
                    }
                    None => Err("the provider gave no answer for the recipient".into()),
                };
                return (Some(n.clone()), r);
            }
            Err(e) if matches!(e.class, FailureClass::ProviderWide(_)) => {
                refused.push(format!("{n}: {e}"));
            }
            Err(e) => return (Some(n.clone()), Err(e.to_string())),
        }
    }
    (
        None,
        Err(format!("every provider refused: {}", refused.join("; "))),
    )
}

/// Plans the broadcast and, unless `dry_run`, posts the incident and sends the notices.
/// A dry run reads only: nothing is written and nothing is sent.
pub async fn broadcast(
    store: &Store,
    cfg: &Config,
    file: &IncidentFile,
    dry_run: bool,
    now: i64,
) -> anyhow::Result<BroadcastReport> {
    let planned = plan(store, cfg, file).await?;
    if dry_run {
        let notices = planned
            .iter()
            .map(|p| match (&p.contact, &p.no_provider) {
                (None, _) => report(p, None, "skipped", format!("no {} contact", p.channel)),
                (Some(_), Some(why)) => report(p, None, "failed", why.clone()),
                (Some(_), None) => report(
                    p,
                    p.providers.first().cloned(),
                    "would_send",
                    if p.channel == "webhook" {
                        "signed POST to the tenant's webhook".into()
                    } else {
                        format!("through {}", p.providers.join(", then "))
                    },
                ),
            })
            .collect();
        return Ok(BroadcastReport {
            broadcast_id: None,
            incident_id: None,
            dry_run: true,
            notices,
        });
    }
    let status_body = match &file.status_body {
        Some(b) => b.clone(),
        None => file.body.clone(),
    };
    let public = render(
        &status_body,
        &[
            ("tenant", "customers"),
            (
                "status_url",
                &file
                    .status_url
                    .clone()
                    .unwrap_or_else(|| default_status_url(cfg)),
            ),
            ("title", &file.title),
        ],
    );
    let incident = match &file.incident {
        Some(id) => super::update_incident(store, now, id, file.state, &public).await?,
        None => super::open_incident(store, now, &file.title, file.state, &public).await?,
    };
    let providers = Providers::from_config(cfg)?;
    let broadcast_id = uuid::Uuid::now_v7().to_string();
    let mut notices = Vec::with_capacity(planned.len());
    for p in &planned {
        let r = match (&p.contact, &p.no_provider) {
            (None, _) => report(p, None, "skipped", format!("no {} contact", p.channel)),
            (Some(_), Some(why)) => report(p, None, "failed", why.clone()),
            (Some(addr), None) => {
                let (provider, res) = send_one(cfg, &providers, file, p, addr).await;
                match res {
                    Ok(detail) => report(p, provider, "sent", detail),
                    Err(why) => report(p, provider, "failed", why),
                }
            }
        };
        if r.outcome != "skipped" {
            store
                .record_broadcast_delivery(&BroadcastDelivery {
                    broadcast_id: broadcast_id.clone(),
                    incident_id: incident.id.clone(),
                    tenant_id: p.tenant.id.clone(),
                    channel: r.channel.clone(),
                    address: r.address.clone(),
                    provider: r.provider.clone(),
                    outcome: r.outcome.clone(),
                    detail: r.detail.clone(),
                    at: now,
                })
                .await?;
        }
        notices.push(r);
    }
    Ok(BroadcastReport {
        broadcast_id: Some(broadcast_id),
        incident_id: Some(incident.id),
        dry_run: false,
        notices,
    })
}

async fn send_one(
    cfg: &Config,
    providers: &Providers,
    file: &IncidentFile,
    p: &Planned,
    addr: &str,
) -> (Option<String>, Result<String, String>) {
    let id = uuid::Uuid::now_v7().to_string();
    match p.channel.as_str() {
        "sms" => {
            let msg = OutboundMessage {
                id,
                tenant_id: p.tenant.id.clone(),
                channel: Channel::Sms,
                mail_from: String::new(),
                recipients: vec![addr.to_owned()],
                raw: Arc::from(format!("{}\n{}", p.subject, p.text).into_bytes()),
                message_id_header: String::new(),
            };
            send_via(providers, &p.providers, &msg).await
        }
        channel => {
            let req = postern_api::SendMessageRequest {
                from: file.from.clone().unwrap_or_default(),
                to: vec![if channel == "email" {
                    addr.to_owned()
                } else {
                    // The webhook carries the same message, addressed back to its sender.
                    file.from.clone().unwrap_or_default()
                }],
                cc: Vec::new(),
                bcc: Vec::new(),
                reply_to: None,
                subject: p.subject.clone(),
                text: Some(p.text.clone()),
                html: None,
                headers: Default::default(),
                tags: Vec::new(),
                idempotency_key: None,
            };
            let composed = match crate::compose::compose(&req, &cfg.smtp.hostname, 1) {
                Ok(c) => c,
                Err(e) => return (None, Err(format!("composing the notice: {e}"))),
            };
            let msg = OutboundMessage {
                id,
                tenant_id: p.tenant.id.clone(),
                channel: Channel::Email,
                mail_from: composed.mail_from,
                recipients: composed.recipients,
                raw: Arc::from(composed.raw.into_boxed_slice()),
                message_id_header: composed.message_id,
            };
            if channel == "email" {
                return send_via(providers, &p.providers, &msg).await;
            }
            send_webhook(cfg, p, addr, &msg).await
        }
    }
}

/// Posts the notice to the tenant's webhook, signed as the webhook provider signs
/// (`Postern-Signature`), with the tenant's own secret.
async fn send_webhook(
    cfg: &Config,
    p: &Planned,
    url: &str,
    msg: &OutboundMessage,
) -> (Option<String>, Result<String, String>) {
    let secret = match tenant_webhook_secret(cfg, &p.tenant.id) {
        Ok(s) => s,
        Err(e) => return (None, Err(format!("signing key: {e}"))),
    };
    let pc = ProviderConfig::Webhook {
        url: url.to_owned(),
        secret,
        timeout_secs: 15,
    };
    let hook =
        match crate::providers::WebhookProvider::new(&format!("{}-webhook", p.tenant.name), &pc) {
            Ok(h) => h,
            Err(e) => return (None, Err(e.to_string())),
        };
    let r = match hook.send(msg).await {
        Ok(d) => match d.recipients.first().map(|(_, o)| o) {
            Some(RecipientOutcome::Delivered { response }) => Ok(response.clone()),
            Some(o) => Err(format!("{o:?}")),
            None => Err("no answer".into()),
        },
        Err(e) => Err(e.to_string()),
    };
    (None, r)
}

/// Reads and checks an incident file.
pub fn load(path: &Path) -> anyhow::Result<IncidentFile> {
    load_incident_file(path)
}
