//! The retry schedule (docs/ARCHITECTURE.md §20.3).
//!
//! `5s,5m,30m,2h,5h,10h,10h` means: after attempt 1 fails wait 5 s, after attempt 2
//! wait 5 min, …; one more attempt than delays (8 in all). Each distinct delay is a
//! tier: a queue whose queue-level TTL holds messages for that long.
use std::time::Duration;

/// A validated retry schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

/// The schedule string could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("`{0}` is not a duration (use e.g. 5s, 5m, 2h, 1500ms)")]
    BadDelay(String),
    #[error("a delay must be between 1 ms and 24 h, `{0}` is not")]
    OutOfRange(String),
    #[error("at most 30 attempts (29 delays) are allowed")]
    TooMany,
}

impl RetrySchedule {
    /// Parses a comma-separated list of durations; an empty string means "no retries".
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        let mut delays = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let d = humantime::parse_duration(part)
                .map_err(|_| ScheduleError::BadDelay(part.to_owned()))?;
            if d < Duration::from_millis(1) || d > Duration::from_secs(24 * 3600) {
                return Err(ScheduleError::OutOfRange(part.to_owned()));
            }
            delays.push(d);
        }
        if delays.len() > 29 {
            return Err(ScheduleError::TooMany);
        }
        Ok(Self { delays })
    }

    /// Attempts in all: the first plus one per delay.
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    /// The distinct delays, ascending: one retry queue each.
    pub fn tiers(&self) -> Vec<Duration> {
        let mut t = self.delays.clone();
        t.sort();
        t.dedup();
        t
    }

    /// Where a delivery goes after `attempt` (1-based) failed: `None` when the
    /// budget is spent, else the tier delay. A `Retry-After` moves the wait to the
    /// first tier at or after it (or the longest tier when none is that long).
    pub fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.delays.get(attempt.checked_sub(1)? as usize)?;
        match retry_after {
            Some(ra) if ra > base => {
                let tiers = self.tiers();
                Some(
                    tiers
                        .iter()
                        .copied()
                        .find(|t| *t >= ra)
                        .unwrap_or_else(|| *tiers.last().unwrap_or(&base)),
                )
            }
            _ => Some(base),
        }
    }
}

/// The suffix of a tier's queue name: `5s`, `5m`, `2h`, `1500ms`.
pub fn tier_name(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule() {
        let s = RetrySchedule::parse("5s,5m,30m,2h,5h,10h,10h").unwrap();
        assert_eq!(s.max_attempts(), 8);
        assert_eq!(s.tiers().len(), 6);
        let names: Vec<_> = s.tiers().into_iter().map(tier_name).collect();
        assert_eq!(names, ["5s", "5m", "30m", "2h", "5h", "10h"]);
        assert_eq!(s.next_delay(1, None), Some(Duration::from_secs(5)));
        assert_eq!(s.next_delay(7, None), Some(Duration::from_secs(36000)));
        assert_eq!(s.next_delay(8, None), None);
        assert_eq!(s.next_delay(0, None), None);
    }

    #[test]
    fn retry_after_moves_to_the_first_tier_at_or_after_it() {
        let s = RetrySchedule::parse("5s,5m,30m").unwrap();
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s.next_delay(1, Some(Duration::from_secs(99999))),
            Some(Duration::from_secs(1800))
        );
    }

    #[test]
    fn bad_schedules() {
        assert!(matches!(
            RetrySchedule::parse("5s,soon"),
            Err(ScheduleError::BadDelay(_))
        ));
        assert!(matches!(
            RetrySchedule::parse("25h"),
            Err(ScheduleError::OutOfRange(_))
        ));
        assert_eq!(RetrySchedule::parse("").unwrap().max_attempts(), 1);
        assert_eq!(tier_name(Duration::from_millis(1500)), "1500ms");
    }
}
