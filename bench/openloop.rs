//! Open-loop HTTP load at a fixed rate, for the latency figures of bench/accept.sh.
//!
//! wrk is closed-loop: a connection sends its next request only after the previous answer, so a
//! stalled server is simply sent less and its stall barely shows in the percentiles
//! ("coordinated omission"). Here request i is *due* at start + i/RATE whatever happened before;
//! the first idle connection takes the due requests in order, and each latency is measured from
//! the moment the request was due, not from when it could be sent. A server that falls behind
//! therefore shows its whole backlog in the percentiles.
//!
//! The generator shares the machine's cores with the server it measures, so it is built like
//! wrk2 rather than as a thread per connection: THREADS event loops (epoll, default 1), each
//! owning CONNS/THREADS non-blocking keep-alive connections. A thread per connection costed the
//! server too: each answer woke a sleeping thread of the generator, and on 2 cores that
//! wake-up, charged to the server's write and often preempting it, was a fifth of the server's
//! CPU at half load. A client on another machine costs the server none of that.
//!
//! Standard library only (epoll through the C library), built by the benchmark with `rustc -O`
//! (no Cargo project):
//!   openloop HOST:PORT PATH RATE COUNT CONNS BODY_FILE [HEADER...]
//! sends COUNT POST requests at RATE per second (RATE 0: all due at once, i.e. as fast as CONNS
//! connections go) and prints one line of `key=value` figures. Environment: OPENLOOP_THREADS
//! (default 1); OPENLOOP_TRACE=FILE also writes one line per answered request, "DUE_US
//! LATENCY_US" (due time after the start, in due order), to find when the slow ones came.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[cfg_attr(target_arch = "x86_64", repr(C, packed))]
#[cfg_attr(not(target_arch = "x86_64"), repr(C))]
#[derive(Clone, Copy)]
struct EpollEvent {
    events: u32,
    data: u64,
}

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

unsafe extern "C" {
    fn epoll_create1(flags: i32) -> i32;
    fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: *mut EpollEvent) -> i32;
    fn epoll_pwait2(
        epfd: i32,
        events: *mut EpollEvent,
        maxevents: i32,
        timeout: *const Timespec,
        sigmask: *const u8,
    ) -> i32;
}

const EPOLLIN: u32 = 0x1;
const EPOLLOUT: u32 = 0x4;
const EPOLLERR: u32 = 0x8;
const EPOLLHUP: u32 = 0x10;
/// An answer not complete this long after its request was sent is a failed request (tried
/// once more on a fresh connection, then counted as an error), as the socket read timeout of
/// the thread-per-connection generator was.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
const EPOLL_CTL_ADD: i32 = 1;
const EPOLL_CTL_DEL: i32 = 2;
const EPOLL_CTL_MOD: i32 = 3;

struct Poll(i32);

impl Poll {
    fn new() -> std::io::Result<Self> {
        let fd = unsafe { epoll_create1(0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Poll(fd))
    }

    fn ctl(&self, op: i32, fd: i32, events: u32, token: usize) -> std::io::Result<()> {
        let mut ev = EpollEvent {
            events,
            data: token as u64,
        };
        if unsafe { epoll_ctl(self.0, op, fd, &mut ev) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for events, at most `timeout` (None: until one comes); fills `out` with tokens
    /// and event bits.
    fn wait(&self, out: &mut Vec<(usize, u32)>, timeout: Option<Duration>) -> std::io::Result<()> {
        let mut evs = [EpollEvent { events: 0, data: 0 }; 256];
        let ts = timeout.map(|t| Timespec {
            tv_sec: t.as_secs() as i64,
            tv_nsec: t.subsec_nanos() as i64,
        });
        let tp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const Timespec);
        let n = unsafe { epoll_pwait2(self.0, evs.as_mut_ptr(), 256, tp, std::ptr::null()) };
        out.clear();
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        for ev in &evs[..n as usize] {
            let (data, events) = (ev.data, ev.events);
            out.push((data as usize, events));
        }
        Ok(())
    }
}

/// One keep-alive connection and the request it carries, if any.
struct Conn {
    stream: TcpStream,
    busy: Option<Busy>,
    buf: Vec<u8>,
}

/// The request in flight on a connection.
#[derive(Clone, Copy)]
struct Busy {
    due: Instant,
    /// How much of it was written.
    written: usize,
    /// Its second try (a keep-alive connection the server had closed is reopened once).
    retried: bool,
    /// When it was (first) written on this connection: the answer's deadline runs from here.
    sent: Instant,
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// A whole answer at the start of `buf`: its status and length.
fn parse_answer(buf: &[u8]) -> Result<Option<(u16, usize)>, ()> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| ())?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(())?;
    let mut len = 0usize;
    for l in lines {
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().map_err(|_| ())?;
        }
    }
    let total = end + 4 + len;
    Ok((buf.len() >= total).then_some((status, total)))
}

struct Shared {
    addr: String,
    request: Vec<u8>,
    rate: f64,
    total: u64,
    start: Instant,
    next: AtomicU64,
}

