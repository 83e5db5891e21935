//! The HTTP side of an attempt: a shared client whose DNS resolver applies the
//! address policy (`delivery.allow_networks`) at connect time, so a name that
//! re-resolves to a private address is still refused, and one POST per attempt.
use hookfleet_core::net::NetPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct PolicyResolver {
    policy: NetPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.is_allowed(a.ip()))
                .collect();
            if allowed.is_empty() {
                let shown = addrs
                    .first()
                    .map(|a| a.ip().to_string())
                    .unwrap_or_else(|| "no address".into());
                return Err(format!("refused: {host} resolves to {shown}, which delivery.allow_networks does not allow").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Builds the delivery client: no redirects (a 3xx is a failed attempt), a
/// whole-request timeout, connection reuse across attempts.
pub fn client(policy: NetPolicy, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .user_agent(concat!("hookfleet/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(PolicyResolver { policy }))
        .build()?)
}

/// What one POST produced.
#[derive(Debug)]
pub struct Response {
    pub status: Option<u16>,
    pub excerpt: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    pub latency: Duration,
}

impl Response {
    /// An attempt that failed before any request was made.
    pub fn failed(error: &str) -> Response {
        Response {
            status: None,
            excerpt: None,
            error: Some(error.to_owned()),
            retry_after: None,
            latency: Duration::ZERO,
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }
}

/// Checks an IP-literal host against the policy: reqwest skips the resolver for those.
pub fn literal_refused(url: &reqwest::Url, policy: &NetPolicy) -> Option<String> {
    let ip = match url.host()? {
        url::Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
        url::Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    (!policy.is_allowed(ip))
        .then(|| format!("refused: {ip} is not allowed by delivery.allow_networks"))
}

/// POSTs `body` with `headers`; never fails, every outcome is a [`Response`].
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    policy: &NetPolicy,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
    excerpt_bytes: usize,
) -> Response {
    let start = Instant::now();
    let fail = |error: String, start: Instant| Response {
        status: None,
        excerpt: None,
        error: Some(error),
        retry_after: None,
        latency: start.elapsed(),
    };
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => return fail(format!("invalid endpoint URL: {e}"), start),
    };
    if let Some(refused) = literal_refused(&parsed, policy) {
        return fail(refused, start);
    }
    let mut resp = match client.post(parsed).headers(headers).body(body).send().await {
        Ok(r) => r,
        Err(e) => return fail(error_chain(&e.without_url()), start),
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut buf = Vec::new();
    let mut error = None;
    while buf.len() < excerpt_bytes {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c[..c.len().min(excerpt_bytes - buf.len())]),
            Ok(None) => break,
            Err(e) => {
                error = Some(error_chain(&e.without_url()));
                break;
            }
        }
    }
    let excerpt = (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).replace('\0', ""));
    Response {
        status: Some(status),
        excerpt,
        error,
        retry_after,
        latency: start.elapsed(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn literals_are_checked() {
        let p = NetPolicy::default();
        assert!(literal_refused(&"http://127.0.0.1:9/x".parse().unwrap(), &p).is_some());
        assert!(literal_refused(&"http://[::1]:9/x".parse().unwrap(), &p).is_some());
        assert!(literal_refused(&"http://example.com/x".parse().unwrap(), &p).is_none());
    }
}
