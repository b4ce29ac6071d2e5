//! The client-side AWS rate budget: a token bucket per (region, service) that every
//! request attempt of every controller passes through, first come first served, and
//! that lowers its rate for a while after AWS throttles. The bucket arithmetic is pure;
//! [`Budget`] waits on it and [`budgeted_client`] puts it in front of the SDK's HTTP
//! client, so SDK retries are paced too.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

/// The configured rate: requests per second and how many may go at once after a pause.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Default for Rate {
    /// Well under AWS's sustained limits for these APIs, and under a 12 requests/s
    /// account budget with all three services busy at once.
    fn default() -> Self {
        Self {
            per_second: 3.0,
            burst: 3.0,
        }
    }
}

/// After AWS throttles, the rate is cut (down to an eighth of the configured one) and
/// climbs back linearly, by the configured rate every this long.
pub const RECOVERY: Duration = Duration::from_secs(30);

/// Throttled answers this close together are one signal (calls in flight together are
/// throttled together): the rate is cut once for them.
pub const CUT_DEBOUNCE: Duration = Duration::from_secs(3);

/// The answers a cut weighs: those since the last cut, but none older than this.
pub const SHARE_WINDOW: Duration = Duration::from_secs(10);

/// Token bucket arithmetic. Pure: time comes in as an argument.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: Rate,
    /// The rate in force now (lowered after throttling).
    current: f64,
    tokens: f64,
    last: Instant,
    last_cut: Option<Instant>,
    /// Answers (and how many of them throttled) since `window_start`.
    answers: u32,
    throttles: u32,
    window_start: Instant,
}

impl Bucket {
    pub fn new(rate: Rate, now: Instant) -> Self {
        let rate = Rate {
            per_second: rate.per_second.max(0.01),
            burst: rate.burst.max(1.0),
        };
        Self {
            rate,
            current: rate.per_second,
            tokens: rate.burst,
            last: now,
            last_cut: None,
            answers: 0,
            throttles: 0,
            window_start: now,
        }
    }

    /// The rate in force now, requests per second.
    pub fn current_rate(&self) -> f64 {
        self.current
    }

    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        // The rate climbs back first, then tokens accrue at the average rate over dt.
        let before = self.current;
        let climb = self.rate.per_second / RECOVERY.as_secs_f64() * dt;
        self.current = (self.current + climb).min(self.rate.per_second);
        let average = (before + self.current) / 2.0;
        self.tokens = (self.tokens + average * dt).min(self.rate.burst);
    }

    /// Takes a token, or says how long to wait for one.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.advance(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.current))
        }
    }

    /// Counts an answer toward the share of throttled answers, opening a new window
    /// when the current one is older than [`SHARE_WINDOW`].
    fn count(&mut self, now: Instant, throttled: bool) {
        if now.saturating_duration_since(self.window_start) > SHARE_WINDOW {
            self.window_start = now;
            self.answers = 0;
            self.throttles = 0;
        }
        self.answers += 1;
        self.throttles += u32::from(throttled);
    }

    /// AWS answered a call without throttling it.
    pub fn answered(&mut self, now: Instant) {
        self.count(now, false);
    }

    /// AWS throttled a call: spend what is saved up and cut the rate (once for answers
    /// within CUT_DEBOUNCE) by the share of recent answers that were throttled, by half at
    /// most. Over a real limit the share is the excess (twice the limit: half are
    /// throttled, and the rate halves); throttling that does not depend on the rate
    /// (a share of calls, whatever the rate) cuts a little and the rate settles where
    /// the recovery makes up for it, rather than at the floor.
    pub fn throttled(&mut self, now: Instant) {
        self.advance(now);
        self.count(now, true);
        self.tokens = self.tokens.min(0.0);
        if self
            .last_cut
            .is_some_and(|t| now.saturating_duration_since(t) < CUT_DEBOUNCE)
        {
            return;
        }
        let share = f64::from(self.throttles) / f64::from(self.answers);
        self.last_cut = Some(now);
        self.window_start = now;
        self.answers = 0;
        self.throttles = 0;
        self.current = (self.current * (1.0 - share).max(0.5)).max(self.rate.per_second / 8.0);
    }
}

