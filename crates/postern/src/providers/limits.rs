//! Per-provider limits honoured by the workers: at most `max_concurrency` calls at once and at
//! most `max_rate` calls per second (SES, for one, has a per-second quota). The rate is a
//! token bucket holding one second's worth of calls, so a quiet provider may take a short
//! burst, and a busy one is held to the rate on average.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Limits of one provider as configured; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProviderLimits {
    pub max_rate: Option<f64>,
    pub max_concurrency: Option<usize>,
}

struct Bucket {
    interval: Duration,
    burst: Duration,
    /// The theoretical time the next call may start (GCRA).
    next: Instant,
}

impl Bucket {
    /// Reserves the next slot and returns when it starts.
    fn reserve(&mut self, now: Instant) -> Instant {
        let earliest = now.checked_sub(self.burst).unwrap_or(now);
        let start = self.next.max(earliest);
        self.next = start + self.interval;
        start.max(now)
    }
}

struct Limit {
    permits: Option<Arc<Semaphore>>,
    rate: Option<Mutex<Bucket>>,
}

/// Held for the duration of one call.
pub struct LimitGuard {
    _permit: Option<OwnedSemaphorePermit>,
}

/// The limits of every configured provider; cheap to clone.
#[derive(Clone, Default)]
pub struct Limits {
    by_name: Arc<HashMap<String, Limit>>,
}

impl Limits {
    pub fn new<'a>(limits: impl IntoIterator<Item = (&'a String, &'a ProviderLimits)>) -> Self {
        let by_name = limits
            .into_iter()
            .map(|(name, l)| {
                let rate = l.max_rate.filter(|r| *r > 0.0).map(|r| {
                    let interval = Duration::from_secs_f64(1.0 / r);
                    let burst = interval.mul_f64(r.max(1.0) - 1.0);
                    let now = Instant::now();
                    Mutex::new(Bucket {
                        interval,
                        burst,
                        next: now.checked_sub(burst).unwrap_or(now),
                    })
                });
                let permits = l
                    .max_concurrency
                    .map(|n| Arc::new(Semaphore::new(n.max(1))));
                (name.clone(), Limit { permits, rate })
            })
            .collect();
        Self {
            by_name: Arc::new(by_name),
        }
    }

    /// Waits until a call to `name` is allowed: first a concurrency slot, then a rate slot.
    pub async fn acquire(&self, name: &str) -> LimitGuard {
        let Some(limit) = self.by_name.get(name) else {
            return LimitGuard { _permit: None };
        };
        let permit = match &limit.permits {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        if let Some(bucket) = &limit.rate {
            let start = bucket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .reserve(Instant::now());
            tokio::time::sleep_until(start).await;
        }
        LimitGuard { _permit: permit }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: Option<f64>, conc: Option<usize>) -> Limits {
        let name = "p".to_owned();
        let l = ProviderLimits {
            max_rate: rate,
            max_concurrency: conc,
        };
        Limits::new([(&name, &l)])
    }

    #[tokio::test(start_paused = true)]
    async fn rate_allows_one_seconds_burst_then_holds_to_the_rate() {
        let l = limits(Some(10.0), None);
        let t0 = Instant::now();
        for _ in 0..10 {
            l.acquire("p").await;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(5),
            "{:?}",
            t0.elapsed()
        );
        for _ in 0..20 {
            l.acquire("p").await;
        }
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(1_900) && took <= Duration::from_millis(2_100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped() {
        let l = limits(None, Some(2));
        let a = l.acquire("p").await;
        let _b = l.acquire("p").await;
        let third = tokio::time::timeout(Duration::from_millis(50), l.acquire("p")).await;
        assert!(
            third.is_err(),
            "a third call started while two were running"
        );
        drop(a);
        let third = tokio::time::timeout(Duration::from_millis(50), l.acquire("p")).await;
        assert!(third.is_ok());
        // Unknown providers and unlimited ones never wait.
        let _c = l.acquire("other").await;
    }
}
