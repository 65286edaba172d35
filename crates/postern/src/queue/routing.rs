//! Which providers a tenant's message may go to, in order: the tenant's own route or the
//! default one, with the active moves applied. Held in memory and reloaded from the store, so
//! deciding costs no query; `route set` and `route move` from the CLI reach a running server
//! within one reload interval.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::store::{RouteMove, Store};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    pub default: Vec<String>,
    /// By tenant id.
    pub tenants: HashMap<String, Vec<String>>,
    /// Oldest first; each replaces `from` by `to` in the routes it covers.
    pub moves: Vec<RouteMove>,
}

impl RouteTable {
    /// The providers for `tenant_id`, in order, each at most once.
    pub fn resolve(&self, tenant_id: &str) -> Vec<String> {
        let base = self.tenants.get(tenant_id).unwrap_or(&self.default);
        let mut out: Vec<String> = Vec::with_capacity(base.len());
        for name in base {
            let mut name = name.as_str();
            // A chain of moves (a→b, then b→c) follows through; the bound stops a cycle.
            for _ in 0..=self.moves.len() {
                let next = self.moves.iter().find(|m| {
                    m.from == name && m.tenant_id.as_deref().is_none_or(|t| t == tenant_id)
                });
                match next {
                    Some(m) => name = &m.to,
                    None => break,
                }
            }
            if !out.iter().any(|n| n == name) {
                out.push(name.to_owned());
            }
        }
        out
    }
}

/// The live routing table; cheap to clone.
#[derive(Clone)]
pub struct Routes {
    table: Arc<RwLock<Arc<RouteTable>>>,
}

impl Routes {
    pub fn new(default: Vec<String>) -> Self {
        Self {
            table: Arc::new(RwLock::new(Arc::new(RouteTable {
                default,
                ..RouteTable::default()
            }))),
        }
    }

    pub fn table(&self) -> Arc<RouteTable> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn resolve(&self, tenant_id: &str) -> Vec<String> {
        self.table().resolve(tenant_id)
    }

    /// Reads tenant routes and moves from the store. Returns the moves that are new since the
    /// last load, so the caller can pull their deferred messages forward.
    pub async fn reload(&self, store: &Store) -> crate::store::Result<Vec<RouteMove>> {
        let tenants = store.routes().await?.into_iter().collect();
        let moves = store.route_moves().await?;
        let old = self.table();
        let fresh: Vec<RouteMove> = moves
            .iter()
            .filter(|m| !old.moves.iter().any(|o| o.id == m.id))
            .cloned()
            .collect();
        let table = RouteTable {
            default: old.default.clone(),
            tenants,
            moves,
        };
        if table != *old {
            *self.table.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(tenant: Option<&str>, from: &str, to: &str) -> RouteMove {
        RouteMove {
            id: format!("{from}-{to}"),
            tenant_id: tenant.map(str::to_owned),
            from: from.into(),
            to: to.into(),
            created_at: 0,
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn tenant_routes_override_the_default_and_moves_apply_by_scope() {
        let mut t = RouteTable {
            default: names(&["ses", "postmark", "smtp"]),
            ..Default::default()
        };
        t.tenants.insert("acme".into(), names(&["smtp", "ses"]));
        assert_eq!(t.resolve("other"), names(&["ses", "postmark", "smtp"]));
        assert_eq!(t.resolve("acme"), names(&["smtp", "ses"]));

        t.moves.push(mv(None, "ses", "postmark"));
        assert_eq!(t.resolve("other"), names(&["postmark", "smtp"]));
        assert_eq!(t.resolve("acme"), names(&["smtp", "postmark"]));

        t.moves = vec![mv(Some("acme"), "smtp", "ses")];
        assert_eq!(t.resolve("acme"), names(&["ses"]));
        assert_eq!(t.resolve("other"), names(&["ses", "postmark", "smtp"]));
    }

    #[test]
    fn chained_and_cyclic_moves_terminate() {
        let t = RouteTable {
            default: names(&["a", "x"]),
            moves: vec![mv(None, "a", "b"), mv(None, "b", "c")],
            ..Default::default()
        };
        assert_eq!(t.resolve("t"), names(&["c", "x"]));
        let cyclic = RouteTable {
            default: names(&["a"]),
            moves: vec![mv(None, "a", "b"), mv(None, "b", "a")],
            ..Default::default()
        };
        assert_eq!(cyclic.resolve("t").len(), 1);
    }
}