/// A bucket that callers wait on in turn (tokio's mutex queues waiters in order, so no
/// object's call is overtaken forever by others').
pub struct Budget {
    bucket: Mutex<Bucket>,
    queue: tokio::sync::Mutex<()>,
    on_rate: Box<dyn Fn(f64) + Send + Sync>,
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("bucket", &self.bucket)
            .finish()
    }
}

impl Budget {
    /// `on_rate` hears the rate in force whenever it changes (for a metric).
    pub fn new(rate: Rate, on_rate: impl Fn(f64) + Send + Sync + 'static) -> Self {
        on_rate(rate.per_second);
        Self {
            bucket: Mutex::new(Bucket::new(rate, now())),
            queue: tokio::sync::Mutex::new(()),
            on_rate: Box::new(on_rate),
        }
    }

    fn bucket(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for this caller's turn and a token.
    pub async fn acquire(&self) {
        let _turn = self.queue.lock().await;
        loop {
            let wait = self.bucket().take(now());
            match wait {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// AWS answered without throttling.
    pub fn answered(&self) {
        self.bucket().answered(now());
    }

    pub fn throttled(&self) {
        let rate = {
            let mut b = self.bucket();
            b.throttled(now());
            b.current_rate()
        };
        (self.on_rate)(rate);
        tracing::debug!(
            rate,
            "AWS throttled a call: lowering the request rate for a while"
        );
    }

    pub fn current_rate(&self) -> f64 {
        self.bucket().current_rate()
    }
}

/// Tokio's clock (which tests can pause), as a std instant.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The HTTPS client for AWS: the SDK's default one (rustls, proxy settings from the
/// environment) but on the ring crypto provider, the one kube's client uses, so that
/// the binary carries one. The credential providers (web identity, IMDS, ECS) use it
/// as it is; the engines' clients through [`budgeted_client`].
pub fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut b = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ));
        b.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            b.set_sleep_impl(components.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.build()
    })
}

/// [`https_client`] with every request attempt waiting on `budget` first.
pub fn budgeted_client(budget: Arc<Budget>) -> SharedHttpClient {
    SharedHttpClient::new(BudgetedClient {
        inner: https_client(),
        budget,
    })
}

#[derive(Debug)]
struct BudgetedClient {
    inner: SharedHttpClient,
    budget: Arc<Budget>,
}

impl HttpClient for BudgetedClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(BudgetedConnector {
            inner: self.inner.http_connector(settings, components),
            budget: self.budget.clone(),
        })
    }
}

#[derive(Debug)]
struct BudgetedConnector {
    inner: SharedHttpConnector,
    budget: Arc<Budget>,
}

