//! Delivery control of one endpoint in one worker: its rate limit, its
//! concurrency limit, and the pause after a "slow down" answer.
//!
//! `rate_limit` and `max_in_flight` hold for all workers together: each worker
//! takes its share, the endpoint's figure divided by the number of workers
//! that consume the endpoint's queue, which every worker knows from the
//! membership (`worker.consumers_per_endpoint` capped by the live workers,
//! docs/ARCHITECTURE.md §21). A delivery over the limit waits in the
//! consumer's prefetch window, unacknowledged, and nothing fails for it.
//!
//! The gate also counts the messages this worker holds for the endpoint
//! (received, not yet finished) and whether any arrived lately, for the
//! deliverable-backlog gauge.
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The statuses that ask a sender to slow down (RFC 9110, RFC 6585).
pub fn is_slow_down(status: Option<u16>) -> bool {
    matches!(status, Some(429 | 502 | 503 | 504))
}

/// The longest pause a slow-down answer (or its `Retry-After`) imposes.
pub const MAX_PAUSE: Duration = Duration::from_secs(300);

pub struct Gate {
    /// Workers consuming the endpoint's queue (this one included).
    consumers: AtomicU32,
    /// Next free slot of the rate limiter.
    next_slot: tokio::sync::Mutex<Option<Instant>>,
    /// This worker's share of `max_in_flight`.
    in_flight: Arc<Semaphore>,
    in_flight_size: Mutex<u32>,
    paused_until: Mutex<Option<Instant>>,
    /// Slow-down answers in a row; the pause without `Retry-After` doubles with it.
    slow_streak: AtomicU32,
    /// Messages received and not yet finished (see [`Gate::hold`]).
    held: Arc<AtomicU32>,
    /// Set by a message's arrival, cleared by the depth poll that finds the
    /// endpoint idle: only busy endpoints' queues are polled.
    busy: AtomicBool,
}

/// One message this worker holds for an endpoint; dropped when it is finished
/// (settled, or given back).
pub struct Held(Arc<AtomicU32>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A share of `total` for one of `consumers`, never below 1.
pub fn share(total: u32, consumers: u32) -> u32 {
    total.div_ceil(consumers.max(1)).max(1)
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

impl Gate {
    pub fn new() -> Self {
        Self {
            consumers: AtomicU32::new(1),
            next_slot: tokio::sync::Mutex::new(None),
            in_flight: Arc::new(Semaphore::new(0)),
            in_flight_size: Mutex::new(0),
            paused_until: Mutex::new(None),
            slow_streak: AtomicU32::new(0),
            held: Arc::new(AtomicU32::new(0)),
            busy: AtomicBool::new(false),
        }
    }

    /// Counts one message held until the returned guard drops. `true` in the
    /// second place when the endpoint just became busy (the caller registers
    /// it with the depth poll).
    pub fn hold(&self) -> (Held, bool) {
        self.held.fetch_add(1, Ordering::Relaxed);
        let woke = !self.busy.swap(true, Ordering::Relaxed);
        (Held(self.held.clone()), woke)
    }

    /// Messages held now.
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Relaxed)
    }

    /// The depth poll found the endpoint idle: the next message wakes it.
    pub fn idle(&self) {
        self.busy.store(false, Ordering::Relaxed);
    }

    pub fn set_consumers(&self, n: u32) {
        self.consumers.store(n.max(1), Ordering::Relaxed);
    }

    pub fn consumers(&self) -> u32 {
        self.consumers.load(Ordering::Relaxed)
    }

    /// Waits until this worker may start one more delivery to the endpoint:
    /// after any pause, at the rate limiter's next slot, with a concurrency
    /// permit (held until the delivery is done). `None` limits mean none.
    pub async fn admit(
        &self,
        rate_limit: Option<u32>,
        max_in_flight: Option<u32>,
    ) -> Option<OwnedSemaphorePermit> {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        if let Some(rate) = rate_limit.filter(|r| *r > 0) {
            let interval = Duration::from_secs_f64(f64::from(self.consumers()) / f64::from(rate));
            let wait_until = {
                let mut next = self.next_slot.lock().await;
                let now = Instant::now();
                let slot = next.map_or(now, |n| n.max(now));
                *next = Some(slot + interval);
                slot
            };
            tokio::time::sleep_until(wait_until).await;
        }
        let max = max_in_flight?;
        self.resize(share(max, self.consumers()));
        self.in_flight.clone().acquire_owned().await.ok()
    }

    /// Sets the permits of this worker's share (permits in use stay valid).
    fn resize(&self, want: u32) {
        let mut size = self
            .in_flight_size
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if want > *size {
            self.in_flight.add_permits((want - *size) as usize);
        } else if want < *size {
            // Only free permits can be forgotten; the rest go on the next resize.
            let forgot = self.in_flight.forget_permits((*size - want) as usize);
            *size -= forgot as u32;
            return;
        }
        *size = want;
    }

    /// A slow-down answer: no new delivery starts before `retry_after` (capped
    /// at [`MAX_PAUSE`]) or, without it, 1 s doubling with each one in a row up
    /// to 64 s. Returns the pause.
    pub fn slow_down(&self, retry_after: Option<Duration>) -> Duration {
        let streak = self.slow_streak.fetch_add(1, Ordering::Relaxed).min(6);
        let pause = retry_after
            .unwrap_or(Duration::from_secs(1 << streak))
            .min(MAX_PAUSE);
        let until = Instant::now() + pause;
        let mut p = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
        }
        pause
    }

    /// Any other answer ends a slow-down streak.
    pub fn answered(&self) {
        self.slow_streak.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_up_and_never_reach_zero() {
        assert_eq!(share(10, 3), 4);
        assert_eq!(share(1, 3), 1);
        assert_eq!(share(10, 0), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_shared_by_the_consumers() {
        let g = Gate::new();
        g.set_consumers(2);
        let start = Instant::now();
        for _ in 0..11 {
            g.admit(Some(10), None).await;
        }
        // 10/s for two workers: 5/s here, so the 11th starts after 2 s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped_and_slow_down_pauses() {
        let g = Gate::new();
        let a = g.admit(None, Some(2)).await.unwrap();
        let _b = g.admit(None, Some(2)).await.unwrap();
        let third = tokio::time::timeout(Duration::from_secs(1), g.admit(None, Some(2))).await;
        assert!(third.is_err(), "a third delivery waits");
        drop(a);
        assert!(g.admit(None, Some(2)).await.is_some());

        assert_eq!(g.slow_down(None), Duration::from_secs(1));
        assert_eq!(g.slow_down(None), Duration::from_secs(2));
        assert_eq!(
            g.slow_down(Some(Duration::from_secs(9999))),
            MAX_PAUSE,
            "Retry-After is capped"
        );
        let start = Instant::now();
        g.admit(None, None).await;
        assert!(start.elapsed() >= MAX_PAUSE);
        g.answered();
        assert_eq!(g.slow_down(None), Duration::from_secs(1));
    }
}
