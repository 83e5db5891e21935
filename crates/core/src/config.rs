//! Configuration: built-in defaults (`config.default.toml`, checked in) <
//! `hookfleet.toml` or `--config FILE` < `HOOKFLEET__SECTION__KEY` environment
//! variables. Loaded once, validated, and handed to every role as [`Settings`].
//! Errors name the key and the environment variable that set it.
use crate::net::NetPolicy;
use crate::retry::RetrySchedule;
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The defaults, also the documentation of every key.
pub const DEFAULTS: &str = include_str!("config.default.toml");

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}` (env {env}): {reason}")]
    Invalid {
        key: &'static str,
        env: String,
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl fmt::Display) -> ConfigError {
    ConfigError::Invalid {
        key,
        env: format!("HOOKFLEET__{}", key.replace('.', "__").to_uppercase()),
        reason: reason.to_string(),
    }
}

/// RabbitMQ queue type for all hookfleet queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Classic,
    Quorum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    database: RawDatabase,
    amqp: RawAmqp,
    api: RawApi,
    metrics: RawMetrics,
    retry: RawRetry,
    delivery: RawDelivery,
    router: RawRouter,
    registry: RawRegistry,
    log: RawLog,
    shutdown: RawShutdown,
    circuit: RawCircuit,
    retention: RawRetention,
    secrets: RawSecrets,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    encryption_keys: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: String,
    pool_size: usize,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAmqp {
    url: String,
    queue_type: QueueType,
    router_prefetch: u16,
    router_consumers: usize,
    worker_prefetch: u16,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    listen: String,
    admin_key: Option<String>,
    max_endpoints_per_tenant: usize,
    max_custom_headers: usize,
    max_header_value_bytes: usize,
    portal_link_ttl: String,
    portal_session_ttl: String,
    public_url: Option<String>,
    header_read_timeout: String,
    idle_timeout: String,
    max_connections: usize,
    trust_forwarded_proto: bool,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    schedule: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    timeout: String,
    allow_networks: StringOrList,
    proxy: String,
    no_proxy: StringOrList,
    max_payload_bytes: usize,
    response_excerpt_bytes: usize,
    max_in_flight: usize,
    batch_size: usize,
    batch_wait: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    batch_size: usize,
    batch_wait: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    resync_interval: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    max_age: String,
    interval: String,
    batch_size: usize,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCircuit {
    failure_threshold: usize,
    cooldown: String,
    max_cooldown: String,
    auto_disable_after: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShutdown {
    grace: String,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: LogFormat,
    level: String,
}

/// A secret string from configuration: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);
impl SecretString {
    pub fn expose(&self) -> &str {
        &self.0
    }
}
impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The egress proxy's URL (`http://host:port`, `socks5://host:port`,
/// `socks5h://host:port`); its password, if any, is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(url::Url);
impl ProxyUrl {
    pub fn url(&self) -> &url::Url {
        &self.0
    }
    /// The proxy's host as written (no brackets around IPv6).
    pub fn host(&self) -> String {
        match self.0.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        }
    }
}
impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut u = self.0.clone();
        if u.password().is_some() {
            let _ = u.set_password(Some("***"));
        }
        write!(f, "{u}")
    }
}

/// Validates `delivery.proxy` (empty: none).
fn proxy_url(s: &str) -> Result<Option<ProxyUrl>, ConfigError> {
    const KEY: &str = "delivery.proxy";
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let u = url::Url::parse(s).map_err(|e| {
        invalid(
            KEY,
            format!("not a URL ({e}); use e.g. http://proxy.internal:3128"),
        )
    })?;
    const SCHEMES: [&str; 3] = ["http", "socks5", "socks5h"];
    if !SCHEMES.contains(&u.scheme()) {
        return Err(invalid(
            KEY,
            format!(
                "scheme `{}` is not supported; use one of {SCHEMES:?}",
                u.scheme()
            ),
        ));
    }
    if u.host_str().is_none_or(str::is_empty) || u.port_or_known_default().is_none() {
        return Err(invalid(
            KEY,
            "must name a host and a port, e.g. http://proxy.internal:3128",
        ));
    }
    if !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some() {
        return Err(invalid(
            KEY,
            "must be only scheme://[user:password@]host:port, without a path or query",
        ));
    }
    Ok(Some(ProxyUrl(u)))
}

