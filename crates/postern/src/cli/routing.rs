//! `postern route set/clear/show/move`.

use super::*;

#[derive(Subcommand, Debug)]
pub(super) enum RouteCmd {
    /// Set a tenant's route: providers in order, the first healthy one wins
    Set {
        #[arg(long)]
        tenant: String,
        /// Comma-separated provider names, e.g. ses,postmark,smtp-backup
        providers: String,
    },
    /// Remove a tenant's own route; it follows the default route again
    Clear {
        #[arg(long)]
        tenant: String,
    },
    /// Show the default route, tenant routes, active moves and what each tenant resolves to
    Show,
    /// Move all traffic (or one tenant's) from one provider to another, queued messages
    /// included. Moving back (--from Q --to P) undoes it.
    Move {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long)]
        tenant: Option<String>,
    },
}

pub(super) async fn route(
    cmd: RouteCmd,
    cfg: &Config,
    json_out: bool,
    now: i64,
) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    match cmd {
        RouteCmd::Set { tenant, providers } => {
            let t = ops::tenant(&store, &tenant).await?;
            let names: Vec<String> = providers.split(',').map(str::to_owned).collect();
            let list = ops::set_route(&store, cfg, &t, &names, now).await?;
            let target = format!("tenant:{tenant}");
            audited(
                cfg,
                &store,
                now,
                "route.set",
                &target,
                None,
                json!({"route": list}),
            )
            .await?;
            if json_out {
                println!("{}", json!({"tenant": tenant, "route": list}));
            } else {
                println!(
                    "Route of {tenant}: {} (running servers use it within 1 s)",
                    list.join(" → ")
                );
            }
        }
        RouteCmd::Clear { tenant } => {
            let id = tenant_id(&store, &tenant).await?;
            store.set_route(&id, &[], now).await?;
            let target = format!("tenant:{tenant}");
            audited(cfg, &store, now, "route.clear", &target, None, json!({})).await?;
            if json_out {
                println!("{}", json!({"tenant": tenant, "route": cfg.routes.default}));
            } else {
                println!(
                    "{tenant} follows the default route again: {}",
                    cfg.routes.default.join(" → ")
                );
            }
        }
        RouteCmd::Show => {
            let tenants = store.list_tenants().await?;
            let table = ops::route_table(&store, cfg).await?;
            let name_of = |id: &str| {
                tenants
                    .iter()
                    .find(|t| t.id == id)
                    .map_or(id.to_owned(), |t| t.name.clone())
            };
            if json_out {
                println!("{}", ops::routes_view(&table, &tenants));
            } else {
                println!("default: {}", table.default.join(" → "));
                for m in &table.moves {
                    let scope = m
                        .tenant_id
                        .as_deref()
                        .map_or("all tenants".to_owned(), name_of);
                    println!(
                        "move: {} → {} ({scope}, since {})",
                        m.from,
                        m.to,
                        rfc3339(m.created_at)
                    );
                }
                for t in &tenants {
                    let own = if table.tenants.contains_key(&t.id) {
                        "own"
                    } else {
                        "default"
                    };
                    println!("{}	{}	({own})", t.name, table.resolve(&t.id).join(" → "));
                }
            }
        }
        RouteCmd::Move { from, to, tenant } => {
            let t = ops::tenant_if(&store, tenant.as_deref()).await?;
            let scope = tenant.as_deref().unwrap_or("all tenants");
            let m = ops::move_route(&store, cfg, &from, &to, t.as_ref(), now).await?;
            let detail = json!({"from": from, "to": to, "tenant": tenant, "in_force": m.is_some()});
            audited(
                cfg,
                &store,
                now,
                "route.move",
                &format!("provider:{from}"),
                None,
                detail,
            )
            .await?;
            if json_out {
                println!(
                    "{}",
                    json!({"from": from, "to": to, "tenant": tenant, "in_force": m.is_some()})
                );
            } else if m.is_some() {
                println!(
                    "Moved {scope} from {from} to {to}; running servers follow within 1 s, deferred messages included. Undo with `postern route move --from {to} --to {from}{}`.",
                    tenant
                        .as_deref()
                        .map(|t| format!(" --tenant {t}"))
                        .unwrap_or_default()
                );
            } else {
                println!(
                    "Undid the move of {scope} from {to} to {from}; traffic follows the routes again."
                );
            }
        }
    }
    Ok(())
}
