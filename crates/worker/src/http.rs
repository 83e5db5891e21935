//! The HTTP side of an attempt: a shared client whose DNS resolver applies the
//! address policy (`delivery.allow_networks`) at connect time, so a name that
//! re-resolves to a private address is still refused, and one POST per attempt.
//!
//! Proxies: the environment's `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` are never
//! used. With `delivery.proxy`, reqwest does not resolve a proxied target
//! itself, so [`Client::post`] resolves it first and refuses it when any of
//! its addresses is not allowed (see docs/ARCHITECTURE.md §3; the proxy's own
//! lookup afterwards is the remaining gap).
//!
//! What tenants see of a refusal is [`REFUSED`], without the host's addresses;
//! the detail goes to the operator's log with the endpoint id.
use hookfleet_core::config::DeliverySettings;
use hookfleet_core::net::NetPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The attempt error of a target the address policy refuses, as tenants see it
/// (stored in `delivery_attempts.error`, `x-last-error`, the API and portal).
pub const REFUSED: &str = "refused: the destination is not allowed (delivery.allow_networks)";

/// A refusal by the address policy: displays as [`REFUSED`]; the host and its
/// addresses are for the operator's log only.
#[derive(Debug)]
pub struct Refused {
    pub host: String,
    pub addrs: Vec<IpAddr>,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REFUSED)
    }
}

impl std::error::Error for Refused {}

struct PolicyResolver {
    policy: NetPolicy,
    /// The configured proxy's host name: the operator chose it, so it is not
    /// subject to the policy meant for tenants' targets.
    proxy_host: Option<String>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let exempt = self
            .proxy_host
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(name.as_str()));
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if exempt {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.is_allowed(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused {
                    host,
                    addrs: addrs.iter().map(|a| a.ip()).collect(),
                }) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The delivery client: no redirects (a 3xx is a failed attempt), a
/// whole-request timeout, connection reuse across attempts, the address
/// policy, and the configured proxy (never the environment's).
pub struct Client {
    inner: reqwest::Client,
    policy: NetPolicy,
    /// A proxy is configured: targets are resolved and checked before sending.
    proxied: bool,
    timeout: Duration,
}

impl Client {
    pub fn new(delivery: &DeliverySettings) -> anyhow::Result<Client> {
        let timeout = delivery.timeout;
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .user_agent(concat!("hookfleet/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PolicyResolver {
                policy: delivery.net_policy.clone(),
                proxy_host: delivery.proxy.as_ref().map(|p| p.host()),
            }))
            // Environment proxies (HTTP_PROXY, …) are ignored: they would carry
            // host names past the resolver above.
            .no_proxy();
        if let Some(p) = &delivery.proxy {
            let no_proxy = reqwest::NoProxy::from_string(&delivery.no_proxy.join(","));
            let proxy = reqwest::Proxy::all(p.url().as_str())
                .map_err(|e| anyhow::anyhow!("delivery.proxy {p:?}: {e}"))?
                .no_proxy(no_proxy);
            b = b.proxy(proxy);
        }
        Ok(Client {
            inner: b.build()?,
            policy: delivery.net_policy.clone(),
            proxied: delivery.proxy.is_some(),
            timeout,
        })
    }

    /// Resolves a proxied target's host and refuses it when any address is not
    /// allowed: the proxy would otherwise resolve and reach it unchecked.
    async fn check_proxied(&self, url: &reqwest::Url) -> Result<(), Checked> {
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(()); // IP literals: checked by literal_refused
        };
        let port = url.port_or_known_default().unwrap_or(0);
        let lookup = tokio::net::lookup_host((host, port));
        let addrs: Vec<IpAddr> = match tokio::time::timeout(self.timeout, lookup).await {
            Err(_) => return Err(Checked::Failed("dns error: lookup timed out".into())),
            Ok(Err(e)) => return Err(Checked::Failed(format!("dns error: {e}"))),
            Ok(Ok(a)) => a.map(|a| a.ip()).collect(),
        };
        if addrs.is_empty() {
            return Err(Checked::Failed("dns error: no address".into()));
        }
        if addrs.iter().any(|a| !self.policy.is_allowed(*a)) {
            return Err(Checked::Refused(Refused {
                host: host.to_owned(),
                addrs,
            }));
        }
        Ok(())
    }

    /// POSTs `body` with `headers` for `endpoint_id`; never fails, every
    /// outcome is a [`Response`].
    pub async fn post(
        &self,
        endpoint_id: &str,
        url: &str,
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
        if let Some(refused) = literal_refused(&parsed, &self.policy) {
            log_refused(endpoint_id, &refused, "the address policy");
            return fail(refused.to_string(), start);
        }
        if self.proxied {
            match self.check_proxied(&parsed).await {
                Ok(()) => {}
                Err(Checked::Refused(r)) => {
                    log_refused(endpoint_id, &r, "the address policy, before the proxy");
                    return fail(r.to_string(), start);
                }
                Err(Checked::Failed(e)) => return fail(e, start),
            }
        }
        let mut resp = match self
            .inner
            .post(parsed)
            .headers(headers)
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                if let Some(r) = refusal_in(&e) {
                    log_refused(endpoint_id, r, "the address policy, at connect time");
                }
                return fail(error_chain(&e.without_url()), start);
            }
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
}

/// Why a proxied target was not sent.
enum Checked {
    Refused(Refused),
    Failed(String),
}

/// The operator's record of a refusal: the host and its addresses, which the
/// tenant's error leaves out.
fn log_refused(endpoint_id: &str, r: &Refused, by: &str) {
    let addrs: Vec<String> = r.addrs.iter().map(ToString::to_string).collect();
    tracing::warn!(
        endpoint_id,
        host = %r.host,
        addrs = %addrs.join(","),
        "Delivery refused by {by}: the target's address is not allowed by delivery.allow_networks."
    );
}

/// The policy's refusal behind a reqwest error, if that is what it is.
fn refusal_in(e: &reqwest::Error) -> Option<&Refused> {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = src {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r);
        }
        src = c.source();
    }
    None
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
pub fn literal_refused(url: &reqwest::Url, policy: &NetPolicy) -> Option<Refused> {
    let ip = match url.host()? {
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    (!policy.is_allowed(ip)).then(|| Refused {
        host: ip.to_string(),
        addrs: vec![ip],
    })
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
        let r = literal_refused(&"http://10.1.2.3/x".parse().unwrap(), &p).unwrap();
        assert_eq!(r.to_string(), REFUSED);
        assert!(!REFUSED.contains("10.1.2.3"));
    }

    #[tokio::test]
    async fn the_proxy_host_is_exempt_from_the_policy_targets_are_not() {
        let r = PolicyResolver {
            policy: NetPolicy::default(),
            proxy_host: Some("localhost".into()),
        };
        let name = |s: &str| s.parse::<Name>().unwrap();
        let addrs: Vec<SocketAddr> = r.resolve(name("LOCALHOST")).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
        let r = PolicyResolver {
            policy: NetPolicy::default(),
            proxy_host: Some("proxy.internal".into()),
        };
        let err = r.resolve(name("localhost")).await.err().unwrap();
        assert_eq!(err.to_string(), REFUSED);
        let refused = err.downcast_ref::<Refused>().unwrap();
        assert_eq!(refused.host, "localhost");
        assert!(refused.addrs.iter().all(|a| a.is_loopback()));
    }
}