/// Validates one `delivery.no_proxy` entry: `*`, an IP address, a CIDR range,
/// or a host/domain name (a leading dot is allowed).
fn no_proxy_entry(e: &str) -> Result<String, ConfigError> {
    let ok =
        e == "*" || e.parse::<std::net::IpAddr>().is_ok() || e.parse::<ipnet::IpNet>().is_ok() || {
            let name = e.strip_prefix('.').unwrap_or(e);
            !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
    if ok {
        Ok(e.to_ascii_lowercase())
    } else {
        Err(invalid(
            "delivery.no_proxy",
            format!("`{e}` is not a host or domain name, an IP address or a CIDR range"),
        ))
    }
}

fn list(v: StringOrList) -> Vec<String> {
    match v {
        StringOrList::One(s) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        StringOrList::Many(v) => v
            .into_iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
    }
}

/// Validated settings for every role.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub api: ApiSettings,
    pub metrics_listen: String,
    pub retry: RetrySchedule,
    pub delivery: DeliverySettings,
    pub router: RouterSettings,
    /// Full reload period of the endpoint registry.
    pub resync_interval: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// On SIGTERM: how long in-flight work may take before the process exits
    /// anyway (what is unfinished is redelivered by the broker).
    pub shutdown_grace: Duration,
    pub circuit: CircuitSettings,
    pub retention: RetentionSettings,
    /// `secrets.encryption_keys`: seals signing secrets at rest when set.
    pub encryption_keys: Option<crate::sealing::Keyring>,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: usize,
}

#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: String,
    pub queue_type: QueueType,
    pub router_prefetch: u16,
    pub router_consumers: usize,
    pub worker_prefetch: u16,
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub listen: String,
    pub admin_key: Option<SecretString>,
    /// Webhooks one tenant (or the tenant-less scope) may have; 0: no limit.
    pub max_endpoints_per_tenant: usize,
    /// Custom headers one webhook may set, and the longest value.
    pub max_custom_headers: usize,
    pub max_header_value_bytes: usize,
    /// How long a portal link (`POST /api/v1/tenants/{id}/portal-link`) opens the portal.
    pub portal_link_ttl: Duration,
    /// How long a portal sign-in lasts.
    pub portal_session_ttl: Duration,
    /// The API's address as browsers reach it (`https://hooks.example.com`),
    /// for portal links; empty: taken from the request's `Host`.
    pub public_url: Option<String>,
    /// How long a connection may take to send a complete request head, from
    /// its accept (or from its first byte after a previous response).
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait, with no request in progress
    /// and no byte in either direction, before it is closed.
    pub idle_timeout: Duration,
    /// Open API connections at most; more wait in the listen backlog.
    pub max_connections: usize,
    /// Believe a proxy's `X-Forwarded-Proto` (portal cookies get `Secure`
    /// when it says `https`). Only behind a proxy that sets it.
    pub trust_forwarded_proto: bool,
}

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub timeout: Duration,
    pub net_policy: NetPolicy,
    /// `delivery.proxy`: every delivery goes through this proxy (except the
    /// hosts in `no_proxy`); none: deliveries connect directly, and the
    /// environment's `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` are ignored.
    pub proxy: Option<ProxyUrl>,
    /// `delivery.no_proxy`: hosts, domains (with their subdomains), IP
    /// addresses or CIDR ranges that bypass `proxy`.
    pub no_proxy: Vec<String>,
    pub max_payload_bytes: usize,
    pub response_excerpt_bytes: usize,
    pub max_in_flight: usize,
    pub batch_size: usize,
    pub batch_wait: Duration,
}

/// How long delivery history is kept.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    /// Deliveries (with their attempts), events and dead-letter actions older
    /// than this are deleted; zero keeps everything.
    pub max_age: Duration,
    pub interval: Duration,
    pub batch_size: usize,
}

