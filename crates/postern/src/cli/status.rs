//! `postern incident ...`, `postern tenants contacts ...` and `postern broadcast`: the CLI side
//! of the status page and incident broadcasts (the logic is in `crate::status`).

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use super::{audited, open_store, tenant_id};
use crate::clock::rfc3339;
use crate::config::Config;
use crate::status::broadcast::{self, BroadcastReport};
use crate::status::{IncidentState, StatusError};
use crate::store::{Contact, IncidentRecord};

#[derive(Subcommand, Debug)]
pub enum IncidentCmd {
    /// Open an incident on the status page
    Open {
        #[arg(long)]
        title: String,
        #[arg(long)]
        body: String,
        /// investigating, identified, monitoring or resolved
        #[arg(long, default_value = "investigating")]
        state: String,
    },
    /// Post an update to an incident (and move it to --state)
    Update {
        id: String,
        #[arg(long)]
        state: String,
        #[arg(long)]
        body: String,
    },
    /// Incidents, most recently updated first
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum ContactCmd {
    /// Set a tenant's contacts for incident notices (each given channel is replaced)
    Set {
        tenant: String,
        #[arg(long)]
        email: Option<String>,
        /// E.164 number, e.g. +15551234567
        #[arg(long)]
        sms: Option<String>,
        /// http(s) URL; notices are signed with the tenant's secret (printed here)
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Remove a tenant's contact on one channel
    Remove {
        tenant: String,
        #[arg(long)]
        channel: String,
    },
    /// Contacts of one tenant or of all
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct BroadcastArgs {
    /// The incident file (TOML: title, body, tenants, channels, from, suspect_provider, ...)
    #[arg(long)]
    incident: PathBuf,
    /// Show who would get what; send nothing, change nothing
    #[arg(long)]
    dry_run: bool,
}

fn status_err(e: StatusError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn print_incident(i: &IncidentRecord, json_out: bool) -> anyhow::Result<()> {
    if json_out {
        println!("{}", serde_json::to_string(i)?);
    } else {
        println!(
            "{}\t{}\t{}\t{}",
            i.id,
            i.state,
            rfc3339(i.updated_at),
            i.title
        );
    }
    Ok(())
}

pub async fn incident(
    cmd: IncidentCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    match cmd {
        IncidentCmd::Open { title, body, state } => {
            let state = IncidentState::parse(&state).map_err(status_err)?;
            let store = open_store(cfg).await?;
            let i = crate::status::open_incident(&store, now, &title, state, &body)
                .await
                .map_err(status_err)?;
            audited(
                cfg,
                &store,
                now,
                "incident.open",
                &i.id,
                None,
                json!({"title": i.title, "state": i.state}),
            )
            .await?;
            print_incident(&i, json_out)
        }
        IncidentCmd::Update { id, state, body } => {
            let state = IncidentState::parse(&state).map_err(status_err)?;
            let store = open_store(cfg).await?;
            let i = crate::status::update_incident(&store, now, &id, state, &body)
                .await
                .map_err(status_err)?;
            audited(
                cfg,
                &store,
                now,
                "incident.update",
                &i.id,
                None,
                json!({"state": i.state}),
            )
            .await?;
            print_incident(&i, json_out)
        }
        IncidentCmd::List { limit } => {
            let store = open_store(cfg).await?;
            let list = crate::status::list_incidents(&store, limit)
                .await
                .map_err(status_err)?;
            if json_out {
                println!("{}", serde_json::to_string(&list)?);
                return Ok(());
            }
            for i in &list {
                print_incident(i, false)?;
            }
            Ok(())
        }
    }
}

pub async fn contacts(
    cmd: ContactCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        ContactCmd::Set {
            tenant,
            email,
            sms,
            webhook,
        } => {
            let given: Vec<(&str, String)> = [("email", email), ("sms", sms), ("webhook", webhook)]
                .into_iter()
                .filter_map(|(c, v)| v.map(|v| (c, v)))
                .collect();
            if given.is_empty() {
                bail!("give at least one of --email, --sms, --webhook");
            }
            // Every address is checked before any is stored.
            let mut checked = Vec::new();
            for (c, v) in given {
                checked.push((c, broadcast::check_contact(c, &v)?));
            }
            let tid = tenant_id(&store, &tenant).await?;
            for (c, address) in &checked {
                store
                    .set_contact(
                        &Contact {
                            tenant_id: tid.clone(),
                            channel: (*c).to_owned(),
                            address: address.clone(),
                        },
                        now,
                    )
                    .await?;
            }
            let channels: Vec<&str> = checked.iter().map(|(c, _)| *c).collect();
            audited(
                cfg,
                &store,
                now,
                "contact.set",
                &tenant,
                None,
                json!({"channels": channels}),
            )
            .await?;
            let secret = if checked.iter().any(|(c, _)| *c == "webhook") {
                use secrecy::ExposeSecret;
                Some(
                    broadcast::tenant_webhook_secret(cfg, &tid)?
                        .expose_secret()
                        .to_owned(),
                )
            } else {
                None
            };
            if json_out {
                let set: serde_json::Map<String, serde_json::Value> = checked
                    .iter()
                    .map(|(c, a)| ((*c).to_owned(), json!(a)))
                    .collect();
                println!(
                    "{}",
                    json!({"tenant": tenant, "set": set, "webhook_secret": secret})
                );
            } else {
                for (c, a) in &checked {
                    println!("{tenant}: {c} contact is {a}");
                }
                if let Some(s) = secret {
                    println!(
                        "Webhook notices are signed (Postern-Signature) with this secret; give it to the receiver:\n{s}"
                    );
                }
            }
            Ok(())
        }
        ContactCmd::Remove { tenant, channel } => {
            if !broadcast::BROADCAST_CHANNELS.contains(&channel.as_str()) {
                bail!(
                    "unknown channel {channel:?}; channels: {}",
                    broadcast::BROADCAST_CHANNELS.join(", ")
                );
            }
            let tid = tenant_id(&store, &tenant).await?;
            if !store.remove_contact(&tid, &channel).await? {
                bail!("tenant {tenant:?} has no {channel} contact");
            }
            audited(
                cfg,
                &store,
                now,
                "contact.remove",
                &tenant,
                None,
                json!({"channel": channel}),
            )
            .await?;
            if json_out {
                println!("{}", json!({"tenant": tenant, "removed": channel}));
            } else {
                println!("{tenant}: {channel} contact removed");
            }
            Ok(())
        }
        ContactCmd::List { tenant } => {
            let tid = super::tenant_id_if(&store, tenant.as_deref()).await?;
            let list = store.contacts(tid.as_deref()).await?;
            let names = store.list_tenants().await?;
            let name = |id: &str| {
                names
                    .iter()
                    .find(|t| t.id == id)
                    .map_or(id.to_owned(), |t| t.name.clone())
            };
            if json_out {
                let v: Vec<_> = list
                    .iter()
                    .map(|c| json!({"tenant": name(&c.tenant_id), "channel": c.channel, "address": c.address}))
                    .collect();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                for c in &list {
                    println!("{}\t{}\t{}", name(&c.tenant_id), c.channel, c.address);
                }
            }
            Ok(())
        }
    }
}

fn print_report(r: &BroadcastReport) {
    if r.dry_run {
        println!("Dry run: nothing sent, nothing changed.");
    } else if let Some(id) = &r.incident_id {
        println!("Posted incident {id} to the status page.");
    }
    let rows: Vec<[String; 5]> = r
        .notices
        .iter()
        .map(|n| {
            [
                n.tenant.clone(),
                n.channel.clone(),
                if n.address.is_empty() {
                    "-".into()
                } else {
                    n.address.clone()
                },
                n.outcome.clone(),
                match &n.provider {
                    Some(p) => format!("{p}: {}", n.detail),
                    None => n.detail.clone(),
                },
            ]
        })
        .collect();
    let head = ["TENANT", "CHANNEL", "ADDRESS", "RESULT", "DETAIL"];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate().take(4) {
            s.push_str(&format!("{c:<w$}  ", w = widths[i]));
        }
        s.push_str(cells[4]);
        println!("{}", s.trim_end());
    };
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    if r.dry_run {
        if let Some(n) = r.notices.iter().find(|n| n.outcome == "would_send") {
            println!("\nSubject: {}\n\n{}", n.subject, n.text);
        }
    } else {
        let sent = r.notices.iter().filter(|n| n.outcome == "sent").count();
        println!("{sent} sent, {} failed", r.failed());
    }
}

pub async fn broadcast_cmd(
    args: BroadcastArgs,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    let file = broadcast::load(&args.incident)?;
    let store = open_store(cfg).await?;
    let report = broadcast::broadcast(&store, cfg, &file, args.dry_run, now).await?;
    if !args.dry_run {
        audited(
            cfg,
            &store,
            now,
            "broadcast",
            report.incident_id.as_deref().unwrap_or(""),
            None,
            report.audit_detail(&file),
        )
        .await?;
    }
    if json_out {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    if report.failed() > 0 && !args.dry_run {
        bail!(
            "{} notice(s) failed; see the report (recorded under broadcast {})",
            report.failed(),
            report.broadcast_id.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
