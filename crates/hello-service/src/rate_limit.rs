//! Per-client request rates on `/hello`, answered with 429 and `Retry-After` when exceeded.
//!
//! The client is the peer address, or, when the peer is on loopback (the pod's Nginx), the
//! address Nginx put in `X-Real-IP` (else the last `X-Forwarded-For` entry, the one Nginx added).
//! Headers from anyone else are ignored, so a client cannot dodge its limit by sending them.

use std::{
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use actix_web::HttpRequest;
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use hello_common::Problem;

/// What a failed attempt to use a name costs, in requests.
pub const FAILED_ATTEMPT_COST: u32 = 5;

/// A keyed token bucket per client address; `None` when rate limiting is off.
#[derive(Debug, Clone)]
pub struct ClientRateLimit {
    limiter: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl ClientRateLimit {
    /// `per_second` sustained, `burst` at once; `per_second == 0` turns it off.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self::with_quota(per_second, burst, Quota::per_second)
    }

    /// `per_minute` sustained, `burst` at once (for claims, which are rarer than other calls);
    /// `per_minute == 0` turns it off.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::with_quota(per_minute, burst, Quota::per_minute)
    }

    /// `rate` per the `quota`'s period, `burst` at once (the rate when 0); off when `rate == 0`.
    fn with_quota(rate: u32, burst: u32, quota: fn(NonZeroU32) -> Quota) -> Self {
        let limiter = NonZeroU32::new(rate).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(quota(rate).allow_burst(burst)))
        });
        Self { limiter }
    }

    /// Charges this client `FAILED_ATTEMPT_COST` requests more, after a failed attempt to use a
    /// name (401 or 403): guessing tokens runs into the limit quickly.
    pub fn charge_failed_attempt(&self, request: &HttpRequest) {
        if let Some(limiter) = &self.limiter {
            let client = client_address(request);
            // One cell at a time: as many as are left, up to the cost (governor's check_key_n
            // takes all or nothing, and nothing when fewer are left).
            for _ in 0..FAILED_ATTEMPT_COST {
                if limiter.check_key(&client).is_err() {
                    break;
                }
            }
        }
    }

    /// Counts one request of this client; a 429 problem when it is over its rate.
    pub fn check(&self, request: &HttpRequest) -> Result<(), Problem> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let client = client_address(request);
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            Problem::too_many_requests(
                format!(
                    "this client ({client}) sent requests faster than the limit; wait {} ms and retry",
                    wait.as_millis().max(1)
                ),
                wait.max(Duration::from_millis(1)),
            )
        })
    }

    /// Forgets clients that have been quiet long enough to have a full bucket again.
    pub fn forget_idle_clients(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The client of a request, as nginx determined it (the address it passes on from its trusted
/// peers), or the TCP peer when no loopback proxy stands in front.
pub fn client_address(request: &HttpRequest) -> IpAddr {
    let peer = request
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |address| address.ip());
    if !peer.is_loopback() {
        return peer;
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    header("x-real-ip")
        .and_then(|value| value.trim().parse().ok())
        .or_else(|| {
            header("x-forwarded-for")
                .and_then(|value| value.rsplit(',').next().map(|last| last.trim().to_owned()))
                .and_then(|last| last.parse().ok())
        })
        .unwrap_or(peer)
}