impl Shared {
    fn due(&self, i: u64) -> Instant {
        if self.rate > 0.0 {
            self.start + Duration::from_secs_f64(i as f64 / self.rate)
        } else {
            self.start
        }
    }

    /// Claims the next request if it is due by `now`.
    fn claim(&self, now: Instant) -> Option<Instant> {
        loop {
            let i = self.next.load(Ordering::Relaxed);
            if i >= self.total {
                return None;
            }
            let due = self.due(i);
            if due > now {
                return None;
            }
            if self
                .next
                .compare_exchange(i, i + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return Some(due);
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    lat_us: Vec<u64>,
    /// With OPENLOOP_TRACE set: (due time after the start, latency), both in microseconds.
    trace: Option<Vec<(u64, u64)>>,
    non2xx: u64,
    errors: u64,
}

/// One event loop over its connections, until every request is claimed and answered.
struct Loop<'a> {
    sh: &'a Shared,
    poll: Poll,
    conns: Vec<Option<Conn>>,
    /// Connections with no request in flight (a dropped one is opened again when used).
    idle: Vec<usize>,
    in_flight: usize,
    tally: Tally,
}

impl<'a> Loop<'a> {
    fn new(sh: &'a Shared, n: usize) -> std::io::Result<Self> {
        let mut l = Loop {
            sh,
            poll: Poll::new()?,
            conns: (0..n).map(|_| None).collect(),
            idle: (0..n).rev().collect(),
            in_flight: 0,
            tally: Tally {
                trace: std::env::var_os("OPENLOOP_TRACE").map(|_| Vec::new()),
                ..Tally::default()
            },
        };
        for i in 0..n {
            // One that cannot connect now is tried again when it is first used.
            let _ = l.open(i);
        }
        Ok(l)
    }

    fn run(mut self) -> std::io::Result<Tally> {
        let mut events = Vec::new();
        loop {
            let now = Instant::now();
            while let Some(&i) = self.idle.last() {
                let Some(due) = self.sh.claim(now) else { break };
                self.idle.pop();
                self.in_flight += 1;
                if !self.start(i, due, false)? {
                    self.in_flight -= 1;
                    self.idle.push(i);
                }
            }
            let more = self.sh.next.load(Ordering::Relaxed) < self.sh.total;
            if !more && self.in_flight == 0 {
                return Ok(self.tally);
            }
            self.poll.wait(&mut events, self.timeout(more))?;
            for &(i, bits) in &events {
                self.on_event(i, bits)?;
            }
            // Requests whose answer is overdue: tried once more, then counted as errors.
            let now = Instant::now();
            for i in 0..self.conns.len() {
                let Some(b) = self.conns[i].as_ref().and_then(|c| c.busy) else {
                    continue;
                };
                if now >= b.sent + ANSWER_TIMEOUT {
                    self.fail(i, b.due, b.retried)?;
                }
            }
        }
    }

    /// Until the next request is due (if a connection is free for it) or the first answer is
    /// overdue, whichever comes first; None: until an event.
    fn timeout(&self, more: bool) -> Option<Duration> {
        let now = Instant::now();
        let next_due = (more && !self.idle.is_empty()).then(|| {
            self.sh
                .due(self.sh.next.load(Ordering::Relaxed))
                .saturating_duration_since(now)
        });
        let overdue = self
            .conns
            .iter()
            .flatten()
            .filter_map(|c| {
                c.busy
                    .map(|b| (b.sent + ANSWER_TIMEOUT).saturating_duration_since(now))
            })
            .min();
        match (next_due, overdue) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_event(&mut self, i: usize, bits: u32) -> std::io::Result<()> {
        let request = &self.sh.request;
        let Some(c) = self.conns[i].as_mut() else {
            return Ok(());
        };
        let Some(Busy {
            due,
            written,
            retried,
            ..
        }) = c.busy
        else {
            // An idle connection readable: the server closed it; reopened on next use.
            self.drop_conn(i);
            return Ok(());
        };
        if bits & EPOLLOUT != 0 && written < request.len() {
            match c.stream.write(&request[written..]) {
                Ok(w) => {
                    if let Some(b) = c.busy.as_mut() {
                        b.written = written + w;
                    }
                    if written + w == request.len() {
                        self.poll
                            .ctl(EPOLL_CTL_MOD, c.stream.as_raw_fd(), EPOLLIN, i)?;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return self.fail(i, due, retried),
            }
        }
        // An error or hang-up is read like data: the read reports it.
        if bits & (EPOLLIN | EPOLLERR | EPOLLHUP) == 0 {
            return Ok(());
        }
        let mut chunk = [0u8; 8192];
        let mut closed = false;
        // Read until the answer is whole, not until the socket is empty: nothing else comes on
        // this connection before the next request, and the level-triggered poll reports
        // whatever does (a close), so the extra read would only cost a system call.
        loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(k) => {
                    c.buf.extend_from_slice(&chunk[..k]);
                    if !matches!(parse_answer(&c.buf), Ok(None)) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        match parse_answer(&c.buf) {
            Ok(Some((status, len))) => {
                c.buf.drain(..len);
                // Answered before the request was all written (an early refusal): the rest of
                // it would be read as the next request, so the connection goes.
                let unsent = c.busy.is_some_and(|b| b.written < request.len());
                c.busy = None;
                if !(200..300).contains(&status) {
                    self.tally.non2xx += 1;
                }
                let lat = due.elapsed().as_micros() as u64;
                self.tally.lat_us.push(lat);
                if let Some(t) = &mut self.tally.trace {
                    t.push((due.saturating_duration_since(self.sh.start).as_micros() as u64, lat));
                }
                self.in_flight -= 1;
                if closed || unsent {
                    self.drop_conn(i);
                }
                self.idle.push(i);
                Ok(())
            }
            Ok(None) if !closed => Ok(()),
            _ => self.fail(i, due, retried),
        }
    }

    /// Opens connection `i` and registers it for reading.
    fn open(&mut self, i: usize) -> std::io::Result<()> {
        let stream = connect(&self.sh.addr)?;
        self.poll
            .ctl(EPOLL_CTL_ADD, stream.as_raw_fd(), EPOLLIN, i)?;
        self.conns[i] = Some(Conn {
            stream,
            busy: None,
            buf: Vec::with_capacity(4096),
        });
        Ok(())
    }

    fn drop_conn(&mut self, i: usize) {
        if let Some(c) = self.conns[i].take() {
            let _ = self.poll.ctl(EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, i);
        }
    }

    /// Writes the request on connection `i` (opened again if it was dropped). False if it
    /// could not be sent: counted as an error, the connection is left idle.
    fn start(&mut self, i: usize, due: Instant, retried: bool) -> std::io::Result<bool> {
        if self.conns[i].is_none() && self.open(i).is_err() {
            self.tally.errors += 1;
            return Ok(false);
        }
        let Some(c) = self.conns[i].as_mut() else {
            return Ok(false);
        };
        c.buf.clear();
        let written = match c.stream.write(&self.sh.request) {
            Ok(w) => w,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(_) => {
                self.drop_conn(i);
                if retried {
                    self.tally.errors += 1;
                    return Ok(false);
                }
                return self.start(i, due, true);
            }
        };
        c.busy = Some(Busy {
            due,
            written,
            retried,
            sent: Instant::now(),
        });
        if written < self.sh.request.len() {
            self.poll
                .ctl(EPOLL_CTL_MOD, c.stream.as_raw_fd(), EPOLLIN | EPOLLOUT, i)?;
        }
        Ok(true)
    }

    /// The request on connection `i` failed: tried once more on a fresh connection, then
    /// counted.
    fn fail(&mut self, i: usize, due: Instant, retried: bool) -> std::io::Result<()> {
        self.drop_conn(i);
        if !retried && self.start(i, due, true)? {
            return Ok(());
        }
        if retried {
            self.tally.errors += 1;
        }
        self.in_flight -= 1;
        self.idle.push(i);
        Ok(())
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 7 {
        eprintln!("usage: openloop HOST:PORT PATH RATE COUNT CONNS BODY_FILE [HEADER...]");
        std::process::exit(2);
    }
    let rate: f64 = a[3].parse().expect("RATE");
    let total: u64 = a[4].parse().expect("COUNT");
    let conns: usize = a[5].parse().expect("CONNS");
    if conns == 0 {
        eprintln!("openloop: CONNS must be at least 1");
        std::process::exit(2);
    }
    let threads: usize = std::env::var("OPENLOOP_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1)
        .clamp(1, conns.max(1));
    let body = std::fs::read(&a[6]).expect("BODY_FILE");
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        a[2],
        a[1],
        body.len()
    );
    for h in &a[7..] {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);

    // At a fixed rate, connections are opened before the clock starts; unpaced, it starts now.
    let sh = Arc::new(Shared {
        addr: a[1].clone(),
        request,
        rate,
        total,
        start: Instant::now() + Duration::from_millis(if rate > 0.0 { 200 } else { 0 }),
        next: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let sh = sh.clone();
            let n = conns / threads + usize::from(t < conns % threads);
            std::thread::spawn(move || Loop::new(&sh, n).and_then(Loop::run).expect("event loop"))
        })
        .collect();
    let (mut lat, mut non2xx, mut errors) = (Vec::new(), 0, 0);
    let mut trace = Vec::new();
    for w in workers {
        let t = w.join().expect("event loop thread");
        lat.extend(t.lat_us);
        trace.extend(t.trace.unwrap_or_default());
        non2xx += t.non2xx;
        errors += t.errors;
    }
    let elapsed = sh.start.elapsed().as_secs_f64();
    if let Some(path) = std::env::var_os("OPENLOOP_TRACE") {
        trace.sort_unstable();
        let lines: String = trace.iter().map(|(d, l)| format!("{d} {l}\n")).collect();
        std::fs::write(path, lines).expect("OPENLOOP_TRACE file");
    }
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
