//! The guard's per-message cost: the full observe path a message takes (the key check's
//! access signals, then volume, recipient novelty and spread, SimHash content and the rates'
//! denominators after the accept, then the delivery outcome), in ns per message, next to an
//! empty function call measured in the same run. `bash bench/detector.sh` runs it.

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use postern::clock::{SharedClock, SystemClock};
use postern::guard::{Guard, GuardConfig};
use postern::store::NewMessage;

#[inline(never)]
fn empty(m: &NewMessage) -> usize {
    black_box(m).recipients.len()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let keys = 200;
    let tenants = 50;
    let domains = [
        "gmail.com",
        "outlook.com",
        "yahoo.com",
        "web.de",
        "corp.example",
    ];
    let messages: Vec<(NewMessage, IpAddr)> = (0..n)
        .map(|i| {
            let key = i % keys;
            let subject = format!("Your receipt #{i}");
            let body = format!(
                "Hello customer {i},\r\n\r\nthank you for your order {i}. Your receipt is attached; \
                 the items ship within two days. Questions? Reply to this message or visit our \
                 help centre at https://help.example.com/orders/{i}.\r\n\r\nThe Example team\r\n"
            );
            let raw = format!(
                "From: shop@example.com\r\nTo: c{i}@x\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
            );
            let m = NewMessage {
                id: format!("{i}"),
                tenant_id: format!("tenant{}", key % tenants),
                key_id: Some(format!("key{key}")),
                source: "http",
                mail_from: "shop@example.com".into(),
                recipients: vec![format!("customer{}@{}", i % 50_000, domains[i % 5])],
                subject: Some(subject),
                message_id_header: String::new(),
                raw: raw.into_bytes(),
                created_at: 0,
                expires_at: 0,
                idempotency: None,
                held: None,
                tags: Vec::new(),
            };
            let ip: IpAddr = format!("10.0.{}.{}", key % 250, i % 7).parse().expect("ip");
            (m, ip)
        })
        .collect();
    let clock: SharedClock = Arc::new(SystemClock);
    let cfg = GuardConfig {
        // The load here is far above any floor; the figure is the cost of looking, not of
        // acting, so keep the detector from holding the benchmark's own traffic.
        volume_floor_per_minute: u64::MAX / 2,
        burst_floor_per_second: u64::MAX / 2,
        ..Default::default()
    };
    let (guard, mut trips) = Guard::new(cfg, clock);

    // Warm-up: every key, tenant and recipient memory exists before timing.
    for (m, ip) in messages.iter().take(n / 4) {
        guard.key_used(
            m.key_id.as_deref().unwrap_or(""),
            Some(*ip),
            Some("shop/1.0"),
        );
        guard.accepted_message(m);
    }

    let t = Instant::now();
    let mut acc = 0usize;
    for (m, _) in &messages {
        acc += empty(m);
    }
    let empty_ns = t.elapsed().as_nanos() as f64 / n as f64;
    black_box(acc);

    let t = Instant::now();
    for (m, ip) in &messages {
        let key = m.key_id.as_deref().unwrap_or("");
        guard.key_used(key, Some(*ip), Some("shop/1.0"));
        let seen = guard.prepare(m);
        guard.observe(seen);
        guard.delivered(&m.tenant_id, Some(key), "ses", 1, 0);
    }
    let full_ns = t.elapsed().as_nanos() as f64 / n as f64;

    let t = Instant::now();
    for (m, _) in &messages {
        guard.accepted(&m.tenant_id, m.key_id.as_deref(), 1);
    }
    let volume_ns = t.elapsed().as_nanos() as f64 / n as f64;

    let mut tripped = 0;
    while trips.try_recv().is_ok() {
        tripped += 1;
    }
    println!("messages:                 {n} ({keys} keys, {tenants} tenants)");
    println!("empty function call:      {empty_ns:.1} ns/message");
    println!(
        "full observe path:        {full_ns:.1} ns/message (key check + accept + delivery outcome)"
    );
    println!("counts only (accepted()): {volume_ns:.1} ns/message");
    println!("decisions during the run: {tripped}");
    println!(
        "target <= 2000 ns/message: {}",
        if full_ns <= 2000.0 { "PASS" } else { "FAIL" }
    );
}
