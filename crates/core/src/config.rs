//! Configuration: built-in defaults (`config.default.toml`, checked in) <
//! `hookfleet.toml` or `--config FILE` < `HOOKFLEET__SECTION__KEY` environment
//! variables. Loaded once and handed to every role as [`Settings`].
//!
//! Each section deserializes straight into its typed settings: the functions of
//! [`de`] parse and bound single values (durations, addresses, URLs, counts of
//! at least 1) as they are read; the one-key sections are flattened by hand.
//! Errors name the key and the environment variable that sets it.
use crate::net::NetPolicy;
use crate::retry::RetrySchedule;
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
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
        key: String,
        env: String,
        reason: String,
    },
    /// A key that is optional in general but that a command needs.
    #[error("{key} (env {env}) must be set: {why}")]
    Missing {
        key: &'static str,
        env: String,
        why: &'static str,
    },
}

impl ConfigError {
    /// `key` is not set, but is needed (`why`).
    pub fn missing(key: &'static str, why: &'static str) -> Self {
        ConfigError::Missing {
            key,
            env: env_var(key),
            why,
        }
    }

    /// `key` has a value that is wrong for `reason`.
    pub fn invalid(key: &str, reason: impl fmt::Display) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            env: env_var(key),
            reason: reason.to_string(),
        }
    }

    /// A loading error, with the key and its variable when it is about one value
    /// (`section.key`); an unknown key or section stays as the loader says it.
    fn from_loader(e: config::ConfigError) -> Self {
        match e {
            config::ConfigError::At {
                error,
                key: Some(key),
                ..
            } if key.contains('.') => Self::invalid(&key, error),
            config::ConfigError::Type {
                unexpected,
                expected,
                key: Some(key),
                ..
            } if key.contains('.') => Self::invalid(
                &key,
                format!("invalid type: {unexpected}, expected {expected}"),
            ),
            e => ConfigError::Load(e),
        }
    }
}

/// The environment variable of a key: `delivery.timeout` → `HOOKFLEET__DELIVERY__TIMEOUT`.
pub fn env_var(key: &str) -> String {
    format!("HOOKFLEET__{}", key.replace('.', "__").to_uppercase())
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

/// Validated settings for every role.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub api: ApiSettings,
    /// `metrics.listen`: `/metrics`, `/healthz`, `/readyz`.
    pub metrics_listen: SocketAddr,
    pub retry: RetrySchedule,
    pub delivery: DeliverySettings,
    pub router: RouterSettings,
    pub worker: WorkerSettings,
    /// Full reload period of the endpoint registry.
    pub resync_interval: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    /// On SIGTERM: how long in-flight work may take before the process exits
    /// anyway (what is unfinished is redelivered by the broker).
    pub shutdown_grace: Duration,
    pub circuit: CircuitSettings,
    pub retention: RetentionSettings,
    /// `secrets.encryption_keys`: seals signing secrets at rest when set; handed
    /// to what seals or opens them (see [`crate::sealing`]).
    pub encryption_keys: Option<crate::sealing::Keyring>,
    /// `[telemetry]`: traces over OTLP (off unless `otlp_endpoint` is set).
    pub telemetry: TelemetrySettings,
}

/// Traces of every hop, exported over OTLP/HTTP (docs/OPERATIONS.md, Tracing).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Where spans go: the OTLP/HTTP traces URL (`/v1/traces` is added to a
    /// bare collector address such as `http://127.0.0.1:4318`). `None` (empty
    /// in the file, the default): tracing is off and costs nothing.
    #[serde(deserialize_with = "de::otlp_endpoint")]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute of every span.
    #[serde(deserialize_with = "de::service_name")]
    pub service_name: String,
    /// The share of new traces kept, 0.0 to 1.0. A trace that arrives with a
    /// `traceparent` follows its parent's sampling decision.
    #[serde(deserialize_with = "de::ratio")]
    pub sample_ratio: f64,
    /// How long one export may take before it is abandoned.
    #[serde(deserialize_with = "de::nonzero_duration")]
    pub export_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    #[serde(deserialize_with = "de::postgres_url")]
    pub url: String,
    #[serde(deserialize_with = "de::at_least_one")]
    pub pool_size: usize,
}

#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// `amqp.url` and `amqp.tls`: where the broker is and how to reach it.
    pub target: AmqpTarget,
    pub queue_type: QueueType,
    pub router_prefetch: u16,
    pub router_consumers: usize,
    pub worker_prefetch: u16,
}

/// Where RabbitMQ is and how to reach it: the addresses of `amqp.url`, tried in
/// order (a cluster's nodes need no load balancer in front), and what the
/// `amqps://` ones trust and present (`amqp.tls`).
#[derive(Clone)]
pub struct AmqpTarget {
    /// At least one `amqp://` or `amqps://` URL.
    pub addresses: Vec<String>,
    pub tls: AmqpTls,
}

