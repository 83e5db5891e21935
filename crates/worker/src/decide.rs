//! The delivery decision: what one attempt's answer means for the delivery,
//! the endpoint's health and its gate. Pure: no I/O, no clock; every rule of
//! docs/ARCHITECTURE.md §3 ("Retries"), §10 and §17 that turns an answer into
//! the next step lives here, and [`crate::attempt`] carries the result out.
use crate::gate;
use crate::health::Signal;
use hookfleet_core::retry::RetrySchedule;
use std::time::Duration;

/// How a delivery is being attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Taken by an endpoint's consumer, through its gate.
    Normal,
    /// Taken by the prober of an open circuit: no gate, nothing paced, no pause.
    Probe,
    /// The head of a FIFO endpoint's queue: failures are retried in place (a
    /// retry tier would let the next message pass).
    Ordered,
}

/// Where a delivery stands in its budget: the attempt number being made
/// (1-based) and the attempts made before a resend's fresh budget or spent on
/// slow-down answers (`x-attempt`, `x-attempt-base`, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub attempt: u32,
    pub base: u32,
}

impl Position {
    /// The attempt is at least 1, and the base below it.
    pub fn new(attempt: u32, base: u32) -> Position {
        let attempt = attempt.max(1);
        Position {
            attempt,
            base: base.min(attempt - 1),
        }
    }

    /// Attempts counted against the schedule, this one included.
    pub fn counted(self) -> u32 {
        self.attempt - self.base
    }
}

/// What the endpoint answered, as far as the decision goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status; `None` without a response.
    pub status: Option<u16>,
    /// A 2xx.
    pub success: bool,
    pub retry_after: Option<Duration>,
}

/// What becomes of the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Succeeded,
    /// Through the retry tier of `delay` (`x-attempt` = `next.attempt`; with
    /// `slow_down`, `x-attempt-base` = `next.base` too).
    Retry {
        delay: Duration,
        next: Position,
        slow_down: bool,
    },
    /// An ordered endpoint's head: recorded, kept unacked, attempted again at
    /// `next` after `delay`.
    RetryInPlace {
        delay: Duration,
        next: Position,
    },
    /// The budget is spent: `hookfleet.dead`, and `delivery.exhausted`.
    Dead,
    /// 410 Gone: `hookfleet.dead` at once, no `delivery.exhausted` (the
    /// endpoint's `endpoint.disabled` reports it).
    Gone,
}

/// What the endpoint's gate in this worker learns (§10, Delivery control).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// A probe has no gate.
    Untouched,
    /// Any answer but a slow-down one ends a slow-down streak.
    Answered,
    /// 429/502/503/504: pause the endpoint (for `Retry-After` when given).
    SlowDown { retry_after: Option<Duration> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub health: Signal,
    pub pace: Pace,
}

/// Decides what an attempt's answer leads to. `schedule` is the delivery's
/// (the endpoint's, else its event type's, else the default).
pub fn decide(answer: Answer, at: Position, schedule: &RetrySchedule, mode: Mode) -> Decision {
    let health = Signal::of(answer.status, answer.success);
    let slow_down = gate::is_slow_down(answer.status);
    let pace = match mode {
        Mode::Probe => Pace::Untouched,
        _ if slow_down => Pace::SlowDown {
            retry_after: answer.retry_after,
        },
        _ => Pace::Answered,
    };
    let verdict = if answer.success {
        Verdict::Succeeded
    } else if health == Signal::Gone {
        Verdict::Gone
    } else {
        failed(answer, at, schedule, mode, slow_down)
    };
    Decision {
        verdict,
        health,
        pace,
    }
}

