//! `message_counts`, the per-status counts that `GET /metrics` reads, stay equal to a count of
//! `messages` itself through every kind of change, on both backends: group commits, claims,
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

/// Counts by status straight from `messages`, in `count_by_status`'s order.
async fn counted(url: &str) -> Vec<(String, i64)> {
    use sqlx::Row;
    const Q: &str = "SELECT status, COUNT(*) AS n FROM messages GROUP BY status ORDER BY status";
    on_either!(url, |c| sqlx::query(Q)
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get("status"), r.get("n")))
        .collect())
}

async fn assert_counts(db: &Db, after: &str, expected: &[(&str, i64)]) {
    let kept = db.store.count_by_status().await.unwrap();
    let truth = counted(&db.url).await;
    assert_eq!(kept, truth, "{} after {after}", db.store.backend());
    let expected: Vec<(String, i64)> = expected.iter().map(|(s, n)| ((*s).into(), *n)).collect();
    assert_eq!(kept, expected, "{} after {after}", db.store.backend());
}

#[tokio::test]
async fn counts_follow_every_change_of_status() {
    for db in backends().await {
        let s = &db.store;
        assert_counts(&db, "nothing", &[]).await;
        let t = s.create_tenant("acme", 1).await.unwrap();
        let mut batch: Vec<NewMessage> = (0..10).map(|n| msg(&t.id, n, None)).collect();
        for m in &mut batch[..3] {
            m.held = Some(("pause:all".into(), "held: all paused".into()));
        }
        // A replayed idempotency key adds no message, so no count either.
        batch.push(msg(&t.id, 10, Some(("k", "h"))));
        batch.push(msg(&t.id, 11, Some(("k", "h"))));
        s.insert_messages(&batch).await.unwrap();
        assert_counts(&db, "a group commit", &[("held", 3), ("queued", 8)]).await;

        let claimed = s.claim_due("n1", 2_000, 60_000, 5).await.unwrap();
        assert_eq!(claimed.len(), 5);
        assert_counts(&db, "claims", &[("held", 3), ("queued", 3), ("sending", 5)]).await;

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
            &[("delivered", 1), ("held", 3), ("queued", 3), ("sending", 4)],
        )
        .await;

        assert_eq!(s.recover_claims("n1", 4_000, false).await.unwrap(), 4);
        assert_counts(
            &db,
            "a recovery",
            &[("delivered", 1), ("held", 3), ("queued", 7)],
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
        assert_counts(&db, "a release", &[("delivered", 1), ("queued", 10)]).await;
        assert!(s.pause(&all).await.unwrap());
        let mut later = msg(&t.id, 20, None);
        later.held = Some((all.scope.tag(), "held: all paused".into()));
        s.insert_messages(&[later.clone()]).await.unwrap();
        s.resume(&all.scope, "op", 11).await.unwrap();
        assert_counts(&db, "a resume", &[("delivered", 1), ("queued", 11)]).await;

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
            &[("delivered", 1), ("queued", 10)],
        )
        .await;

        let rows_before = count_rows(&db.url).await;
        s.fold_message_counts().await.unwrap();
        assert_counts(&db, "a fold", &[("delivered", 1), ("queued", 10)]).await;
        let rows_after = count_rows(&db.url).await;
        // SQLite keeps a row per status ever seen (a fold has nothing to do); PostgreSQL's
        // deltas fold into one row per status left.
        let folded_to = if s.backend() == "sqlite" {
            rows_before
        } else {
            2
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
            &[("delivered", 1), ("queued", 11)],
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
            "DROP TRIGGER messages_counted_insert; DROP TRIGGER messages_counted_update; \
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
        assert_counts(&reopened, "the migration", &[("queued", 4), ("sending", 2)]).await;
    }
}
