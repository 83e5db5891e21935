//! Validation of what an endpoint is made of: its URL and its subscriptions.
use url::Url;

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Checks an endpoint URL: absolute http(s), a host, no credentials, not too long.
pub fn validate_url(s: &str) -> Result<Url, String> {
    if s.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(s).map_err(|e| format!("not a valid URL ({e})"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "scheme must be http or https, not `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials; use custom headers instead".into());
    }
    Ok(url)
}

/// Checks a subscription list: `["*"]` or valid event type names, at least one.
pub fn validate_event_filter(types: &[String]) -> Result<(), String> {
    if types.is_empty() {
        return Err("must list at least one event type, or \"*\"".into());
    }
    for t in types {
        if t != "*" {
            crate::envelope::validate_event_type(t).map_err(|e| format!("`{t}` {e}"))?;
        }
    }
    Ok(())
}

/// The most deliveries per second an endpoint's `rate_limit` may allow.
pub const MAX_RATE_LIMIT: i32 = 100_000;
/// The most concurrent deliveries an endpoint's `max_in_flight` may allow.
pub const MAX_IN_FLIGHT: i32 = 1000;

/// Checks `rate_limit` (deliveries per second, all workers together).
pub fn validate_rate_limit(r: i32) -> Result<(), String> {
    if (1..=MAX_RATE_LIMIT).contains(&r) {
        Ok(())
    } else {
        Err(format!(
            "must be between 1 and {MAX_RATE_LIMIT} deliveries per second, or null for no limit"
        ))
    }
}

/// Checks `max_in_flight` (concurrent deliveries, all workers together).
pub fn validate_max_in_flight(m: i32) -> Result<(), String> {
    if (1..=MAX_IN_FLIGHT).contains(&m) {
        Ok(())
    } else {
        Err(format!(
            "must be between 1 and {MAX_IN_FLIGHT}, or null for the worker's default"
        ))
    }
}

/// Checks a retry schedule given as delays (`["5s", "1m", "1h"]`): 1 to 29 of
/// them (at most 30 attempts), each from 1 s to 24 h. Returns the stored form,
/// `"5s,1m,1h"`.
pub fn validate_retry_schedule(delays: &[String]) -> Result<String, String> {
    if delays.is_empty() {
        return Err("must list at least one delay, or be null for the default schedule".into());
    }
    let joined = delays.join(",");
    let schedule = crate::retry::RetrySchedule::parse(&joined).map_err(|e| e.to_string())?;
    if let Some(d) = delays.iter().find(|d| {
        humantime::parse_duration(d.trim()).is_ok_and(|d| d < std::time::Duration::from_secs(1))
    }) {
        return Err(format!(
            "a delay must be between 1 s and 24 h, `{d}` is not"
        ));
    }
    if schedule.max_attempts() as usize != delays.len() + 1 {
        return Err("every delay must be a duration such as 30s, 5m or 2h".into());
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(validate_url("https://example.com/hook").is_ok());
        assert!(validate_url("http://127.0.0.1:9000/").is_ok());
        assert!(validate_url("ftp://example.com")
            .unwrap_err()
            .contains("scheme"));
        assert!(validate_url("https://user:pw@example.com")
            .unwrap_err()
            .contains("credentials"));
        assert!(validate_url("not a url").is_err());
        assert!(validate_url(&format!("https://e.com/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn filters() {
        assert!(validate_event_filter(&["*".into()]).is_ok());
        assert!(validate_event_filter(&["match.found".into()]).is_ok());
        assert!(validate_event_filter(&[]).is_err());
        assert!(validate_event_filter(&["bad type".into()]).is_err());
    }

    #[test]
    fn delivery_control() {
        assert!(validate_rate_limit(1).is_ok());
        assert!(validate_rate_limit(0)
            .unwrap_err()
            .contains("between 1 and"));
        assert!(validate_rate_limit(100_001).is_err());
        assert!(validate_max_in_flight(1000).is_ok());
        assert!(validate_max_in_flight(0).is_err());
        let s = |v: &[&str]| {
            validate_retry_schedule(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(s(&["5s", "1m", "1h"]).unwrap(), "5s,1m,1h");
        assert!(s(&[]).is_err());
        assert!(s(&["500ms"]).unwrap_err().contains("1 s and 24 h"));
        assert!(s(&["25h"]).unwrap_err().contains("24 h"));
        assert!(s(&["soon"]).unwrap_err().contains("not a duration"));
        assert!(s(&vec!["1m"; 30]).unwrap_err().contains("at most 30"));
        assert!(s(&vec!["1m"; 29]).is_ok());
    }
}
