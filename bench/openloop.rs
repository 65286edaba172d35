//! Open-loop HTTP load at a fixed rate, for the latency figures of bench/accept.sh.
//!
//! wrk is closed-loop: a connection sends its next request only after the previous answer, so a
//! stalled server is simply sent less and its stall barely shows in the percentiles
//! ("coordinated omission"). Here request i is *due* at start + i/RATE whatever happened before;
//! CONNS threads, each with one keep-alive connection, take due requests in order, and each
//! latency is measured from the moment the request was due, not from when it could be sent. A
//! server that falls behind therefore shows its whole backlog in the percentiles.
//!
//! Standard library only, built by the benchmark with `rustc -O` (no Cargo project):
//!   openloop HOST:PORT PATH RATE COUNT CONNS BODY_FILE [HEADER...]
//! sends COUNT POST requests at RATE per second (RATE 0: all due at once, i.e. as fast as CONNS
//! connections go) and prints one line of `key=value` figures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

fn connect(addr: &str) -> std::io::Result<Conn> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(Conn {
        reader: BufReader::new(s.try_clone()?),
        writer: s,
    })
}

/// Sends one request and reads the whole answer; returns the status code.
fn exchange(c: &mut Conn, request: &[u8]) -> std::io::Result<u16> {
    c.writer.write_all(request)?;
    let mut line = String::new();
    if c.reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let mut len = 0usize;
    loop {
        line.clear();
        if c.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v
                .trim()
                .parse()
                .map_err(|_| std::io::ErrorKind::InvalidData)?;
        }
    }
    let mut body = vec![0u8; len];
    c.reader.read_exact(&mut body)?;
    Ok(status)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 7 {
        eprintln!("usage: openloop HOST:PORT PATH RATE COUNT CONNS BODY_FILE [HEADER...]");
        std::process::exit(2);
    }
    let addr = a[1].clone();
    let rate: f64 = a[3].parse().expect("RATE");
    let total: u64 = a[4].parse().expect("COUNT");
    let conns: usize = a[5].parse().expect("CONNS");
    let body = std::fs::read(&a[6]).expect("BODY_FILE");
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        a[2],
        addr,
        body.len()
    );
    for h in &a[7..] {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    let request = Arc::new(request);

    let next = Arc::new(AtomicU64::new(0));
    // At a fixed rate, connections are opened before the clock starts; unpaced, it starts now.
    let start = Instant::now() + Duration::from_millis(if rate > 0.0 { 200 } else { 0 });
    let mut threads = Vec::new();
    for _ in 0..conns {
        let (addr, request, next) = (addr.clone(), request.clone(), next.clone());
        threads.push(std::thread::spawn(move || {
            let mut lat_us: Vec<u64> = Vec::new();
            let (mut non2xx, mut errors) = (0u64, 0u64);
            let mut conn = connect(&addr).ok();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let due = if rate > 0.0 {
                    start + Duration::from_secs_f64(i as f64 / rate)
                } else {
                    start
                };
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let mut result = Err(std::io::ErrorKind::NotConnected.into());
                for _ in 0..2 {
                    if conn.is_none() {
                        conn = connect(&addr).ok();
                    }
                    if let Some(c) = conn.as_mut() {
                        result = exchange(c, &request);
                        if result.is_ok() {
                            break;
                        }
                        conn = None;
                    }
                }
                match result {
                    Ok(code) => {
                        if !(200..300).contains(&code) {
                            non2xx += 1;
                        }
                        lat_us.push(due.elapsed().as_micros() as u64);
                    }
                    Err(_) => errors += 1,
                }
            }
            (lat_us, non2xx, errors)
        }));
    }
    let (mut lat, mut non2xx, mut errors) = (Vec::new(), 0, 0);
    for t in threads {
        let (l, n, e) = t.join().expect("worker thread");
        lat.extend(l);
        non2xx += n;
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        lat[i.clamp(1, lat.len()) - 1] as f64 / 1000.0
    };
    println!(
        "offered_rps={:.0} achieved_rps={:.0} requests={} non2xx={} errors={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} p999_ms={:.2} max_ms={:.2}",
        rate,
        lat.len() as f64 / elapsed,
        lat.len(),
        non2xx,
        errors,
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        pct(100.0)
    );
}
