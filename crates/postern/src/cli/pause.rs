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
    use crate::guard::Pause;
    let store = open_store(cfg).await?;
    let (kind, target) = if a.all {
        ("all", None)
    } else if let Some(t) = &a.tenant {
        ("tenant", Some(t))
    } else if let Some(k) = &a.key {
        ("key", Some(k))
    } else if let Some(p) = &a.provider {
        ("provider", Some(p))
    } else if let Some(c) = &a.channel {
        ("channel", Some(c))
    } else {
        bail!("say what to pause: --all, --tenant, --key, --provider or --channel")
    };
    let (scope, label) = ops::pause_scope(&store, cfg, kind, target.map(String::as_str)).await?;
    let who = actor(a.actor.clone());
    let target = format!("{}:{}", scope.kind(), scope.target());
    let target = target.trim_end_matches(':');
    if on {
        let p = Pause {
            scope,
            reason: a.reason.clone(),
            actor: who,
            created_at: now,
        };
        let new = store.pause(&p).await?;
        let detail = json!({"actor": p.actor, "already": !new});
        audited(cfg, &store, now, "pause", target, Some(&p.reason), detail).await?;
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
        let detail = json!({"actor": who, "was_paused": was, "released": released});
        audited(cfg, &store, now, "resume", target, None, detail).await?;
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

async fn held_filter(
    store: &Store,
    f: &HeldFilterArgs,
    all: Option<bool>,
) -> anyhow::Result<crate::store::HeldFilter> {
    Ok(ops::held_filter(store, f.tenant.as_deref(), f.key.as_deref(), all, "--").await?)
}

/// `tenant:T`, `key:ID`, both, or `all`, for the audit log.
fn held_target(f: &HeldFilterArgs) -> String {
    let parts: Vec<String> = [("tenant", &f.tenant), ("key", &f.key)]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}:{v}")))
        .collect();
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(",")
    }
}

pub(super) async fn held(
    cmd: HeldCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        HeldCmd::List {
            filter,
            since,
            limit,
        } => {
            let f = held_filter(&store, &filter, None).await?;
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
            let f = held_filter(&store, &filter, Some(all)).await?;
            let who = actor(who);
            let n = store
                .release_held(&f, &who, "released by an operator", now)
                .await?;
            let detail = json!({"actor": who, "released": n});
            audited(
                cfg,
                &store,
                now,
                "held.release",
                &held_target(&filter),
                None,
                detail,
            )
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
            let reason = ops::purge_reason(&reason, "--")?.to_owned();
            let f = held_filter(&store, &filter, Some(all)).await?;
            let who = actor(who);
            let n = store.purge_held(&f, &who, &reason, now).await?;
            let detail = json!({"actor": who, "purged": n});
            audited(
                cfg,
                &store,
                now,
                "held.purge",
                &held_target(&filter),
                Some(&reason),
                detail,
            )
            .await?;
            if json_out {
                println!("{}", json!({"purged": n, "by": who}));
            } else {
                println!("Purged {n} held messages (by {who}: {reason}); they will never be sent.");
            }
        }
    }
    Ok(())
}