/// Endpoint health: the circuit breaker and auto-disable.
#[derive(Debug, Clone)]
pub struct CircuitSettings {
    /// Consecutive failures (connection errors, timeouts, 429, 5xx) that open it.
    pub failure_threshold: u32,
    /// First open period; doubles with each failed probe, up to `max_cooldown`.
    pub cooldown: Duration,
    pub max_cooldown: Duration,
    /// An endpoint failing every attempt this long is disabled.
    pub auto_disable_after: Duration,
}

#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub batch_size: usize,
    pub batch_wait: Duration,
}

fn duration(key: &'static str, s: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        invalid(
            key,
            format!("`{s}` is not a duration ({e}); use e.g. 15s, 500ms"),
        )
    })
}

fn nonzero(key: &'static str, s: &str) -> Result<Duration, ConfigError> {
    match duration(key, s)? {
        d if d.is_zero() => Err(invalid(key, "must be more than 0s")),
        d => Ok(d),
    }
}

fn positive(key: &'static str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        Err(invalid(key, "must be at least 1"))
    } else {
        Ok(n)
    }
}

impl Settings {
    /// Loads defaults, then `file` (or `./hookfleet.toml` when present), then the
    /// process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, Some(Environment::with_prefix("HOOKFLEET")), &[])
    }

    /// Defaults plus explicit overrides (`("delivery.timeout", "2s")`), ignoring the
    /// environment: for tests and embedding.
    pub fn with_overrides(overrides: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::load_with(None, None, overrides)
    }

    fn load_with(
        file: Option<&Path>,
        env: Option<Environment>,
        overrides: &[(&str, &str)],
    ) -> Result<Self, ConfigError> {
        let mut b = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        match file {
            Some(p) => b = b.add_source(File::from(p).format(FileFormat::Toml).required(true)),
            None if env.is_some() => {
                b = b.add_source(
                    File::with_name("hookfleet.toml")
                        .format(FileFormat::Toml)
                        .required(false),
                )
            }
            None => {}
        }
        if let Some(env) = env {
            b = b.add_source(env.prefix_separator("__").separator("__").try_parsing(true));
        }
        for (k, v) in overrides {
            b = b.set_override(*k, *v)?;
        }
        let raw: Raw = b.build()?.try_deserialize()?;
        Self::validate(raw)
    }

    fn validate(raw: Raw) -> Result<Self, ConfigError> {
        let url = |key, u: &str, schemes: &[&str]| -> Result<(), ConfigError> {
            let parsed =
                url::Url::parse(u).map_err(|e| invalid(key, format!("not a URL ({e})")))?;
            if !schemes.contains(&parsed.scheme()) {
                return Err(invalid(key, format!("scheme must be one of {schemes:?}")));
            }
            Ok(())
        };
        url(
            "database.url",
            &raw.database.url,
            &["postgres", "postgresql"],
        )?;
        url("amqp.url", &raw.amqp.url, &["amqp", "amqps"])?;
        let listen = |key, s: &str| -> Result<String, ConfigError> {
            s.parse::<std::net::SocketAddr>()
                .map_err(|e| invalid(key, format!("`{s}` is not host:port ({e})")))?;
            Ok(s.to_owned())
        };
        let networks = list(raw.delivery.allow_networks);
        let no_proxy = list(raw.delivery.no_proxy)
            .iter()
            .map(|e| no_proxy_entry(e))
            .collect::<Result<Vec<_>, _>>()?;
        let allow = networks
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>().map_err(|_| {
                    invalid(
                        "delivery.allow_networks",
                        format!("`{n}` is not a CIDR range such as 127.0.0.0/8"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let admin_key = match raw.api.admin_key {
            Some(k) if k.len() < 16 => {
                return Err(invalid("api.admin_key", "must be at least 16 characters"))
            }
            k => k.map(SecretString),
        };
        if raw.amqp.router_prefetch == 0 {
            return Err(invalid("amqp.router_prefetch", "must be at least 1"));
        }
        if raw.amqp.worker_prefetch == 0 {
            return Err(invalid("amqp.worker_prefetch", "must be at least 1"));
        }
        Ok(Self {
            database: DatabaseSettings {
                url: raw.database.url,
                pool_size: positive("database.pool_size", raw.database.pool_size)?,
            },
            amqp: AmqpSettings {
                url: raw.amqp.url,
                queue_type: raw.amqp.queue_type,
                router_prefetch: raw.amqp.router_prefetch,
                router_consumers: positive("amqp.router_consumers", raw.amqp.router_consumers)?,
                worker_prefetch: raw.amqp.worker_prefetch,
            },
            api: ApiSettings {
                listen: listen("api.listen", &raw.api.listen)?,
                admin_key,
                max_endpoints_per_tenant: raw.api.max_endpoints_per_tenant,
                max_custom_headers: raw.api.max_custom_headers,
                max_header_value_bytes: positive(
                    "api.max_header_value_bytes",
                    raw.api.max_header_value_bytes,
                )?,
                portal_link_ttl: match duration("api.portal_link_ttl", &raw.api.portal_link_ttl)? {
                    d if (60..=7 * 86_400).contains(&d.as_secs()) => d,
                    _ => return Err(invalid("api.portal_link_ttl", "must be from 1m to 7d")),
                },
                portal_session_ttl: duration(
                    "api.portal_session_ttl",
                    &raw.api.portal_session_ttl,
                )?,
                public_url: match raw.api.public_url.as_deref().map(str::trim) {
                    None | Some("") => None,
                    Some(u) => {
                        url("api.public_url", u, &["http", "https"])?;
                        Some(u.trim_end_matches('/').to_owned())
                    }
                },
                header_read_timeout: nonzero(
                    "api.header_read_timeout",
                    &raw.api.header_read_timeout,
                )?,
                idle_timeout: nonzero("api.idle_timeout", &raw.api.idle_timeout)?,
                max_connections: positive("api.max_connections", raw.api.max_connections)?,
                trust_forwarded_proto: raw.api.trust_forwarded_proto,
            },
            metrics_listen: listen("metrics.listen", &raw.metrics.listen)?,
            retry: RetrySchedule::parse(&raw.retry.schedule)
                .map_err(|e| invalid("retry.schedule", e))?,
            delivery: DeliverySettings {
                timeout: duration("delivery.timeout", &raw.delivery.timeout)?,
                net_policy: NetPolicy::new(allow),
                proxy: proxy_url(&raw.delivery.proxy)?,
                no_proxy,
                max_payload_bytes: positive(
                    "delivery.max_payload_bytes",
                    raw.delivery.max_payload_bytes,
                )?,
                response_excerpt_bytes: raw.delivery.response_excerpt_bytes,
                max_in_flight: positive("delivery.max_in_flight", raw.delivery.max_in_flight)?,
                batch_size: positive("delivery.batch_size", raw.delivery.batch_size)?,
                batch_wait: duration("delivery.batch_wait", &raw.delivery.batch_wait)?,
            },
            router: RouterSettings {
                batch_size: positive("router.batch_size", raw.router.batch_size)?,
                batch_wait: duration("router.batch_wait", &raw.router.batch_wait)?,
            },
            resync_interval: duration("registry.resync_interval", &raw.registry.resync_interval)?,
            log_format: raw.log.format,
            log_level: raw.log.level,
            shutdown_grace: duration("shutdown.grace", &raw.shutdown.grace)?,
            encryption_keys: crate::sealing::Keyring::parse(&raw.secrets.encryption_keys)
                .map_err(|e| invalid("secrets.encryption_keys", e))?,
            retention: RetentionSettings {
                max_age: duration("retention.max_age", &raw.retention.max_age)?,
                interval: duration("retention.interval", &raw.retention.interval)?,
                batch_size: positive("retention.batch_size", raw.retention.batch_size)?,
            },
            circuit: CircuitSettings {
                failure_threshold: positive(
                    "circuit.failure_threshold",
                    raw.circuit.failure_threshold,
                )?
                .min(u32::MAX as usize) as u32,
                cooldown: duration("circuit.cooldown", &raw.circuit.cooldown)?,
                max_cooldown: duration("circuit.max_cooldown", &raw.circuit.max_cooldown)?,
                auto_disable_after: duration(
                    "circuit.auto_disable_after",
                    &raw.circuit.auto_disable_after,
                )?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load() {
        let s = Settings::with_overrides(&[]).unwrap();
        assert_eq!(
            s.database.url,
            "postgres://postgres@127.0.0.1:5432/hookfleet"
        );
        assert_eq!(s.amqp.url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(s.api.listen, "127.0.0.1:8080");
        assert_eq!(s.metrics_listen, "127.0.0.1:9464");
        assert_eq!(s.retry.max_attempts(), 8);
        assert_eq!(s.delivery.timeout, Duration::from_secs(15));
        assert!(!s
            .delivery
            .net_policy
            .is_allowed("127.0.0.1".parse().unwrap()));
        assert!(s.api.admin_key.is_none());
        assert!(s.delivery.proxy.is_none());
        assert!(s.delivery.no_proxy.is_empty());
        assert_eq!(s.api.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.api.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.api.max_connections, 512);
    }

    #[test]
    fn proxy_settings() {
        let s = Settings::with_overrides(&[
            ("delivery.proxy", "socks5://user:hunter22@10.0.0.1:1080"),
            (
                "delivery.no_proxy",
                "Internal.Example, .corp, 10.0.0.0/8, ::1, *",
            ),
        ])
        .unwrap();
        let p = s.delivery.proxy.as_ref().unwrap();
        assert_eq!(p.host(), "10.0.0.1");
        assert_eq!(
            s.delivery.no_proxy,
            ["internal.example", ".corp", "10.0.0.0/8", "::1", "*"]
        );
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter22"), "{dbg}");
        assert!(dbg.contains("socks5://user:***@10.0.0.1:1080"), "{dbg}");
        let v6 = Settings::with_overrides(&[("delivery.proxy", "http://[fd00::1]:3128")]).unwrap();
        assert_eq!(v6.delivery.proxy.unwrap().host(), "fd00::1");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("delivery.timeout", "soon", "delivery.timeout"),
            ("retry.schedule", "5s,x", "retry.schedule"),
            (
                "delivery.allow_networks",
                "10.0.0.0/33",
                "delivery.allow_networks",
            ),
            ("amqp.url", "http://x", "amqp.url"),
            ("amqp.queue_type", "fancy", "queue_type"),
            ("metrics.listen", "nowhere", "metrics.listen"),
            ("api.admin_key", "short", "api.admin_key"),
            ("delivery.timeuot", "1s", "timeuot"),
            ("delivery.proxy", "proxy.internal:3128", "delivery.proxy"),
            (
                "delivery.proxy",
                "https://proxy.internal:3128",
                "delivery.proxy",
            ),
            (
                "delivery.proxy",
                "socks5://proxy.internal",
                "delivery.proxy",
            ),
            ("delivery.proxy", "http://p:3128/path", "delivery.proxy"),
            (
                "delivery.no_proxy",
                "a.example, http://b",
                "delivery.no_proxy",
            ),
            ("delivery.no_proxy", "bad host", "delivery.no_proxy"),
            ("api.header_read_timeout", "0s", "api.header_read_timeout"),
            ("api.idle_timeout", "never", "api.idle_timeout"),
            ("api.max_connections", "0", "api.max_connections"),
        ];
        for (k, v, want) in cases {
            let err = Settings::with_overrides(&[(k, v)]).unwrap_err().to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn environment_overrides() {
        let env = Environment::with_prefix("HOOKFLEET").source(Some(
            [
                (
                    "HOOKFLEET__DELIVERY__ALLOW_NETWORKS".to_owned(),
                    "127.0.0.0/8, ::1/128".to_owned(),
                ),
                ("HOOKFLEET__RETRY__SCHEDULE".to_owned(), "1s,2s".to_owned()),
                (
                    "HOOKFLEET__AMQP__WORKER_PREFETCH".to_owned(),
                    "7".to_owned(),
                ),
            ]
            .into_iter()
            .collect(),
        ));
        let s = Settings::load_with(None, Some(env), &[]).unwrap();
        assert!(s
            .delivery
            .net_policy
            .is_allowed("127.0.0.1".parse().unwrap()));
        assert_eq!(s.retry.max_attempts(), 3);
        assert_eq!(s.amqp.worker_prefetch, 7);
        let dbg = format!(
            "{:?}",
            Settings::with_overrides(&[("api.admin_key", "0123456789abcdef0")]).unwrap()
        );
        assert!(!dbg.contains("0123456789abcdef0"));
    }
}
