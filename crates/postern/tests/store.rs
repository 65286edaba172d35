//! The store's contract, run against both backends.
#![allow(clippy::unwrap_used)]

mod common;

use postern::domain::{EventKind, MessageStatus, RecipientState};
use postern::store::{Completion, Inserted, NewEvent, NewMessage, Recipient, StoreError};

use common::store::{backends, delivered, msg};

#[tokio::test]
async fn tenants_and_keys() {
    for db in backends().await {
        let s = &db.store;
        let t = s.create_tenant("acme", 1).await.unwrap();
        assert!(
            matches!(
                s.create_tenant("acme", 2).await,
                Err(StoreError::Conflict(_))
            ),
            "{}",
            s.backend()
        );
        assert_eq!(s.tenant_by_name("acme").await.unwrap().id, t.id);
        assert!(matches!(
            s.tenant_by_name("nope").await,
            Err(StoreError::NotFound)
        ));
        let k = postern::store::KeyRecord {
            id: "AAAAAAAAAAAA".into(),
            tenant_id: t.id.clone(),
            tenant: t.name.clone(),
            secret_hash: "h".into(),
            scopes: "send".into(),
            description: None,
            created_at: 5,
            revoked_at: None,
            ..Default::default()
        };
        s.insert_key(&k).await.unwrap();
        assert_eq!(s.key("AAAAAAAAAAAA").await.unwrap().tenant, "acme");
        s.revoke_key("AAAAAAAAAAAA", 9).await.unwrap();
        s.revoke_key("AAAAAAAAAAAA", 10).await.unwrap();
        assert_eq!(
            s.key("AAAAAAAAAAAA").await.unwrap().revoked_at,
            Some(9),
            "first revocation time kept"
        );
        assert!(matches!(
            s.revoke_key("BBBBBBBBBBBB", 1).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(s.list_keys(Some(&t.id)).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn group_insert_with_idempotency() {
    for db in backends().await {
        let s = &db.store;
        let t = s.create_tenant("acme", 1).await.unwrap();
        let first = msg(&t.id, 1, Some(("k1", "hash-a")));
        let batch = vec![
            first.clone(),
            msg(&t.id, 2, None),
            msg(&t.id, 3, Some(("k1", "hash-a"))), // same key, same request, same batch
            msg(&t.id, 4, Some(("k1", "hash-b"))), // same key, another request
        ];
        let out = s.insert_messages(&batch).await.unwrap();
        assert_eq!(
            out[0],
            Inserted::New {
                id: first.id.clone(),
                status: "queued".into()
            },
            "{}",
            s.backend()
        );
        assert!(matches!(&out[1], Inserted::New { .. }));
        assert_eq!(
            out[2],
            Inserted::Replay {
                id: first.id.clone(),
                status: "queued".into()
            }
        );
        assert_eq!(
            out[3],
            Inserted::KeyReused {
                id: first.id.clone()
            }
        );
        // A later batch replays too.
        let again = s
            .insert_messages(&[msg(&t.id, 5, Some(("k1", "hash-a")))])
            .await
            .unwrap();
        assert_eq!(
            again[0],
            Inserted::Replay {
                id: first.id.clone(),
                status: "queued".into()
            }
        );
        let counts = s.count_by_status().await.unwrap();
        assert_eq!(
            counts,
            vec![("queued".to_owned(), 2)],
            "only two messages stored"
        );
        let rec = s.message(&t.id, &first.id).await.unwrap();
        assert_eq!(rec.events.len(), 1);
        assert_eq!(rec.events[0].kind, "queued");
        assert!(matches!(
            s.message("other-tenant", &first.id).await,
            Err(StoreError::NotFound)
        ));
    }
}

#[tokio::test]
async fn claim_complete_and_recover() {
    for db in backends().await {
        let s = &db.store;
        let t = s.create_tenant("acme", 1).await.unwrap();
        let batch: Vec<NewMessage> = (0..10).map(|n| msg(&t.id, n, None)).collect();
        s.insert_messages(&batch).await.unwrap();
        // Nothing is due before its time.
        assert!(
            s.claim_due("n1", 500, 60_000, 100)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            s.backend()
        );
        let a = s.claim_due("n1", 2_000, 60_000, 4).await.unwrap();
        let b = s.claim_due("n2", 2_000, 60_000, 100).await.unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(b.len(), 6);
        let mut ids: Vec<&str> = a.iter().chain(&b).map(|c| c.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10, "no message claimed twice");
        assert!(a.iter().all(|c| c.attempts == 1 && !c.in_doubt));

        // Complete one of n1's as delivered; a completion by the wrong node is ignored.
        let done = &a[0];
        s.complete(
            "n2",
            &[delivered(&done.id, done.created_at, &done.recipients)],
        )
        .await
        .unwrap();
        assert_eq!(
            s.message(&t.id, &done.id).await.unwrap().status,
            "sending",
            "wrong node cannot complete"
        );
        s.complete(
            "n1",
            &[delivered(&done.id, done.created_at, &done.recipients)],
        )
        .await
        .unwrap();
        let rec = s.message(&t.id, &done.id).await.unwrap();
        assert_eq!(rec.status, "delivered");
        assert!(
            rec.recipients
                .iter()
                .all(|r| r.state == RecipientState::Delivered)
        );
        assert_eq!(rec.events.last().unwrap().kind, "delivered");

        // While n1 runs, its periodic sweep takes back only leases that ran out: none yet.
        // Its own three live claims may be mid-send.
        assert_eq!(s.recover_claims(None, 4_000, false).await.unwrap(), 0);
        // n1 restarts: its three other claims come back, in doubt; n2's stay (lease valid).
        assert_eq!(s.recover_claims(Some("n1"), 4_000, false).await.unwrap(), 3);
        let again = s.claim_due("n1", 4_000, 60_000, 100).await.unwrap();
        assert_eq!(again.len(), 3);
        assert!(again.iter().all(|c| c.in_doubt && c.attempts == 2));
        // n2's six leases run out (n1's new ones have not): anyone may take them back.
        assert_eq!(
            s.recover_claims(None, 2_000 + 60_001, false).await.unwrap(),
            6
        );
        let rec = s.message(&t.id, &b[0].id).await.unwrap();
        assert_eq!(rec.events.last().unwrap().kind, "recovered");

        // A message in doubt that a pause holds before any provider is asked is still in doubt
        // once released: the provider that may have taken it is asked first.
        let c = &again[0];
        let mut held = delivered(&c.id, c.created_at, &c.recipients);
        held.status = MessageStatus::Held;
        held.held_by = Some("pause:all".into());
        held.recipients = c.recipients.clone();
        s.complete("n1", &[held]).await.unwrap();
        let filter = postern::store::HeldFilter {
            tenant_id: None,
            key_id: None,
            held_by: Some("pause:all".into()),
        };
        assert_eq!(
            s.release_held(&filter, "op", "test", 5_000).await.unwrap(),
            1
        );
        let back = s
            .claim_due("n1", 2_000 + 60_002, 60_000, 100)
            .await
            .unwrap();
        let back = back.iter().find(|m| m.id == c.id).expect("claimed again");
        assert!(back.in_doubt, "{}", s.backend());
    }
}

#[tokio::test]
async fn holds_of_a_lifted_pause_are_swept_back_in_line() {
    use postern::guard::{Pause, PauseScope};
    for db in backends().await {
        let s = &db.store;
        let t = s.create_tenant("acme", 1).await.unwrap();
        let mut a = msg(&t.id, 1, None);
        a.held = Some(("pause:all".into(), "held: all paused".into()));
        let mut b = msg(&t.id, 2, None);
        b.held = Some((
            format!("pause:tenant:{}", t.id),
            "held: tenant paused".into(),
        ));
        let mut c = msg(&t.id, 3, None);
        c.held = Some(("guard:other".into(), "held by something else".into()));
        s.insert_messages(&[a.clone(), b.clone(), c.clone()])
            .await
            .unwrap();
        // The tenant's pause still exists; the "all" pause does not.
        let tenant_pause = Pause {
            scope: PauseScope::Tenant(t.id.clone()),
            reason: "r".into(),
            actor: "op".into(),
            created_at: 5,
        };
        assert!(s.pause(&tenant_pause).await.unwrap());
        assert_eq!(
            s.release_orphaned_holds(10).await.unwrap(),
            1,
            "{}",
            s.backend()
        );
        let status = |id: &str| {
            let (s, t, id) = (s.clone(), t.id.clone(), id.to_owned());
            async move { s.message(&t, &id).await.unwrap().status }
        };
        assert_eq!(status(&a.id).await, "queued");
        assert_eq!(status(&b.id).await, "held");
        assert_eq!(status(&c.id).await, "held", "only pause holds are swept");
        s.resume(&tenant_pause.scope, "op", 11).await.unwrap();
        assert_eq!(status(&b.id).await, "queued");
        assert_eq!(s.release_orphaned_holds(12).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn guard_ledger_recipient_memory_and_held_summary() {
    for db in backends().await {
        let s = &db.store;
        let t = s.create_tenant("acme", 1).await.unwrap();
        let mut batch: Vec<NewMessage> = (0..6).map(|n| msg(&t.id, n, None)).collect();
        for (i, m) in batch.iter_mut().enumerate().skip(2) {
            m.held = Some(("pause:key:k".into(), "held: test".into()));
            m.recipients = vec![
                format!("lead{i}@shop.example"),
                format!("x{i}@Other.example"),
            ];
            m.subject = Some(if i < 5 { "Offer" } else { "Other" }.into());
        }
        s.insert_messages(&batch).await.unwrap();

        // Two delivered recipients through "ses" (one before the window), one through "local".
        let c = s.claim_due("n1", 2_000, 60_000, 10).await.unwrap();
        assert_eq!(c.len(), 2, "{}", s.backend());
        let delivered = |m: &postern::store::Claimed, at: i64, provider: &str| Completion {
            id: m.id.clone(),
            created_at: m.created_at,
            held_by: None,
            suppress: vec![],
            status: MessageStatus::Delivered,
            recipients: m
                .recipients
                .iter()
                .map(|r| Recipient {
                    address: r.address.clone(),
                    state: RecipientState::Delivered,
                })
                .collect(),
            next_attempt_at: at,
            provider: Some(provider.into()),
            last_error: None,
            at,
            events: m
                .recipients
                .iter()
                .map(|r| NewEvent {
                    message_id: m.id.clone(),
                    at,
                    kind: EventKind::Delivered,
                    recipient: Some(r.address.clone()),
                    provider: Some(provider.into()),
                    detail: None,
                })
                .collect(),
        };
        s.complete(
            "n1",
            &[
                delivered(&c[0], 3_000, "ses"),
                delivered(&c[1], 5_000, "local"),
            ],
        )
        .await
        .unwrap();
        assert_eq!(s.delivered_via("ses", 0).await.unwrap(), 2);
        assert_eq!(s.delivered_via("ses", 4_000).await.unwrap(), 0);
        assert_eq!(s.delivered_via("local", 4_000).await.unwrap(), 2);

        // The console's counts: every accept (read from the rows), the held and delivered events.
        let mut counts: Vec<(String, Option<String>, i64)> = s
            .event_counts(1_000, 10_000, Some(&t.id))
            .await
            .unwrap()
            .into_iter()
            .map(|c| {
                assert_eq!((c.bucket, &c.tenant_id), (0, &t.id));
                (c.kind, c.provider, c.n)
            })
            .collect();
        counts.sort();
        let count = |kind: &str, provider: Option<&str>, n| {
            (kind.to_owned(), provider.map(str::to_owned), n)
        };
        assert_eq!(
            counts,
            [
                count("delivered", Some("local"), 2),
                count("delivered", Some("ses"), 2),
                count("held", None, 4),
                count("queued", None, 6),
            ],
            "{}",
            s.backend()
        );
        let since_1004 = s.event_counts(1_004, 10_000, None).await.unwrap();
        assert!(
            since_1004.iter().any(|c| c.kind == "queued" && c.n == 2),
            "{since_1004:?}"
        );
        assert!(
            s.event_counts(0, 10_000, Some("other"))
                .await
                .unwrap()
                .is_empty()
        );

        let recent = s.recent_recipients(0, 100).await.unwrap();
        assert_eq!(recent.len(), 6);
        assert!(recent.iter().all(|(tenant, _)| *tenant == t.id));
        assert_eq!(recent[0].1, ["lead5@shop.example", "x5@Other.example"]);
        assert_eq!(s.recent_recipients(1_004, 100).await.unwrap().len(), 2);

        let f = postern::store::HeldFilter {
            tenant_id: Some(t.id.clone()),
            key_id: None,
            held_by: None,
        };
        let sum = s.held_summary(&f, 0).await.unwrap();
        assert_eq!(sum.count, 4);
        assert_eq!(
            sum.top_domains,
            [
                ("other.example".to_owned(), 4),
                ("shop.example".to_owned(), 4)
            ]
        );
        assert_eq!(sum.sample_subjects, ["Offer", "Other"]);
        assert_eq!(s.held_summary(&f, 1_005).await.unwrap().count, 1);
    }
}

/// A message's history starts with its accept, read from its row: nothing stores a 'queued'
/// event any more. One stored by an older version (before migration 15, or by an older node
/// still running against the same database) is passed over, so the accept shows once; a held
/// message's hold follows it.
#[tokio::test]
async fn the_accept_event_comes_from_the_row_once_even_beside_a_stored_one() {
    for db in backends().await {
        let s = &db.store;
        let t = s.create_tenant("acme", 1).await.unwrap();
        let m = msg(&t.id, 1, None);
        let mut held = msg(&t.id, 2, None);
        held.held = Some(("pause:all".into(), "held: all paused by op: test".into()));
        s.insert_messages(&[m.clone(), held.clone()]).await.unwrap();
        let kinds = |r: &postern::store::MessageRecord| {
            r.events.iter().map(|e| e.kind.clone()).collect::<Vec<_>>()
        };
        let rec = s.message(&t.id, &m.id).await.unwrap();
        assert_eq!(kinds(&rec), ["queued"], "{}", s.backend());
        assert_eq!(rec.events[0].at, m.created_at);
        assert_eq!(rec.events[0].detail.as_deref(), Some("accepted via http"));
        let rec = s.message(&t.id, &held.id).await.unwrap();
        assert_eq!(kinds(&rec), ["queued", "held"], "{}", s.backend());

        // What an older version stored for every accept.
        common::run_sql(
            &db.url,
            &format!(
                "INSERT INTO message_events (message_id, at, kind, detail) \
                 VALUES ('{}', {}, 'queued', 'accepted via http')",
                m.id, m.created_at
            ),
        )
        .await;
        let rec = s.message(&t.id, &m.id).await.unwrap();
        assert_eq!(kinds(&rec), ["queued"], "{}", s.backend());
    }
}

/// A repeat in the same batch as its first message gets the first message's answer, also when
/// that one is suppressed; and the key's answer can be read before a retry is admitted.
#[tokio::test]
async fn a_repeat_in_the_same_batch_gets_the_suppressed_answer() {
    for db in backends().await {
        let s = &db.store;
        let t = s.create_tenant("acme", 1).await.unwrap();
        let list: Vec<postern::store::suppressions::Suppression> =
            ["r9@example.org", "s9@example.org"]
                .iter()
                .map(|a| postern::store::suppressions::Suppression {
                    address: (*a).to_owned(),
                    reason: "manual".into(),
                    source: "cli".into(),
                    detail: None,
                    created_at: 1,
                })
                .collect();
        s.suppress(&t.id, &list).await.unwrap();
        let first = msg(&t.id, 9, Some(("k9", "hash-a")));
        let out = s
            .insert_messages(&[first.clone(), msg(&t.id, 9, Some(("k9", "hash-a")))])
            .await
            .unwrap();
        let suppressed = |id: &str| Inserted::Replay {
            id: id.to_owned(),
            status: "suppressed".into(),
        };
        assert_eq!(
            out[0],
            Inserted::New {
                id: first.id.clone(),
                status: "suppressed".into()
            },
            "{}",
            s.backend()
        );
        assert_eq!(out[1], suppressed(&first.id), "{}", s.backend());
        assert_eq!(
            s.idempotent_answer(&t.id, "k9", "hash-a").await.unwrap(),
            Some(suppressed(&first.id))
        );
        assert_eq!(
            s.idempotent_answer(&t.id, "k9", "hash-b").await.unwrap(),
            Some(Inserted::KeyReused {
                id: first.id.clone()
            })
        );
        assert_eq!(
            s.idempotent_answer(&t.id, "k10", "hash-a").await.unwrap(),
            None
        );
        assert_eq!(
            s.idempotent_answer("other", "k9", "hash-a").await.unwrap(),
            None
        );
    }
}
