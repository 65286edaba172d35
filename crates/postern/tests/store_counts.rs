//! `message_counts`, the per-tenant, per-status counts that `GET /metrics` and the console's
//! queue depth read, stay equal to a count of `messages` itself through every kind of change, on both backends: group commits, claims,
//! outcomes, recoveries, holds and releases of many rows in one statement, deletes, folds
//! (PostgreSQL), and the migration that creates them on a store that already holds messages.
#![allow(clippy::unwrap_used)]

mod common;

use common::store::{Db, backends, delivered, msg};
use postern::guard::{Pause, PauseScope};
use postern::store::{NewMessage, Store};

/// Runs `$q` on a connection of its own to `$url`, SQLite or PostgreSQL, and maps its rows.
macro_rules! on_either {
    ($url:expr, |$c:ident| $body:expr) => {{
        use sqlx::Connection;
        if $url.starts_with("sqlite:") {
            let mut $c = sqlx::SqliteConnection::connect($url).await.unwrap();
            $body
        } else {
            let mut $c = sqlx::PgConnection::connect($url).await.unwrap();
            $body
        }
    }};
}

/// Counts by status straight from `messages` (of one tenant, or all), in status order.
async fn counted(url: &str, tenant: Option<&str>) -> Vec<(String, i64)> {
    use sqlx::Row;
    const Q: &str = "SELECT status, COUNT(*) AS n FROM messages WHERE ($1 IS NULL OR tenant_id = $1) \
                     GROUP BY status ORDER BY status";
    on_either!(url, |c| sqlx::query(Q)
        .bind(tenant)
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("status"), r.get("n")))
        .collect())
}

/// The statuses the console's queue depth shows.
fn waiting(counts: &[(String, i64)]) -> Vec<(String, i64)> {
    let live = ["queued", "sending", "deferred", "held"];
    counts
        .iter()
        .filter(|(s, _)| live.contains(&s.as_str()))
        .cloned()
        .collect()
}

/// Each tenant's messages by status are as `expected`, and what the store reads from its
/// counts (all tenants for the metrics; waiting ones, per tenant and overall, for the console)
/// equals a count of `messages`.
async fn assert_counts(db: &Db, after: &str, expected: &[(&str, &[(&str, i64)])]) {
    let (s, at) = (&db.store, format!("{} after {after}", db.store.backend()));
    for (tenant, want) in expected {
        let truth = counted(&db.url, Some(tenant)).await;
        let want: Vec<(String, i64)> = want.iter().map(|(s, n)| ((*s).into(), *n)).collect();
        assert_eq!(truth, want, "{at}: tenant {tenant}");
        let depth = s.queue_depth(Some(tenant)).await.unwrap();
        assert_eq!(
            depth,
            waiting(&truth),
            "{at}: tenant {tenant}'s queue depth"
        );
    }
    let truth = counted(&db.url, None).await;
    assert_eq!(s.count_by_status().await.unwrap(), truth, "{at}");
    let depth = s.queue_depth(None).await.unwrap();
    assert_eq!(depth, waiting(&truth), "{at}: queue depth");
}