/// A failure other than 410: the schedule's next delay, or dead.
fn failed(
    answer: Answer,
    at: Position,
    schedule: &RetrySchedule,
    mode: Mode,
    slow_down: bool,
) -> Verdict {
    let counted = at.counted();
    let delay = if slow_down {
        // Not counted: the same step of the schedule again (its last one once
        // the budget would be spent), with a fresh attempt number.
        let step = counted
            .min(schedule.max_attempts().saturating_sub(1))
            .max(1);
        schedule.next_delay(step, answer.retry_after)
    } else {
        schedule.next_delay(counted, answer.retry_after)
    };
    let Some(delay) = delay else {
        return Verdict::Dead;
    };
    let next = Position {
        attempt: at.attempt + 1,
        base: at.base + u32::from(slow_down),
    };
    match mode {
        Mode::Ordered => Verdict::RetryInPlace { delay, next },
        Mode::Normal | Mode::Probe => Verdict::Retry {
            delay,
            next,
            slow_down,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Duration = Duration::from_secs(1);

    fn answer(status: Option<u16>) -> Answer {
        Answer {
            status,
            success: status.is_some_and(|s| (200..300).contains(&s)),
            retry_after: None,
        }
    }

    fn sched(s: &str) -> RetrySchedule {
        RetrySchedule::parse(s).unwrap()
    }

    fn at(attempt: u32, base: u32) -> Position {
        Position::new(attempt, base)
    }

    fn retry(delay: Duration, attempt: u32, base: u32, slow_down: bool) -> Verdict {
        Verdict::Retry {
            delay,
            next: Position { attempt, base },
            slow_down,
        }
    }

    /// A case: name, status, position, mode, and the decision expected.
    type Row = (
        &'static str,
        Option<u16>,
        Position,
        Mode,
        Verdict,
        Signal,
        Pace,
    );

    /// Every row of the health table (§10) and of the retry rules (§3, §10
    /// slow-down, §17 in place), one case each.
    #[test]
    fn the_rules_table() {
        let s = sched("5s,5m,30m");
        let (n, p, o) = (Mode::Normal, Mode::Probe, Mode::Ordered);
        let ans = Pace::Answered;
        let slow = Pace::SlowDown { retry_after: None };
        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            ("2xx succeeds", Some(200), at(1, 0), n, Verdict::Succeeded, Signal::Success, ans),
            ("204 succeeds", Some(204), at(3, 0), n, Verdict::Succeeded, Signal::Success, ans),
            ("2xx on the last attempt", Some(200), at(4, 0), n, Verdict::Succeeded, Signal::Success, ans),
            ("no response: a failure, first delay", None, at(1, 0), n, retry(5 * S, 2, 0, false), Signal::Failure, ans),
            ("500: a failure, second delay", Some(500), at(2, 0), n, retry(300 * S, 3, 0, false), Signal::Failure, ans),
            ("5xx on the last attempt: dead", Some(500), at(4, 0), n, Verdict::Dead, Signal::Failure, ans),
            ("a resend counts from its base", Some(500), at(5, 4), n, retry(5 * S, 6, 4, false), Signal::Failure, ans),
            ("other 4xx: neutral, retried", Some(400), at(1, 0), n, retry(5 * S, 2, 0, false), Signal::Neutral, ans),
            ("3xx: neutral, retried", Some(302), at(3, 0), n, retry(1800 * S, 4, 0, false), Signal::Neutral, ans),
            ("4xx on the last attempt: dead", Some(404), at(4, 0), n, Verdict::Dead, Signal::Neutral, ans),
            ("410 on the first attempt: gone", Some(410), at(1, 0), n, Verdict::Gone, Signal::Gone, ans),
            ("410 in order: gone", Some(410), at(1, 0), o, Verdict::Gone, Signal::Gone, ans),
            ("429: slow down, not counted", Some(429), at(1, 0), n, retry(5 * S, 2, 1, true), Signal::Failure, slow),
            ("502 slows down", Some(502), at(2, 0), n, retry(300 * S, 3, 1, true), Signal::Failure, slow),
            ("503 slows down", Some(503), at(2, 1), n, retry(5 * S, 3, 2, true), Signal::Failure, slow),
            ("504 on the last attempt: the last delay", Some(504), at(4, 0), n, retry(1800 * S, 5, 1, true), Signal::Failure, slow),
            ("501 is an ordinary failure", Some(501), at(1, 0), n, retry(5 * S, 2, 0, false), Signal::Failure, ans),
            ("a probe's failure retries, no pace", Some(500), at(1, 0), p, retry(5 * S, 2, 0, false), Signal::Failure, Pace::Untouched),
            ("a probe's slow-down spends nothing", Some(503), at(1, 0), p, retry(5 * S, 2, 1, true), Signal::Failure, Pace::Untouched),
            ("a probe's success", Some(200), at(1, 0), p, Verdict::Succeeded, Signal::Success, Pace::Untouched),
            ("in order: retried in place", Some(500), at(1, 0), o,
                Verdict::RetryInPlace { delay: 5 * S, next: Position { attempt: 2, base: 0 } }, Signal::Failure, ans),
            ("in order, slow down: in place, not counted", Some(429), at(2, 0), o,
                Verdict::RetryInPlace { delay: 300 * S, next: Position { attempt: 3, base: 1 } }, Signal::Failure, slow),
            ("in order, last attempt: dead", Some(500), at(4, 0), o, Verdict::Dead, Signal::Failure, ans),
        ];
        for (name, status, pos, mode, verdict, health, pace) in rows {
            let d = decide(answer(status), pos, &s, mode);
            assert_eq!(
                d,
                Decision {
                    verdict,
                    health,
                    pace
                },
                "{name}"
            );
        }
    }

    #[test]
    fn an_empty_schedule_dead_letters_even_a_slow_down() {
        let s = sched("");
        for status in [None, Some(500), Some(429), Some(503), Some(400)] {
            let d = decide(answer(status), at(1, 0), &s, Mode::Normal);
            assert_eq!(d.verdict, Verdict::Dead, "{status:?}");
        }
    }

    #[test]
    fn retry_after_picks_the_tier_at_or_after_it() {
        let s = sched("5s,5m,30m");
        let mut a = answer(Some(500));
        a.retry_after = Some(60 * S);
        assert_eq!(
            decide(a, at(1, 0), &s, Mode::Normal).verdict,
            retry(300 * S, 2, 0, false)
        );
        a.status = Some(429);
        a.retry_after = Some(99_999 * S);
        let d = decide(a, at(1, 0), &s, Mode::Normal);
        assert_eq!(
            d.verdict,
            retry(1800 * S, 2, 1, true),
            "capped at the longest"
        );
        assert_eq!(
            d.pace,
            Pace::SlowDown {
                retry_after: Some(99_999 * S)
            }
        );
    }

    #[test]
    fn positions_are_clamped() {
        assert_eq!(
            Position::new(0, 0),
            Position {
                attempt: 1,
                base: 0
            }
        );
        assert_eq!(
            Position::new(3, 7),
            Position {
                attempt: 3,
                base: 2
            }
        );
        assert_eq!(Position::new(3, 7).counted(), 1);
    }

    fn any_mode() -> impl Strategy<Value = Mode> {
        prop_oneof![Just(Mode::Normal), Just(Mode::Probe), Just(Mode::Ordered)]
    }

    proptest! {
        /// Whatever the answer: a slow-down answer never dead-letters while the
        /// schedule has a delay; a retry always moves the attempt on by one and
        /// the base only on a slow-down; only the ordered mode retries in place;
        /// only a 410 is gone; a success is always a success.
        #[test]
        fn decisions_keep_the_invariants(
            status in proptest::option::of(100u16..600),
            attempt in 1u32..40,
            base in 0u32..40,
            delays in proptest::collection::vec(1u64..100, 0..6),
            retry_after in proptest::option::of(0u64..200),
            mode in any_mode(),
        ) {
            let list: Vec<String> = delays.iter().map(|d| format!("{d}s")).collect();
            let s = sched(&list.join(","));
            let mut a = answer(status);
            a.retry_after = retry_after.map(Duration::from_secs);
            let pos = Position::new(attempt, base);
            let d = decide(a, pos, &s, mode);
            let slow = gate::is_slow_down(status);
            match d.verdict {
                Verdict::Succeeded => prop_assert!(a.success),
                Verdict::Gone => prop_assert_eq!(status, Some(410)),
                Verdict::Dead => {
                    prop_assert!(!a.success && status != Some(410));
                    prop_assert!(!slow || delays.is_empty());
                    prop_assert!(slow || pos.counted() >= s.max_attempts());
                }
                Verdict::Retry { delay, next, slow_down } => {
                    prop_assert!(mode != Mode::Ordered);
                    prop_assert_eq!(slow_down, slow);
                    prop_assert_eq!(next.attempt, pos.attempt + 1);
                    prop_assert_eq!(next.base, pos.base + u32::from(slow));
                    prop_assert!(s.tiers().contains(&delay));
                }
                Verdict::RetryInPlace { delay, next } => {
                    prop_assert_eq!(mode, Mode::Ordered);
                    prop_assert_eq!(next.attempt, pos.attempt + 1);
                    prop_assert_eq!(next.base, pos.base + u32::from(slow));
                    prop_assert!(s.tiers().contains(&delay));
                }
            }
            prop_assert_eq!(d.pace == Pace::Untouched, mode == Mode::Probe);
        }
    }
}
