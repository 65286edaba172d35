//! The kill switch from the command line: `pause`, `resume`, `held list/release/purge`.

use super::*;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["all", "tenant", "key", "provider", "channel"])))]
pub(super) struct PauseArgs {
    /// Everything
    #[arg(long)]
    all: bool,
    /// One tenant (by name)
    #[arg(long)]
    tenant: Option<String>,
    /// One API key (by id)
    #[arg(long)]
    key: Option<String>,
    /// One provider: taken out of every route; its traffic goes to the next provider
    #[arg(long)]
    provider: Option<String>,
    /// One channel: email, sms or social
    #[arg(long)]
    channel: Option<String>,
    /// Why (kept with the pause and in every held message's events)
    #[arg(long, default_value = "no reason given")]
    reason: String,
    /// Who (default: $USER)
    #[arg(long)]
    actor: Option<String>,
}

#[derive(clap::Args, Debug)]
pub(super) struct HeldFilterArgs {
    /// Only this tenant's (by name)
    #[arg(long)]
    tenant: Option<String>,
    /// Only this key's (by id)
    #[arg(long)]
    key: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(super) enum HeldCmd {
    /// Summarise held messages (count, top recipient domains, sample subjects) and list the
    /// oldest
    List {
        #[command(flatten)]
        filter: HeldFilterArgs,
        /// Only those accepted since: a duration back (2h, 30m) or an RFC 3339 time
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Put held messages back in line (in accept order)
    Release {
        #[command(flatten)]
        filter: HeldFilterArgs,
        /// Every held message (required when no filter is given)
        #[arg(long)]
        all: bool,
        #[arg(long)]
        actor: Option<String>,
    },
    /// End held messages for good; they are never sent (status purged, with your name)
    Purge {
        #[command(flatten)]
        filter: HeldFilterArgs,
        #[arg(long)]
        all: bool,
        /// Why (required)
        #[arg(long)]
        reason: String,
        #[arg(long)]
        actor: Option<String>,
    },
}

pub(super) async fn pause(
    a: PauseArgs,
    on: bool,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    use crate::guard::{Pause, PauseScope};
    let store = open_store(cfg).await?;
    let (scope, label) = if a.all {
        (PauseScope::All, "everything".to_owned())
    } else if let Some(t) = &a.tenant {
        (
            PauseScope::Tenant(tenant_id(&store, t).await?),
            format!("tenant {t}"),
        )
    } else if let Some(k) = &a.key {
        (
            PauseScope::Key(key_id(&store, k).await?),
            format!("key {k}"),
        )
    } else if let Some(p) = &a.provider {
        (
            PauseScope::Provider(known_provider(cfg, p)?),
            format!("provider {p}"),
        )
    } else if let Some(c) = &a.channel {
        let c = c.trim().to_ascii_lowercase();
        if !["email", "sms", "social"].contains(&c.as_str()) {
            bail!("unknown channel {c:?}; channels: email, sms, social");
        }
        (PauseScope::Channel(c.clone()), format!("channel {c}"))
    } else {
        bail!("say what to pause: --all, --tenant, --key, --provider or --channel")
    };
    let who = actor(a.actor.clone());
    if on {
        let p = Pause {
            scope,
            reason: a.reason.clone(),
            actor: who,
            created_at: now,
        };
        let new = store.pause(&p).await?;
        if json_out {
            println!("{}", json!({"paused": p, "already": !new}));
        } else if new {
            println!(
                "Paused {label}. Running servers stop starting sends within 100 ms; messages are held, not dropped. Undo: postern resume {}",
                resume_hint(&p.scope, &a)
            );
        } else {
            println!("{label} was already paused");
        }
    } else {
        let (was, released) = store.resume(&scope, &who, now).await?;
        if json_out {
            println!(
                "{}",
                json!({"resumed": scope, "was_paused": was, "released": released})
            );
        } else if was {
            println!("Resumed {label}; {released} held messages released in order.");
        } else {
            println!("{label} was not paused ({released} messages it had held released).");
        }
    }
    Ok(())
}

pub(super) fn resume_hint(scope: &crate::guard::PauseScope, a: &PauseArgs) -> String {
    use crate::guard::PauseScope as S;
    match scope {
        S::All => "--all".into(),
        S::Tenant(_) => format!("--tenant {}", a.tenant.as_deref().unwrap_or_default()),
        S::Key(_) => format!("--key {}", a.key.as_deref().unwrap_or_default()),
        S::Provider(p) => format!("--provider {p}"),
        S::Channel(c) => format!("--channel {c}"),
    }
}

pub(super) async fn held_filter(
    store: &Store,
    f: &HeldFilterArgs,
) -> anyhow::Result<crate::store::HeldFilter> {
    Ok(crate::store::HeldFilter {
        tenant_id: tenant_id_if(store, f.tenant.as_deref()).await?,
        key_id: match &f.key {
            Some(k) => Some(key_id(store, k).await?),
            None => None,
        },
        held_by: None,
    })
}

pub(super) async fn held(
    cmd: HeldCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    let unfiltered = |f: &HeldFilterArgs| f.tenant.is_none() && f.key.is_none();
    match cmd {
        HeldCmd::List {
            filter,
            since,
            limit,
        } => {
            let f = held_filter(&store, &filter).await?;
            let since_ms = match &since {
                None => 0,
                Some(s) => match time::OffsetDateTime::parse(
                    s,
                    &time::format_description::well_known::Rfc3339,
                ) {
                    Ok(t) => (t.unix_timestamp_nanos() / 1_000_000) as i64,
                    Err(_) => now - parse_duration_ms(s).map_err(|_| {
                        anyhow::anyhow!(
                            "--since {s:?}: expected a duration back (2h, 30m) or an RFC 3339 time"
                        )
                    })?,
                },
            };
            let summary = store.held_summary(&f, since_ms).await?;
            let (total, list) = store.held(&f, limit.clamp(0, 10_000)).await?;
            let list: Vec<_> = list
                .into_iter()
                .filter(|m| m.created_at >= since_ms)
                .collect();
            if json_out {
                let domains: Vec<_> = summary
                    .top_domains
                    .iter()
                    .map(|(d, n)| json!({"domain": d, "recipients": n}))
                    .collect();
                println!(
                    "{}",
                    json!({"total": total, "summary": {"count": summary.count, "top_domains": domains,
                        "sample_subjects": summary.sample_subjects}, "messages": list})
                );
            } else {
                println!("{} held", summary.count);
                if !summary.top_domains.is_empty() {
                    let d: Vec<String> = summary
                        .top_domains
                        .iter()
                        .map(|(d, n)| format!("{d} ({n})"))
                        .collect();
                    println!("top recipient domains: {}", d.join(", "));
                }
                for s in &summary.sample_subjects {
                    println!("sample subject: {s}");
                }
                for m in list {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        m.id,
                        rfc3339(m.created_at),
                        m.held_by.as_deref().unwrap_or("-"),
                        m.mail_from,
                        m.subject.as_deref().unwrap_or("")
                    );
                }
            }
        }
        HeldCmd::Release {
            filter,
            all,
            actor: who,
        } => {
            if unfiltered(&filter) && !all {
                bail!("say which held messages: --tenant, --key, or --all");
            }
            let f = held_filter(&store, &filter).await?;
            let who = actor(who);
            let n = store
                .release_held(&f, &who, "released by an operator", now)
                .await?;
            if json_out {
                println!("{}", json!({"released": n}));
            } else {
                println!(
                    "Released {n} held messages (in accept order). A pause still in force holds them again."
                );
            }
        }
        HeldCmd::Purge {
            filter,
            all,
            reason,
            actor: who,
        } => {
            if unfiltered(&filter) && !all {
                bail!("say which held messages: --tenant, --key, or --all");
            }
            if reason.trim().is_empty() {
                bail!("--reason must say why these messages are never sent");
            }
            let f = held_filter(&store, &filter).await?;
            let who = actor(who);
            let n = store.purge_held(&f, &who, &reason, now).await?;
            if json_out {
                println!("{}", json!({"purged": n, "by": who}));
            } else {
                println!("Purged {n} held messages (by {who}: {reason}); they will never be sent.");
            }
        }
    }
    Ok(())
}