impl AmqpTarget {
    /// Addresses as `amqp.url` takes them (one URL, or several separated by
    /// commas), with no TLS settings of its own: an `amqps://` address is
    /// checked against the system's root certificates.
    pub fn parse(urls: &str) -> Result<Self, String> {
        let addresses = de::amqp_addresses(
            urls.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
        )?;
        Ok(Self {
            addresses,
            tls: AmqpTls::default(),
        })
    }

    /// The same addresses with these TLS settings.
    pub fn with_tls(self, tls: AmqpTls) -> Self {
        Self { tls, ..self }
    }

    /// An address as logs show it: scheme, host and port, without the
    /// credentials or the vhost.
    pub fn display_address(url: &str) -> String {
        match url::Url::parse(url) {
            Ok(u) => format!(
                "{}://{}:{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port()
                    .unwrap_or(if u.scheme() == "amqps" { 5671 } else { 5672 })
            ),
            Err(_) => "(unparsable address)".to_owned(),
        }
    }
}

impl fmt::Debug for AmqpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .addresses
            .iter()
            .map(|a| Self::display_address(a))
            .collect();
        f.debug_struct("AmqpTarget")
            .field("addresses", &shown)
            .field("tls", &self.tls)
            .finish()
    }
}

/// `amqp.tls`: what `amqps://` connections trust and present. The files are
/// read and checked when the configuration loads (a restart picks up renewed
/// certificates).
#[derive(Clone, Debug, Default)]
pub struct AmqpTls {
    /// `amqp.tls.ca_file`: the certificates the broker's must chain to,
    /// instead of the system's roots; `None`: the system's roots.
    pub ca_certs: Option<Vec<rustls_pki_types::CertificateDer<'static>>>,
    /// `amqp.tls.cert_file` and `amqp.tls.key_file`: the client certificate
    /// presented to a broker that asks for one.
    pub client_cert: Option<ClientCert>,
    /// `amqp.tls.server_name`: the name the broker's certificate must carry,
    /// instead of each address's host.
    pub server_name: Option<String>,
}

/// A client certificate chain and its private key (never printed).
#[derive(Clone)]
pub struct ClientCert {
    pub chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    pub key: std::sync::Arc<rustls_pki_types::PrivateKeyDer<'static>>,
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientCert({} certificates, key ***)", self.chain.len())
    }
}

impl AmqpTls {
    /// Reads and checks the files of `amqp.tls.*` (an empty path is unset).
    /// Errors name the key.
    pub fn from_files(
        ca_file: &str,
        cert_file: &str,
        key_file: &str,
        server_name: &str,
    ) -> Result<Self, ConfigError> {
        use rustls_pki_types::pem::PemObject as _;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs = |key: &str, path: &str| -> Result<Vec<CertificateDer<'static>>, ConfigError> {
            let pem = read_file(key, path)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    ConfigError::invalid(key, format!("{path}: not PEM certificates ({e})"))
                })?;
            if certs.is_empty() {
                return Err(ConfigError::invalid(
                    key,
                    format!("{path}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
                ));
            }
            Ok(certs)
        };
        let ca_certs = match ca_file.trim() {
            "" => None,
            path => Some(certs("amqp.tls.ca_file", path)?),
        };
        let client_cert =
            match (cert_file.trim(), key_file.trim()) {
                ("", "") => None,
                (_, "") => return Err(ConfigError::invalid(
                    "amqp.tls.key_file",
                    "must be set when amqp.tls.cert_file is (the client certificate's private key)",
                )),
                ("", _) => {
                    return Err(ConfigError::invalid(
                        "amqp.tls.cert_file",
                        "must be set when amqp.tls.key_file is (the client certificate, PEM)",
                    ))
                }
                (cert, key) => {
                    let chain = certs("amqp.tls.cert_file", cert)?;
                    let pem = read_file("amqp.tls.key_file", key)?;
                    let key_der = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                        ConfigError::invalid(
                            "amqp.tls.key_file",
                            format!("{key}: no PEM private key (PKCS#8, PKCS#1 or SEC1) ({e})"),
                        )
                    })?;
                    Some(ClientCert {
                        chain,
                        key: std::sync::Arc::new(key_der),
                    })
                }
            };
        let server_name = match server_name.trim() {
            "" => None,
            name => {
                rustls_pki_types::ServerName::try_from(name).map_err(|e| {
                    ConfigError::invalid(
                        "amqp.tls.server_name",
                        format!("`{name}` is not a DNS name or an IP address ({e})"),
                    )
                })?;
                Some(name.to_owned())
            }
        };
        Ok(Self {
            ca_certs,
            client_cert,
            server_name,
        })
    }

    /// Whether any `amqp.tls.*` key is set.
    pub fn is_set(&self) -> bool {
        self.ca_certs.is_some() || self.client_cert.is_some() || self.server_name.is_some()
    }
}

