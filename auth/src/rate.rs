//! Rate limits per caller: token buckets (governor) keyed by the verified
//! subject, or by the client address for anonymous calls. The address is
//! the connection's peer, or — only when the peer is a configured trusted
//! proxy — the last address in `X-Forwarded-For` that is not one.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The peer address of the connection a request came on (a request
/// extension, set by the HTTP server).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// One class of requests (sign-up, commands, GraphQL) with its own budget.
#[derive(Clone)]
pub struct Limiter {
    class: &'static str,
    per_minute: u32,
    buckets: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("class", &self.class)
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

/// A refusal: how long until the request would fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds to wait (at least 1), for `Retry-After`.
    pub retry_after_secs: u64,
}

impl Limiter {
    /// `per_minute` units per key and minute, all of which may be spent at
    /// once (the bucket's size); `0` turns the class off.
    pub fn new(class: &'static str, per_minute: u32) -> Self {
        let buckets =
            NonZeroU32::new(per_minute).map(|n| Arc::new(RateLimiter::keyed(Quota::per_minute(n))));
        Self {
            class,
            per_minute,
            buckets,
        }
    }

    /// The class name (for metrics and messages).
    pub fn class(&self) -> &'static str {
        self.class
    }

    /// The budget per minute (0: off).
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Spends `cost` units of `key`'s budget.
    ///
    /// # Errors
    /// [`Limited`] when the bucket does not hold them now (a cost above the
    /// whole budget waits a full minute).
    pub fn check(&self, key: &str, cost: u32) -> Result<(), Limited> {
        let Some(buckets) = &self.buckets else {
            return Ok(());
        };
        let cost = NonZeroU32::new(cost.clamp(1, self.per_minute)).unwrap_or(NonZeroU32::MIN);
        match buckets.check_key_n(&key.to_string(), cost) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(Limited {
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                })
            }
            Err(_) => Err(Limited {
                retry_after_secs: 60,
            }),
        }
    }

    /// Forgets keys whose buckets are full again (call now and then, so a
    /// flood of addresses does not keep memory).
    pub fn forget_idle(&self) {
        if let Some(b) = &self.buckets {
            b.retain_recent();
            b.shrink_to_fit();
        }
    }
}

/// Forgets idle keys of `limiters` every minute, for as long as the
/// returned task runs.
pub fn spawn_housekeeping(limiters: Vec<Limiter>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            for l in &limiters {
                l.forget_idle();
            }
        }
    })
}

/// The client's address: the peer, or the last untrusted hop of
/// `X-Forwarded-For` when the peer is a trusted proxy.
pub fn client_address(
    peer: Option<IpAddr>,
    forwarded_for: Option<&http::HeaderValue>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let hops = forwarded_for.and_then(|v| v.to_str().ok()).unwrap_or("");
    hops.rsplit(',')
        .filter_map(|h| h.trim().parse::<IpAddr>().ok())
        .find(|ip| !trusted.contains(ip))
        .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_over_the_budget_is_refused_per_key() {
        let l = Limiter::new("signup", 3);
        for _ in 0..3 {
            assert_eq!(l.check("1.2.3.4", 1), Ok(()));
        }
        let refused = l.check("1.2.3.4", 1).unwrap_err();
        assert!((1..=60).contains(&refused.retry_after_secs));
        // Another key has its own bucket.
        assert_eq!(l.check("5.6.7.8", 1), Ok(()));
        // Costs weigh; a cost above the budget is clamped to it.
        let g = Limiter::new("graphql", 100);
        assert_eq!(g.check("a", 60), Ok(()));
        assert!(g.check("a", 60).is_err());
        assert_eq!(g.check("b", 1_000), Ok(()));
        // Off.
        let off = Limiter::new("commands", 0);
        for _ in 0..1000 {
            assert_eq!(off.check("x", 1), Ok(()));
        }
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let xff = http::HeaderValue::from_static("198.51.100.1, 203.0.113.7");
        // Not trusted: the header is the caller's own claim, ignored.
        assert_eq!(client_address(Some(proxy), Some(&xff), &[]), Some(proxy));
        // Trusted: the last hop that is not a proxy.
        assert_eq!(
            client_address(Some(proxy), Some(&xff), &[proxy]),
            Some(client)
        );
        let chained = http::HeaderValue::from_static("203.0.113.7, 10.0.0.2");
        let two: Vec<IpAddr> = vec![proxy, "10.0.0.2".parse().unwrap()];
        assert_eq!(
            client_address(Some(proxy), Some(&chained), &two),
            Some(client)
        );
        assert_eq!(client_address(Some(proxy), None, &[proxy]), Some(proxy));
    }
}
