//! Key rotation on a controllable clock: the old key works through its whole grace period
//! (24 h by default) and stops the moment it ends; the successor works throughout.

use std::sync::Arc;

use postern::admin::ops::{NewKey, add_tenant, create_key, rotate_key};
use postern::auth::{AuthError, KeyAuthenticator};
use postern::clock::{ManualClock, SharedClock};
use postern::domain::KeyPolicy;
use postern::store::Store;

const HOUR: i64 = 3_600_000;

#[tokio::test]
async fn the_old_key_works_until_its_grace_period_ends_and_not_a_moment_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}/keys.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url).await.expect("store");
    let start = 1_800_000_000_000;
    let clock = ManualClock::new(start);
    let shared: SharedClock = clock.clone();
    let tenant = add_tenant(&store, "acme", start).await.expect("tenant");
    let new_key = NewKey {
        tenant,
        scopes: vec!["send".into()],
        test: false,
        description: None,
        policy: KeyPolicy::default(),
        expires_at: None,
    };
    let (old_rec, old) = create_key(&store, new_key, start).await.expect("key");
    let (succ_rec, succ) = rotate_key(&store, old_rec.clone(), 24 * HOUR, start)
        .await
        .expect("rotate");
    let auth = KeyAuthenticator::new(store, shared);
    let ip = Some([127, 0, 0, 1].into());

    for at in [0, HOUR, 23 * HOUR, 24 * HOUR - 1] {
        clock.advance_ms(at - (clock_now(&clock) - start));
        let p = auth
            .authenticate(old.expose(), "send", ip)
            .await
            .unwrap_or_else(|e| panic!("old key refused {at} ms into its grace: {e}"));
        assert_eq!(p.key_id, old_rec.id);
        let p = auth
            .authenticate(succ.expose(), "send", ip)
            .await
            .expect("successor");
        assert_eq!(p.key_id, succ_rec.id);
    }
    clock.advance_ms(1); // exactly 24 h after the rotation
    match auth.authenticate(old.expose(), "send", ip).await {
        Err(AuthError::Rotated(id, successor)) => {
            assert_eq!(id, old_rec.id);
            assert_eq!(successor, succ_rec.id);
        }
        other => panic!("old key after its grace period: {other:?}"),
    }
    clock.advance_ms(30 * 24 * HOUR);
    assert!(auth.authenticate(old.expose(), "send", ip).await.is_err());
    auth.authenticate(succ.expose(), "send", ip)
        .await
        .expect("the successor keeps working");
}

fn clock_now(c: &Arc<ManualClock>) -> i64 {
    use postern::clock::Clock;
    c.now_ms()
}