#[tokio::test]
async fn counts_follow_every_change_of_status() {
    for db in backends().await {
        let s = &db.store;
        assert_counts(&db, "nothing", &[]).await;
        let t = s.create_tenant("acme", 1).await.unwrap();
        // A second tenant's two messages, accepted later than all of acme's, so never claimed.
        let b = s.create_tenant("beta", 1).await.unwrap();
        let beta: &[(&str, i64)] = &[("queued", 2)];
        s.insert_messages(&[msg(&b.id, 100, None), msg(&b.id, 101, None)])
            .await
            .unwrap();
        let mut batch: Vec<NewMessage> = (0..10).map(|n| msg(&t.id, n, None)).collect();
        for m in &mut batch[..3] {
            m.held = Some(("pause:all".into(), "held: all paused".into()));
        }
        // A replayed idempotency key adds no message, so no count either.
        batch.push(msg(&t.id, 10, Some(("k", "h"))));
        batch.push(msg(&t.id, 11, Some(("k", "h"))));
        s.insert_messages(&batch).await.unwrap();
        assert_counts(
            &db,
            "a group commit",
            &[(&t.id, &[("held", 3), ("queued", 8)]), (&b.id, beta)],
        )
        .await;

        let claimed = s.claim_due("n1", 2_000, 60_000, 5).await.unwrap();
        assert_eq!(claimed.len(), 5);
        assert_counts(
            &db,
            "claims",
            &[
                (&t.id, &[("held", 3), ("queued", 3), ("sending", 5)]),
                (&b.id, beta),
            ],
        )
        .await;

        let c = &claimed[0];
        s.complete("n1", &[delivered(&c.id, c.created_at, &c.recipients)])
            .await
            .unwrap();
        // A completion by a node that does not hold the claim changes nothing.
        let d = &claimed[1];
        s.complete("n2", &[delivered(&d.id, d.created_at, &d.recipients)])
            .await
            .unwrap();
        assert_counts(
            &db,
            "an outcome",
            &[
                (
                    &t.id,
                    &[("delivered", 1), ("held", 3), ("queued", 3), ("sending", 4)],
                ),
                (&b.id, beta),
            ],
        )
        .await;

        assert_eq!(s.recover_claims(Some("n1"), 4_000, false).await.unwrap(), 4);
        assert_counts(
            &db,
            "a recovery",
            &[
                (&t.id, &[("delivered", 1), ("held", 3), ("queued", 7)]),
                (&b.id, beta),
            ],
        )
        .await;

        // The "all" pause was never recorded, so the sweep releases its three holds at once.
        let all = Pause {
            scope: PauseScope::All,
            reason: "r".into(),
            actor: "op".into(),
            created_at: 5,
        };
        assert_eq!(s.release_orphaned_holds(10).await.unwrap(), 3);
        assert_counts(
            &db,
            "a release",
            &[(&t.id, &[("delivered", 1), ("queued", 10)]), (&b.id, beta)],
        )
        .await;
        assert!(s.pause(&all).await.unwrap());
        let mut later = msg(&t.id, 20, None);
        later.held = Some((all.scope.tag(), "held: all paused".into()));
        s.insert_messages(&[later.clone()]).await.unwrap();
        s.resume(&all.scope, "op", 11).await.unwrap();
        assert_counts(
            &db,
            "a resume",
            &[(&t.id, &[("delivered", 1), ("queued", 11)]), (&b.id, beta)],
        )
        .await;

        common::run_sql(
            &db.url,
            &format!(
                "DELETE FROM messages WHERE id = '{}'; UPDATE messages SET subject = 'x'",
                later.id
            ),
        )
        .await;
        assert_counts(
            &db,
            "a delete and an update of no status",
            &[(&t.id, &[("delivered", 1), ("queued", 10)]), (&b.id, beta)],
        )
        .await;

        let rows_before = count_rows(&db.url).await;
        s.fold_message_counts().await.unwrap();
        assert_counts(
            &db,
            "a fold",
            &[(&t.id, &[("delivered", 1), ("queued", 10)]), (&b.id, beta)],
        )
        .await;
        let rows_after = count_rows(&db.url).await;
        // SQLite keeps a row per tenant and status ever seen (a fold has nothing to do);
        // PostgreSQL's deltas fold into one row per tenant and status left: acme's delivered
        // and queued, beta's queued.
        let folded_to = if s.backend() == "sqlite" {
            rows_before
        } else {
            3
        };
        assert_eq!(
            rows_after,
            folded_to,
            "{}: {rows_before} rows of counts before the fold",
            s.backend()
        );
        // Writes after a fold add to it.
        s.insert_messages(&[msg(&t.id, 30, None)]).await.unwrap();
        assert_counts(
            &db,
            "a write after the fold",
            &[(&t.id, &[("delivered", 1), ("queued", 11)]), (&b.id, beta)],
        )
        .await;
    }
}

async fn count_rows(url: &str) -> i64 {
    const Q: &str = "SELECT COUNT(*) FROM message_counts";
    on_either!(url, |c| sqlx::query_scalar(Q)
        .fetch_one(&mut c)
        .await
        .unwrap())
}

/// A store that held messages before the counts existed gets them counted by the migration.
#[tokio::test]
async fn the_migration_counts_the_messages_already_stored() {
    for db in backends().await {
        let s = &db.store;
        let t = s.create_tenant("acme", 1).await.unwrap();
        let batch: Vec<NewMessage> = (0..6).map(|n| msg(&t.id, n, None)).collect();
        s.insert_messages(&batch).await.unwrap();
        s.claim_due("n1", 2_000, 60_000, 2).await.unwrap();
        // Back to the schema before the counts, with the messages kept.
        let undo = if db.url.starts_with("sqlite:") {
            "DROP TRIGGER messages_counted_update; \
             DROP TRIGGER messages_counted_delete; DROP TABLE message_counts; \
             DELETE FROM schema_migrations WHERE version = 16"
        } else {
            "DROP TRIGGER messages_counted_insert ON messages; DROP TRIGGER messages_counted_update ON messages; \
             DROP TRIGGER messages_counted_delete ON messages; DROP FUNCTION message_counts_track(); DROP FUNCTION message_counts_move(); \
             DROP TABLE message_counts; DELETE FROM schema_migrations WHERE version = 16"
        };
        common::run_sql(&db.url, undo).await;
        s.close().await;
        let reopened = Db {
            store: Store::connect(&db.url).await.unwrap(),
            ..db
        };
        assert_counts(
            &reopened,
            "the migration",
            &[(&t.id, &[("queued", 4), ("sending", 2)])],
        )
        .await;
    }
}

/// An in-memory SQLite store commits accepts through sqlx rather than the file's own
/// connection; it counts them the same way.
#[tokio::test]
async fn an_in_memory_store_counts_its_accepts_too() {
    let s = Store::connect("sqlite::memory:").await.unwrap();
    let t = s.create_tenant("acme", 1).await.unwrap();
    let mut batch: Vec<NewMessage> = (0..5).map(|n| msg(&t.id, n, None)).collect();
    batch[0].held = Some(("pause:all".into(), "held: all paused".into()));
    s.insert_messages(&batch).await.unwrap();
    s.insert_messages(&[msg(&t.id, 9, None)]).await.unwrap();
    s.claim_due("n1", 2_000, 60_000, 1).await.unwrap();
    let want = [("held", 1), ("queued", 4), ("sending", 1)];
    let want: Vec<(String, i64)> = want.iter().map(|(s, n)| ((*s).into(), *n)).collect();
    assert_eq!(s.count_by_status().await.unwrap(), want);
    assert_eq!(s.queue_depth(Some(&t.id)).await.unwrap(), want);
}