impl HttpConnector for BudgetedConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let inner = self.inner.clone();
        let budget = self.budget.clone();
        HttpConnectorFuture::new(async move {
            budget.acquire().await;
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            Rate {
                per_second: 2.0,
                burst: 3.0,
            },
            t0,
        );
        assert!((0..3).all(|_| b.take(t0).is_ok()));
        let wait = b.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(at(t0, 499)).is_err());
        assert!(b.take(at(t0, 500)).is_ok());
        // Tokens never pile up past the burst.
        let later = at(t0, 60_000);
        assert_eq!((0..10).filter(|_| b.take(later).is_ok()).count(), 3);
    }

    #[test]
    fn a_second_of_calls_is_the_rate() {
        let t0 = Instant::now();
        let rate = Rate {
            per_second: 5.0,
            burst: 1.0,
        };
        let mut b = Bucket::new(rate, t0);
        let granted = (0..=1000).filter(|ms| b.take(at(t0, *ms)).is_ok()).count();
        assert_eq!(granted, 6, "one at once, then five more in the second");
    }

    #[test]
    fn throttling_halves_the_rate_and_it_recovers() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            Rate {
                per_second: 8.0,
                burst: 1.0,
            },
            t0,
        );
        b.throttled(t0);
        assert_eq!(b.current_rate(), 4.0);
        b.throttled(at(t0, 500));
        // Not halved again (just climbing back a little): one signal.
        assert!(b.current_rate() > 4.0, "answers close together count once");
        // Four more signals, a debounce or more apart: down to the floor and no lower.
        for s in 1..=4 {
            b.throttled(at(t0, s * 3000));
        }
        let t1 = at(t0, 12_000);
        let floor = b.current_rate();
        assert!(
            (1.0..1.2).contains(&floor),
            "never below an eighth: {floor}"
        );
        // Spent: the next token takes about a second at the lowered rate.
        let wait = b.take(t1).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        b.take(at(t1, 15_000)).unwrap();
        // Climbing by the configured rate per RECOVERY: about 1 + 8 * 15/30.
        let mid = b.current_rate();
        assert!((4.9..5.2).contains(&mid), "{mid}");
        b.take(at(t1, 31_000)).unwrap();
        assert_eq!(b.current_rate(), 8.0);
    }

    #[test]
    fn the_cut_is_the_throttled_share_of_recent_answers() {
        let t0 = Instant::now();
        let rate = Rate {
            per_second: 4.0,
            burst: 1.0,
        };
        let mut b = Bucket::new(rate, t0);
        // One throttle among five answers: a fifth off.
        for ms in 0..4 {
            b.answered(at(t0, ms));
        }
        b.throttled(at(t0, 4));
        assert!(
            (b.current_rate() - 3.2).abs() < 0.01,
            "{}",
            b.current_rate()
        );
        // One of two throttled: half off. Throttles within CUT_DEBOUNCE of a cut are the
        // same signal; the next one weighs the answers since the cut (all throttled)
        // and takes half off, the most one signal takes.
        let t1 = at(t0, 4000);
        b.answered(t1);
        let before = {
            b.advance(at(t1, 1));
            b.current_rate()
        };
        b.throttled(at(t1, 1));
        assert!((b.current_rate() - before * 0.5).abs() < 0.01);
        let cut = b.current_rate();
        b.throttled(at(t1, 2));
        b.throttled(at(t1, 3));
        assert!(b.current_rate() >= cut, "debounced: no second cut yet");
        let before = {
            b.advance(at(t1, 3100));
            b.current_rate()
        };
        b.throttled(at(t1, 3100));
        let after = b.current_rate();
        assert!((after - before * 0.5).abs() < 0.01, "{before} -> {after}");
        // Answers older than the window do not dilute a new throttle: alone in a fresh
        // window, it counts whole.
        let t2 = at(t1, 5000);
        for ms in 0..100 {
            b.answered(at(t2, ms));
        }
        let t3 = at(t2, 11_000);
        let before = {
            b.advance(t3);
            b.current_rate()
        };
        b.throttled(t3);
        assert!((b.current_rate() - before * 0.5).abs() < 0.01);
    }

    #[test]
    fn a_share_of_calls_throttled_whatever_the_rate_settles_well_above_the_floor() {
        // Every fifth answer throttled, calls as fast as the budget allows: the rate
        // must settle where the recovery makes up for the cuts, not at the floor.
        let t0 = Instant::now();
        let rate = Rate {
            per_second: 3.0,
            burst: 3.0,
        };
        let mut b = Bucket::new(rate, t0);
        let mut now = t0;
        let mut n = 0u64;
        let mut late = Vec::new();
        while now < at(t0, 600_000) {
            match b.take(now) {
                Ok(()) => {
                    n += 1;
                    if n.is_multiple_of(5) {
                        b.throttled(now)
                    } else {
                        b.answered(now)
                    }
                }
                Err(wait) => now += wait.max(Duration::from_millis(1)),
            }
            if now > at(t0, 300_000) {
                late.push(b.current_rate());
            }
        }
        let mean = late.iter().sum::<f64>() / late.len() as f64;
        assert!(mean > 1.8, "settled at {mean} requests/s, floor 0.375");
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_turn_at_the_rate() {
        let budget = Arc::new(Budget::new(
            Rate {
                per_second: 10.0,
                burst: 1.0,
            },
            |_| {},
        ));
        let order = Arc::new(Mutex::new(Vec::new()));
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (budget, order) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                budget.acquire().await;
                order.lock().unwrap().push(i);
            }));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
    }
}