fn read_file(key: &str, path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::invalid(key, format!("cannot read {path}: {e}")))
}

/// `[amqp]` as laid out in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmqpFile {
    #[serde(deserialize_with = "de::amqp_urls")]
    url: Vec<String>,
    queue_type: QueueType,
    #[serde(deserialize_with = "de::at_least_one")]
    router_prefetch: u16,
    #[serde(deserialize_with = "de::at_least_one")]
    router_consumers: usize,
    #[serde(deserialize_with = "de::at_least_one")]
    worker_prefetch: u16,
    tls: TlsFile,
}

/// `[amqp.tls]` as laid out in the file: paths, empty when unset.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    ca_file: String,
    cert_file: String,
    key_file: String,
    server_name: String,
}

impl AmqpFile {
    fn into_settings(self) -> Result<AmqpSettings, ConfigError> {
        let t = self.tls;
        let tls = AmqpTls::from_files(&t.ca_file, &t.cert_file, &t.key_file, &t.server_name)?;
        // A TLS setting that no address uses would be silently ignored.
        let any_tls = self
            .url
            .iter()
            .any(|u| url::Url::parse(u).is_ok_and(|u| u.scheme() == "amqps"));
        if tls.is_set() && !any_tls {
            let key = if tls.ca_certs.is_some() {
                "amqp.tls.ca_file"
            } else if tls.client_cert.is_some() {
                "amqp.tls.cert_file"
            } else {
                "amqp.tls.server_name"
            };
            return Err(ConfigError::invalid(
                key,
                "is set, but no address of amqp.url is amqps:// (TLS)",
            ));
        }
        Ok(AmqpSettings {
            target: AmqpTarget {
                addresses: self.url,
                tls,
            },
            queue_type: self.queue_type,
            router_prefetch: self.router_prefetch,
            router_consumers: self.router_consumers,
            worker_prefetch: self.worker_prefetch,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    #[serde(deserialize_with = "de::socket_addr")]
    pub listen: SocketAddr,
    /// The admin key that signs new portal links: after loading, the first
    /// of [`ApiSettings::admin_keys`] (`api.admin_key` in a file or the
    /// environment is a one-key `admin_keys`). At least 16 characters.
    #[serde(default, deserialize_with = "de::admin_key")]
    pub admin_key: Option<SecretString>,
    /// Every valid admin key (each at least 16 characters); the first signs
    /// new portal links, all open the links they signed. A list in TOML, or
    /// comma separated (`HOOKFLEET__API__ADMIN_KEYS="new,old"`). Set it or
    /// `admin_key`, not both.
    #[serde(default, deserialize_with = "de::admin_keys")]
    pub admin_keys: Vec<SecretString>,
    /// The keys of portal sessions (each at least 16 characters): the first
    /// signs new sessions, every one verifies. Unset: derived from the first
    /// admin key, and every session ends when that key is rotated.
    #[serde(default, deserialize_with = "de::admin_keys")]
    pub session_keys: Vec<SecretString>,
    /// Webhooks one tenant (or the tenant-less scope) may have; 0: no limit.
    pub max_endpoints_per_tenant: usize,
    /// Custom headers one webhook may set, and the longest value.
    pub max_custom_headers: usize,
    #[serde(deserialize_with = "de::at_least_one")]
    pub max_header_value_bytes: usize,
    /// How long a portal link (`POST /api/v1/tenants/{id}/portal-link`) opens the
    /// portal: within [`crate::bounds::PORTAL_LINK_TTL_SECS`].
    #[serde(deserialize_with = "de::portal_link_ttl")]
    pub portal_link_ttl: Duration,
    /// How long a portal sign-in lasts.
    #[serde(deserialize_with = "de::duration")]
    pub portal_session_ttl: Duration,
    /// The API's address as browsers reach it (`https://hooks.example.com`, no
    /// trailing slash), for portal links; empty: taken from the request's `Host`.
    #[serde(default, deserialize_with = "de::public_url")]
    pub public_url: Option<String>,
    /// How long a connection may take to send a complete request head, from
    /// its accept (or from its first byte after a previous response).
    #[serde(deserialize_with = "de::nonzero_duration")]
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait, with no request in progress
    /// and no byte in either direction, before it is closed.
    #[serde(deserialize_with = "de::nonzero_duration")]
    pub idle_timeout: Duration,
    /// Open API connections at most; more wait in the listen backlog.
    #[serde(deserialize_with = "de::at_least_one")]
    pub max_connections: usize,
    /// Believe a proxy's `X-Forwarded-Proto` (portal cookies get `Secure`
    /// when it says `https`). Only behind a proxy that sets it.
    pub trust_forwarded_proto: bool,
}

impl ApiSettings {
    /// `admin_key` and `admin_keys` as one list (the first signs), and
    /// `admin_key` as that first key; both set is an error naming both.
    fn with_admin_keys(mut self) -> Result<Self, ConfigError> {
        match (self.admin_key.take(), self.admin_keys.is_empty()) {
            (Some(_), false) => {
                return Err(ConfigError::invalid(
                    "api.admin_keys",
                    format!(
                        "set api.admin_keys or api.admin_key (env {}), not both: \
                         put every admin key in api.admin_keys, the one that signs new portal links first",
                        env_var("api.admin_key")
                    ),
                ))
            }
            (Some(k), true) => self.admin_keys = vec![k],
            (None, _) => {}
        }
        self.admin_key = self.admin_keys.first().cloned();
        Ok(self)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySettings {
    #[serde(deserialize_with = "de::duration")]
    pub timeout: Duration,
    /// `delivery.allow_networks`: CIDR ranges allowed although private or loopback.
    #[serde(rename = "allow_networks", deserialize_with = "de::net_policy")]
    pub net_policy: NetPolicy,
    /// `delivery.proxy`: every delivery goes through this proxy (except the
    /// hosts in `no_proxy`); none: deliveries connect directly, and the
    /// environment's `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` are ignored.
    #[serde(deserialize_with = "de::proxy")]
    pub proxy: Option<ProxyUrl>,
    /// `delivery.no_proxy`: hosts, domains (with their subdomains), IP
    /// addresses or CIDR ranges that bypass `proxy`.
    #[serde(deserialize_with = "de::no_proxy")]
    pub no_proxy: Vec<String>,
    #[serde(deserialize_with = "de::at_least_one")]
    pub max_payload_bytes: usize,
    pub response_excerpt_bytes: usize,
    #[serde(deserialize_with = "de::at_least_one")]
    pub max_in_flight: usize,
    #[serde(deserialize_with = "de::at_least_one")]
    pub batch_size: usize,
    #[serde(deserialize_with = "de::duration")]
    pub batch_wait: Duration,
}

/// How long delivery history is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Deliveries (with their attempts), events and dead-letter actions older
    /// than this are deleted; zero keeps everything.
    #[serde(deserialize_with = "de::duration")]
    pub max_age: Duration,
    #[serde(deserialize_with = "de::duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "de::at_least_one")]
    pub batch_size: usize,
}

/// Endpoint health: the circuit breaker and auto-disable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitSettings {
    /// Consecutive failures (connection errors, timeouts, 429, 5xx) that open it.
    #[serde(deserialize_with = "de::at_least_one")]
    pub failure_threshold: u32,
    /// First open period; doubles with each failed probe, up to `max_cooldown`.
    #[serde(deserialize_with = "de::duration")]
    pub cooldown: Duration,
    #[serde(deserialize_with = "de::duration")]
    pub max_cooldown: Duration,
    /// An endpoint failing every attempt this long is disabled.
    #[serde(deserialize_with = "de::duration")]
    pub auto_disable_after: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSettings {
    #[serde(deserialize_with = "de::at_least_one")]
    pub batch_size: usize,
    #[serde(deserialize_with = "de::duration")]
    pub batch_wait: Duration,
}

/// How workers share the endpoint queues (docs/ARCHITECTURE.md §21).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Workers that consume each endpoint's queue, however many run.
    #[serde(deserialize_with = "de::at_least_one")]
    pub consumers_per_endpoint: usize,
    /// How often a worker renews its membership in `worker_members`.
    #[serde(deserialize_with = "de::nonzero_duration")]
    pub heartbeat: Duration,
    /// A worker not heard from for this long is gone: the others take its
    /// endpoints. More than twice `heartbeat`. A worker whose database
    /// connection closed (its process died) is gone sooner, after 1.5
    /// heartbeats (docs/ARCHITECTURE.md §21).
    #[serde(deserialize_with = "de::nonzero_duration")]
    pub member_timeout: Duration,
}

/// The configuration as laid out in the file. The one-key sections are
/// flattened into [`Settings`] (`metrics.listen` is `Settings::metrics_listen`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Layout {
    database: DatabaseSettings,
    amqp: AmqpFile,
    api: ApiSettings,
    metrics: Metrics,
    retry: Retry,
    delivery: DeliverySettings,
    router: RouterSettings,
    worker: WorkerSettings,
    registry: Registry,
    log: Log,
    shutdown: Shutdown,
    circuit: CircuitSettings,
    retention: RetentionSettings,
    secrets: Secrets,
    telemetry: TelemetrySettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metrics {
    #[serde(deserialize_with = "de::socket_addr")]
    listen: SocketAddr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Retry {
    #[serde(deserialize_with = "de::retry_schedule")]
    schedule: RetrySchedule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registry {
    #[serde(deserialize_with = "de::duration")]
    resync_interval: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Log {
    format: LogFormat,
    level: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Shutdown {
    #[serde(deserialize_with = "de::duration")]
    grace: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    #[serde(deserialize_with = "de::keyring")]
    encryption_keys: Option<crate::sealing::Keyring>,
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
        let f: Layout = b
            .build()?
            .try_deserialize()
            .map_err(ConfigError::from_loader)?;
        if f.worker.member_timeout < f.worker.heartbeat * 2 {
            return Err(ConfigError::invalid(
                "worker.member_timeout",
                "must be at least twice worker.heartbeat (a worker would be counted gone between two of its heartbeats)",
            ));
        }
        Ok(Self {
            database: f.database,
            amqp: f.amqp.into_settings()?,
            api: f.api.with_admin_keys()?,
            metrics_listen: f.metrics.listen,
            retry: f.retry.schedule,
            delivery: f.delivery,
            router: f.router,
            worker: f.worker,
            resync_interval: f.registry.resync_interval,
            log_format: f.log.format,
            log_level: f.log.level,
            shutdown_grace: f.shutdown.grace,
            circuit: f.circuit,
            retention: f.retention,
            encryption_keys: f.secrets.encryption_keys,
            telemetry: f.telemetry,
        })
    }
}

/// Deserializers of single values: each parses and bounds one key's value, and
/// says what is wrong in words (the loader adds the key).
mod de {
    use super::{ProxyUrl, SecretString};
    use crate::net::NetPolicy;
    use crate::retry::RetrySchedule;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer};
    use std::net::SocketAddr;
    use std::time::Duration;

    /// A string, or (in TOML) a list of strings: `a, b` or `["a", "b"]`.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StringOrList {
        One(String),
        Many(Vec<String>),
    }

    /// The entries of a list, trimmed, empty ones dropped.
    fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let parts = match StringOrList::deserialize(d)? {
            StringOrList::One(s) => s.split(',').map(str::to_owned).collect(),
            StringOrList::Many(v) => v,
        };
        Ok(parts
            .into_iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect())
    }

    /// A value parsed from its text by `parse`, whose error is the reason.
    fn parsed<'de, D, T, E>(d: D, parse: impl FnOnce(&str) -> Result<T, E>) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        E: std::fmt::Display,
    {
        let s = String::deserialize(d)?;
        parse(&s).map_err(D::Error::custom)
    }

    fn parse_duration(s: &str) -> Result<Duration, String> {
        humantime::parse_duration(s.trim())
            .map_err(|e| format!("`{s}` is not a duration ({e}); use e.g. 15s, 500ms"))
    }

    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parsed(d, parse_duration)
    }

    pub fn nonzero_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parsed(d, |s| match parse_duration(s)? {
            d if d.is_zero() => Err("must be more than 0s".to_owned()),
            d => Ok(d),
        })
    }

    pub fn portal_link_ttl<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parsed(d, |s| match parse_duration(s)? {
            d if crate::bounds::portal_link_ttl_ok(d) => Ok(d),
            _ => Err("must be from 1m to 7d".to_owned()),
        })
    }

