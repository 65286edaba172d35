//! The migration runner: the schema files in order, each applied once in one transaction.

use super::*;

impl Store {
    /// Applies the schema migrations not yet applied, in one transaction.
    pub(super) async fn migrate(&self) -> Result<()> {
        let (types, lock, counts) = match self {
            Store::Sqlite(_) => (
                sqlite::SCHEMA_TYPES,
                None,
                include_str!("message_counts_sqlite.sql"),
            ),
            Store::Postgres(_) => (
                postgres::SCHEMA_TYPES,
                Some(postgres::MIGRATION_LOCK),
                include_str!("message_counts_postgres.sql"),
            ),
        };
        let schema = types
            .iter()
            .fold(include_str!("schema.sql").to_owned(), |s, (k, v)| {
                s.replace(k, v)
            });
        let migrations = [
            Migration {
                version: 1,
                sql: schema,
            },
            Migration {
                version: 2,
                sql: include_str!("routes.sql").to_owned(),
            },
            Migration {
                version: 3,
                sql: include_str!("pauses.sql").to_owned(),
            },
            Migration {
                version: 4,
                sql: include_str!("suppressions.sql").to_owned(),
            },
            Migration {
                version: 5,
                sql: include_str!("keys.sql").to_owned(),
            },
            Migration {
                version: 6,
                sql: include_str!("feedback.sql").to_owned(),
            },
            Migration {
                version: 7,
                sql: include_str!("guard.sql").to_owned(),
            },
            Migration {
                version: 8,
                sql: include_str!("audit.sql").to_owned(),
            },
            Migration {
                version: 9,
                sql: include_str!("secrets.sql").to_owned(),
            },
            Migration {
                version: 10,
                sql: include_str!("admins.sql").to_owned(),
            },
            Migration {
                version: 11,
                sql: include_str!("guard_memory.sql").to_owned(),
            },
            Migration {
                version: 12,
                sql: include_str!("notices.sql").to_owned(),
            },
            Migration {
                version: 14,
                sql: include_str!("status.sql").to_owned(),
            },
            Migration {
                version: 15,
                sql: include_str!("accept_event.sql").to_owned(),
            },
            // Triggers differ between the two backends (see each file).
            Migration {
                version: 16,
                sql: counts.to_owned(),
            },
            Migration {
                version: 17,
                sql: include_str!("tags.sql").to_owned(),
            },
        ];
        on_pool!(self, p, Db => {
            let mut tx = p.begin().await?;
            if let Some(lock) = lock {
                sqlx::query(lock).execute(&mut *tx).await?;
            }
            sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
                .execute(&mut *tx).await?;
            // Versions are handed out in blocks, so a lower one can arrive after a higher one
            // was applied: every version not applied yet runs, in order.
            let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
                .fetch_all(&mut *tx).await?.iter().map(|r| r.try_get("version")).collect::<std::result::Result<_, _>>()?;
            let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock) / 1000;
            let mut migrations = migrations;
            migrations.sort_by_key(|m| m.version);
            for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
                sqlx::raw_sql(&m.sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(m.version).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// Schema migrations, applied in order at start; each runs once, recorded in
/// `schema_migrations`. (sqlx's `migrate!` would pull in its proc-macro stack, which builds
/// the SQLite C library a second time, for a loop of a dozen lines.)
struct Migration {
    version: i64,
    sql: String,
}
