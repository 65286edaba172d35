//! bench/auth.sh: what authenticating one request costs on the send path (the key's record
//! from the cache + the SHA-256 hash check + expiry, grace, IP and scope checks), beside an
//! empty async call measured in the same run; and whether the hash comparison's time depends
//! on where a wrong key's hash first differs (it must not: `subtle`'s constant-time compare).
//!
//! Prints one line per figure. `AUTH_BENCH_N` requests per figure (default 200,000).

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use postern::admin::ops::{NewKey, add_tenant, create_key};
use postern::auth::KeyAuthenticator;
use postern::clock::{SharedClock, SystemClock};
use postern::domain::KeyPolicy;
use postern::store::Store;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let n: u32 = std::env::var("AUTH_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.path().display());
    let store = Store::connect(&url).await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let now = clock.now_ms();
    let tenant = add_tenant(&store, "bench", now).await?;
    let (_, secret) = create_key(
        &store,
        NewKey {
            tenant,
            scopes: vec!["send".into()],
            test: false,
            description: None,
            policy: KeyPolicy::default(),
            expires_at: None,
        },
        now,
    )
    .await?;
    let presented = secret.expose().to_owned();
    let auth = KeyAuthenticator::new(store, clock);
    let ip: Option<IpAddr> = Some([127, 0, 0, 1].into());
    // Warm the cache (the first use reads the store, as the first request after start does).
    auth.authenticate(&presented, "send", ip).await?;

    let t = Instant::now();
    for _ in 0..n {
        black_box(auth.authenticate(black_box(&presented), "send", ip).await?);
    }
    let per_auth = t.elapsed().as_nanos() as f64 / f64::from(n);

    let t = Instant::now();
    for _ in 0..n {
        black_box(empty(black_box(&presented)).await);
    }
    let per_empty = t.elapsed().as_nanos() as f64 / f64::from(n);

    // Timing safety: the stored hash against hashes wrong in their first or their last byte.
    let right = secret.hash();
    let wrong_at = |i: usize| {
        let mut b = right.clone().into_bytes();
        b[i] = if b[i] == b'0' { b'1' } else { b'0' };
        String::from_utf8(b).expect("hex stays ASCII")
    };
    let (first, last) = (wrong_at(0), wrong_at(right.len() - 1));
    let time_cmp = |h: &str| {
        let t = Instant::now();
        for _ in 0..n {
            black_box(secret.matches(black_box(h)));
        }
        t.elapsed().as_nanos() as f64 / f64::from(n)
    };
    // Interleave the two so machine noise falls on both alike.
    let (mut a, mut b) = (0.0, 0.0);
    for _ in 0..5 {
        a += time_cmp(&first);
        b += time_cmp(&last);
    }
    println!("authenticate (cached): {per_auth:.0} ns/request  (target <= 20000 ns)");
    println!("empty async call:      {per_empty:.0} ns/request  (reference, same run)");
    println!(
        "hash check, wrong first byte: {:.0} ns; wrong last byte: {:.0} ns; ratio {:.2} (constant time: ~1.00)",
        a / 5.0,
        b / 5.0,
        a / b
    );
    Ok(())
}

async fn empty(s: &str) -> usize {
    s.len()
}