    /// A count that must be at least 1.
    pub fn at_least_one<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default + PartialEq,
    {
        let n = T::deserialize(d)?;
        if n == T::default() {
            return Err(D::Error::custom("must be at least 1"));
        }
        Ok(n)
    }

    pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        parsed(d, |s| {
            s.parse::<SocketAddr>()
                .map_err(|e| format!("`{s}` is not host:port ({e})"))
        })
    }

    fn url_with(u: &str, schemes: &[&str]) -> Result<url::Url, String> {
        let parsed = url::Url::parse(u).map_err(|e| format!("not a URL ({e})"))?;
        if !schemes.contains(&parsed.scheme()) {
            return Err(format!("scheme must be one of {schemes:?}"));
        }
        Ok(parsed)
    }

    /// `telemetry.otlp_endpoint`: empty is off; an http(s) URL, to which
    /// `/v1/traces` is added unless its path already ends so.
    pub fn otlp_endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        parsed(d, |s| match s.trim() {
            "" => Ok(None),
            u => {
                let url = url_with(u, &["http", "https"])?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err("must name a host, e.g. http://127.0.0.1:4318".to_owned());
                }
                let u = u.trim_end_matches('/');
                Ok(Some(
                    if url.path().trim_end_matches('/').ends_with("/v1/traces") {
                        u.to_owned()
                    } else {
                        format!("{u}/v1/traces")
                    },
                ))
            }
        })
    }

    /// `telemetry.service_name`: not empty.
    pub fn service_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        parsed(d, |s| match s.trim() {
            "" => Err("must not be empty"),
            n => Ok(n.to_owned()),
        })
    }

    /// A ratio from 0.0 to 1.0 (`telemetry.sample_ratio`).
    pub fn ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let r = f64::deserialize(d)?;
        if !(0.0..=1.0).contains(&r) {
            return Err(D::Error::custom(format!("{r} is not from 0.0 to 1.0")));
        }
        Ok(r)
    }

    pub fn postgres_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        parsed(d, |s| {
            url_with(s, &["postgres", "postgresql"]).map(|_| s.to_owned())
        })
    }

    /// `amqp.url`: one URL, or several (comma separated or a TOML list).
    pub fn amqp_urls<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        amqp_addresses(list(d)?).map_err(D::Error::custom)
    }

    pub(super) fn amqp_addresses(urls: Vec<String>) -> Result<Vec<String>, String> {
        if urls.is_empty() {
            return Err("names no address; use e.g. amqp://guest:guest@127.0.0.1:5672/%2f".into());
        }
        let many = urls.len() > 1;
        for (i, u) in urls.iter().enumerate() {
            url_with(u, &["amqp", "amqps"]).map_err(|e| {
                if many {
                    format!("address {} of {}: {e}", i + 1, urls.len())
                } else {
                    e
                }
            })?;
        }
        Ok(urls)
    }

    /// `api.public_url`: empty is none; the trailing slash is dropped.
    pub fn public_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        parsed(d, |s| match s.trim() {
            "" => Ok(None),
            u => url_with(u, &["http", "https"]).map(|_| Some(u.trim_end_matches('/').to_owned())),
        })
    }

    /// `api.admin_keys`, `api.session_keys`: a list of keys of at least 16
    /// characters each (a TOML list, or comma separated).
    pub fn admin_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
        let keys = list(d)?;
        let n = keys.len();
        keys.into_iter()
            .enumerate()
            .map(|(i, k)| {
                if k.len() < 16 {
                    Err(D::Error::custom(format!(
                        "key {} of {n} must be at least 16 characters",
                        i + 1
                    )))
                } else {
                    Ok(SecretString(k))
                }
            })
            .collect()
    }

    pub fn admin_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        parsed(d, |k| {
            if k.len() < 16 {
                Err("must be at least 16 characters")
            } else {
                Ok(Some(SecretString(k.to_owned())))
            }
        })
    }

    pub fn retry_schedule<'de, D: Deserializer<'de>>(d: D) -> Result<RetrySchedule, D::Error> {
        parsed(d, RetrySchedule::parse)
    }

    pub fn keyring<'de, D>(d: D) -> Result<Option<crate::sealing::Keyring>, D::Error>
    where
        D: Deserializer<'de>,
    {
        parsed(d, crate::sealing::Keyring::parse)
    }

    /// `delivery.allow_networks`: CIDR ranges.
    pub fn net_policy<'de, D: Deserializer<'de>>(d: D) -> Result<NetPolicy, D::Error> {
        let allow = list(d)?
            .iter()
            .map(|n| {
                n.parse::<ipnet::IpNet>().map_err(|_| {
                    D::Error::custom(format!("`{n}` is not a CIDR range such as 127.0.0.0/8"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetPolicy::new(allow))
    }

    /// `delivery.no_proxy`: entries as [`no_proxy_entry`] accepts them, lowercased.
    pub fn no_proxy<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        list(d)?
            .iter()
            .map(|e| no_proxy_entry(e).map_err(D::Error::custom))
            .collect()
    }

    /// One `delivery.no_proxy` entry: `*`, an IP address, a CIDR range, or a
    /// host/domain name (a leading dot is allowed).
    fn no_proxy_entry(e: &str) -> Result<String, String> {
        let ok = e == "*"
            || e.parse::<std::net::IpAddr>().is_ok()
            || e.parse::<ipnet::IpNet>().is_ok()
            || {
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
            Err(format!(
                "`{e}` is not a host or domain name, an IP address or a CIDR range"
            ))
        }
    }

    /// `delivery.proxy` (empty: none).
    pub fn proxy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProxyUrl>, D::Error> {
        parsed(d, proxy_url)
    }

    fn proxy_url(s: &str) -> Result<Option<ProxyUrl>, String> {
        const SCHEMES: [&str; 3] = ["http", "socks5", "socks5h"];
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let u = url::Url::parse(s)
            .map_err(|e| format!("not a URL ({e}); use e.g. http://proxy.internal:3128"))?;
        if !SCHEMES.contains(&u.scheme()) {
            return Err(format!(
                "scheme `{}` is not supported; use one of {SCHEMES:?}",
                u.scheme()
            ));
        }
        if u.host_str().is_none_or(str::is_empty) || u.port_or_known_default().is_none() {
            return Err("must name a host and a port, e.g. http://proxy.internal:3128".into());
        }
        if !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some() {
            return Err(
                "must be only scheme://[user:password@]host:port, without a path or query".into(),
            );
        }
        Ok(Some(ProxyUrl(u)))
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
        assert_eq!(
            s.amqp.target.addresses,
            ["amqp://guest:guest@127.0.0.1:5672/%2f"]
        );
        assert!(!s.amqp.target.tls.is_set());
        assert_eq!(s.api.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.metrics_listen.to_string(), "127.0.0.1:9464");
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
            (
                "telemetry.otlp_endpoint",
                "grpc://c:4317",
                "telemetry.otlp_endpoint",
            ),
            (
                "telemetry.otlp_endpoint",
                "collector:4318",
                "telemetry.otlp_endpoint",
            ),
            ("telemetry.sample_ratio", "1.5", "telemetry.sample_ratio"),
            ("telemetry.sample_ratio", "all", "telemetry.sample_ratio"),
            ("telemetry.service_name", " ", "telemetry.service_name"),
            ("telemetry.export_timeout", "0s", "telemetry.export_timeout"),
        ];
        for (k, v, want) in cases {
            let err = Settings::with_overrides(&[(k, v)]).unwrap_err().to_string();
            assert!(err.contains(want), "{k}={v}: {err}");
        }
    }

    #[test]
    fn telemetry_is_off_by_default_and_takes_a_collector_address() {
        let t = Settings::with_overrides(&[]).unwrap().telemetry;
        assert_eq!(t.otlp_endpoint, None);
        assert_eq!(t.service_name, "hookfleet");
        assert_eq!(t.sample_ratio, 1.0);
        for (given, url) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("https://c/otlp/v1/traces", "https://c/otlp/v1/traces"),
        ] {
            let s = Settings::with_overrides(&[
                ("telemetry.otlp_endpoint", given),
                ("telemetry.sample_ratio", "0.25"),
            ])
            .unwrap();
            assert_eq!(s.telemetry.otlp_endpoint.as_deref(), Some(url), "{given}");
            assert_eq!(s.telemetry.sample_ratio, 0.25);
        }
    }

    #[test]
    fn errors_name_the_environment_variable_too() {
        for (k, v, env, why) in [
            (
                "delivery.timeout",
                "soon",
                "HOOKFLEET__DELIVERY__TIMEOUT",
                "not a duration",
            ),
            (
                "api.max_connections",
                "0",
                "HOOKFLEET__API__MAX_CONNECTIONS",
                "at least 1",
            ),
            (
                "amqp.worker_prefetch",
                "x",
                "HOOKFLEET__AMQP__WORKER_PREFETCH",
                "integer",
            ),
            (
                "api.portal_link_ttl",
                "8d",
                "HOOKFLEET__API__PORTAL_LINK_TTL",
                "1m to 7d",
            ),
            (
                "api.public_url",
                "ftp://x",
                "HOOKFLEET__API__PUBLIC_URL",
                "scheme",
            ),
        ] {
            let err = Settings::with_overrides(&[(k, v)]).unwrap_err().to_string();
            assert!(
                err.contains(k) && err.contains(env) && err.contains(why),
                "{k}={v}: {err}"
            );
        }
        let s =
            Settings::with_overrides(&[("api.public_url", " https://hooks.example/ ")]).unwrap();
        assert_eq!(s.api.public_url.as_deref(), Some("https://hooks.example"));
    }

    #[test]
    fn amqp_url_takes_several_addresses() {
        let a = "amqp://guest:guest@10.0.0.1:5672/%2f";
        let b = "amqps://guest:guest@10.0.0.2/%2f";
        let s = Settings::with_overrides(&[("amqp.url", &format!(" {a} ,{b}, "))]).unwrap();
        assert_eq!(s.amqp.target.addresses, [a, b]);
        // Logs and Debug show where, never the password.
        let dbg = format!("{:?}", s.amqp);
        assert!(dbg.contains("amqps://10.0.0.2:5671"), "{dbg}");
        assert!(!dbg.contains("guest:guest"), "{dbg}");
        let err = Settings::with_overrides(&[("amqp.url", &format!("{a}, http://x"))])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("amqp.url") && err.contains("address 2 of 2"),
            "{err}"
        );
        let err = Settings::with_overrides(&[("amqp.url", " , ")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("amqp.url") && err.contains("no address"),
            "{err}"
        );
        assert_eq!(
            AmqpTarget::parse(&format!("{a},{b}")).unwrap().addresses,
            [a, b]
        );
    }

    /// A file under the system's temp directory, removed when dropped.
    struct TempFile(std::path::PathBuf);
    impl TempFile {
        fn new(name: &str, contents: &str) -> Self {
            let p =
                std::env::temp_dir().join(format!("hookfleet-config-{}-{name}", ulid::Ulid::new()));
            std::fs::write(&p, contents).unwrap();
            TempFile(p)
        }
        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn amqp_tls_files_are_read_and_errors_name_the_key() {
        // PEM framing is what loading checks; the certificates themselves are
        // checked by the TLS handshake (tests/e2e/broker_tls.rs).
        let cert = TempFile::new(
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        );
        let key = TempFile::new(
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
        );
        let junk = TempFile::new("junk.pem", "not a certificate");
        let tls_url = ("amqp.url", "amqps://guest:guest@broker.internal/%2f");
        let s = Settings::with_overrides(&[
            tls_url,
            ("amqp.tls.ca_file", cert.path()),
            ("amqp.tls.cert_file", cert.path()),
            ("amqp.tls.key_file", key.path()),
            ("amqp.tls.server_name", "rabbitmq.internal"),
        ])
        .unwrap();
        let tls = &s.amqp.target.tls;
        assert_eq!(tls.ca_certs.as_ref().map(Vec::len), Some(1));
        assert_eq!(tls.client_cert.as_ref().map(|c| c.chain.len()), Some(1));
        assert_eq!(tls.server_name.as_deref(), Some("rabbitmq.internal"));
        assert!(format!("{s:?}").contains("key ***"));

        // (overrides, the key the error names, the reason)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: [Case; 7] = [
            (
                &[("amqp.tls.ca_file", "/nonexistent/ca.pem")],
                "amqp.tls.ca_file",
                "cannot read /nonexistent/ca.pem",
            ),
            (
                &[("amqp.tls.ca_file", junk.path())],
                "amqp.tls.ca_file",
                "no PEM certificate",
            ),
            (
                &[("amqp.tls.cert_file", cert.path())],
                "amqp.tls.key_file",
                "must be set",
            ),
            (
                &[("amqp.tls.key_file", key.path())],
                "amqp.tls.cert_file",
                "must be set",
            ),
            (
                &[
                    ("amqp.tls.cert_file", cert.path()),
                    ("amqp.tls.key_file", junk.path()),
                ],
                "amqp.tls.key_file",
                "no PEM private key",
            ),
            (
                &[("amqp.tls.server_name", "not a name!")],
                "amqp.tls.server_name",
                "not a DNS name",
            ),
            (
                &[
                    ("amqp.url", "amqp://guest:guest@x/%2f"),
                    ("amqp.tls.ca_file", cert.path()),
                ],
                "amqp.tls.ca_file",
                "no address of amqp.url is amqps://",
            ),
        ];
        for (overrides, key, why) in cases {
            let mut o = vec![tls_url];
            o.extend_from_slice(overrides);
            let err = Settings::with_overrides(&o).unwrap_err().to_string();
            assert!(
                err.contains(key) && err.contains(&env_var(key)) && err.contains(why),
                "{overrides:?}: {err}"
            );
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

    #[test]
    fn admin_keys_from_a_list_one_key_or_the_environment() {
        let keys = |s: &Settings| -> Vec<String> {
            s.api
                .admin_keys
                .iter()
                .map(|k| k.expose().to_owned())
                .collect()
        };
        // `admin_key` alone: a one-key list, and the signing key.
        let s = Settings::with_overrides(&[("api.admin_key", "old-admin-key-0123")]).unwrap();
        assert_eq!(keys(&s), ["old-admin-key-0123"]);
        assert_eq!(
            s.api.admin_key.as_ref().unwrap().expose(),
            "old-admin-key-0123"
        );
        // A comma-separated list (the environment's form): the first signs.
        let env = Environment::with_prefix("HOOKFLEET").source(Some(
            [(
                "HOOKFLEET__API__ADMIN_KEYS".to_owned(),
                "new-admin-key-0123, old-admin-key-0123".to_owned(),
            )]
            .into_iter()
            .collect(),
        ));
        let s = Settings::load_with(None, Some(env), &[]).unwrap();
        assert_eq!(keys(&s), ["new-admin-key-0123", "old-admin-key-0123"]);
        assert_eq!(
            s.api.admin_key.as_ref().unwrap().expose(),
            "new-admin-key-0123"
        );
        assert!(s.api.session_keys.is_empty());
        // Both set: an error naming both keys.
        let err = Settings::with_overrides(&[
            ("api.admin_key", "old-admin-key-0123"),
            ("api.admin_keys", "new-admin-key-0123"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("api.admin_keys") && err.contains("HOOKFLEET__API__ADMIN_KEY"),
            "{err}"
        );
        // A short key in a list names its place.
        let err = Settings::with_overrides(&[("api.session_keys", "long-enough-key-0123,short")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api.session_keys") && err.contains("key 2 of 2"),
            "{err}"
        );
    }
}
