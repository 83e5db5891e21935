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
}
