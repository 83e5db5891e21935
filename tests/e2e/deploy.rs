//! Static checks of the deployment files under deploy/ (no services needed):
//! every YAML file parses, and the roles, ports, probes, names and mounts they
//! use are the ones the binary and the other files have.
use serde::Deserialize;
use serde_norway::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
/// The binary's server roles (the subcommand is the role).
const ROLES: &[&str] = &["migrate", "router", "worker", "api", "outbox-relay"];
/// `/metrics`, `/healthz`, `/readyz` of every process.
const METRICS_PORT: u64 = 9464;
/// The api's REST API.
const API_PORT: u64 = 8080;
/// The uid of the image's `hookfleet` user (deploy/Dockerfile).
const IMAGE_UID: u64 = 10001;

// ---- helpers ---------------------------------------------------------------

fn path(rel: &str) -> PathBuf {
    Path::new(DEPLOY).join(rel)
}

fn read(rel: &str) -> String {
    let p = path(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Every YAML document of `text`, empty ones (a stray `---`) left out.
fn documents(name: &str, body: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(body)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{name} is not valid YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of a single-document file under deploy/.
fn document(rel: &str) -> Value {
    let mut docs = documents(rel, &read(rel));
    assert_eq!(docs.len(), 1, "{rel} should hold exactly one YAML document");
    docs.remove(0)
}

/// The `.yml`/`.yaml` files under `dir`, recursively.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries {
        let p = entry.expect("a directory entry").path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
}

/// The items of a YAML sequence; nothing when `v` is missing or not a sequence.
fn items<'a>(v: &'a Value) -> impl Iterator<Item = &'a Value> + 'a {
    v.as_sequence().into_iter().flatten()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn name(obj: &Value) -> &str {
    text(&obj["metadata"]["name"])
}

/// Every object of every manifest in deploy/k8s/.
fn k8s_objects() -> Vec<Value> {
    let mut files = Vec::new();
    yaml_files(&path("k8s"), &mut files);
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/k8s/");
    files
        .iter()
        .flat_map(|f| {
            let name = f.display().to_string();
            let body = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("reading {name}: {e}"));
            documents(&name, &body)
        })
        .collect()
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| text(&o["kind"]) == kind).collect()
}

fn named<'a>(objs: &'a [Value], kind: &str, wanted: &str) -> &'a Value {
    of_kind(objs, kind)
        .into_iter()
        .find(|o| name(o) == wanted)
        .unwrap_or_else(|| panic!("deploy/k8s/ has no {kind} named {wanted}"))
}

/// The objects that run pods: their pod spec is `spec.template.spec`.
fn workloads(objs: &[Value]) -> Vec<&Value> {
    objs.iter()
        .filter(|o| matches!(text(&o["kind"]), "Deployment" | "Job"))
        .collect()
}

fn containers(workload: &Value) -> Vec<&Value> {
    items(&workload["spec"]["template"]["spec"]["containers"]).collect()
}

/// The role a container runs. The image's entrypoint is the binary, so it is
/// the first argument; a `command` replaces the entrypoint and must then start
/// with the binary.
fn role(container: &Value) -> String {
    let mut words: Vec<&str> = items(&container["command"])
        .chain(items(&container["args"]))
        .filter_map(Value::as_str)
        .collect();
    if words.first().is_some_and(|w| w.ends_with("hookfleet")) {
        words.remove(0);
    }
    words.first().map(|w| (*w).to_owned()).unwrap_or_default()
}

/// A container port given by number or by name, as a number.
fn container_port(container: &Value, port: &Value) -> Option<u64> {
    if let Some(n) = port.as_u64() {
        return Some(n);
    }
    let wanted = port.as_str()?;
    items(&container["ports"]).find(|p| p["name"].as_str() == Some(wanted))?["containerPort"]
        .as_u64()
}

/// Whether a label selector (a mapping) is non-empty and matches `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_mapping().is_some_and(|m| {
        !m.is_empty()
            && m.iter()
                .all(|(k, v)| k.as_str().is_some_and(|k| labels[k] == *v))
    })
}

/// A duration as hookfleet's configuration writes it: `25s`, `500ms`, `2m`, `1h`.
fn parse_duration(s: &str) -> Duration {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("`{s}` is not a duration such as 25s"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => panic!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)"),
    }
}

/// Seconds a container's preStop hook sleeps (`exec: sleep N` or `sleep:`).
fn pre_stop_sleep(container: &Value) -> u64 {
    let hook = &container["lifecycle"]["preStop"];
    if let Some(n) = hook["sleep"]["seconds"].as_u64() {
        return n;
    }
    let words: Vec<&str> = items(&hook["exec"]["command"])
        .filter_map(Value::as_str)
        .collect();
    match words.as_slice() {
        ["sleep", n] => n
            .parse()
            .unwrap_or_else(|_| panic!("preStop `sleep {n}`: not a whole number of seconds")),
        _ => 0,
    }
}

fn compose() -> Value {
    document("docker-compose.yml")
}

/// A key of a compose service, looked up in the service and then in what it
/// merges with `<<:` (whether or not the parser applied the merge itself).
fn field<'a>(service: &'a Value, key: &str) -> &'a Value {
    let own = &service[key];
    if own.is_null() {
        &service["<<"][key]
    } else {
        own
    }
}

/// The compose services that run the hookfleet image, with their names.
fn hookfleet_services(compose: &Value) -> Vec<(String, &Value)> {
    let services = compose["services"]
        .as_mapping()
        .expect("docker-compose.yml: `services` should be a mapping");
    services
        .iter()
        .filter(|(_, s)| text(field(s, "image")).starts_with("hookfleet"))
        .map(|(k, s)| (text(k).to_owned(), s))
        .collect()
}

/// (source, target) of a service's short-syntax bind mounts (`./src:/dst[:ro]`).
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    items(&service["volumes"])
        .filter_map(Value::as_str)
        .filter(|v| v.starts_with("./") || v.starts_with("../"))
        .map(|v| {
            let mut parts = v.split(':');
            let source = parts.next().unwrap_or("").to_owned();
            let target = parts.next().unwrap_or("").to_owned();
            (source, target)
        })
        .collect()
}

fn shutdown_grace(objs: &[Value]) -> Duration {
    let config = named(objs, "ConfigMap", "hookfleet-config");
    let grace = config["data"]["HOOKFLEET__SHUTDOWN__GRACE"]
        .as_str()
        .expect("the ConfigMap hookfleet-config should set HOOKFLEET__SHUTDOWN__GRACE");
    parse_duration(grace)
}

// ---- every file ------------------------------------------------------------

#[test]
fn every_yaml_file_under_deploy_parses() {
    let mut files = Vec::new();
    yaml_files(Path::new(DEPLOY), &mut files);
    for required in [
        "docker-compose.yml",
        "prometheus/prometheus.yml",
        "grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/dashboards/hookfleet.yml",
        "k8s/namespace.yaml",
        "k8s/configmap.yaml",
        "k8s/secret.yaml",
        "k8s/migrate-job.yaml",
        "k8s/api.yaml",
        "k8s/router.yaml",
        "k8s/worker.yaml",
        "k8s/pdb.yaml",
        "k8s/keda-scaledobject.yaml",
    ] {
        assert!(
            files.contains(&path(required)),
            "deploy/{required} is missing"
        );
    }
    for f in &files {
        let name = f.display().to_string();
        let body = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("reading {name}: {e}"));
        assert!(
            !documents(&name, &body).is_empty(),
            "{name} holds no YAML document"
        );
    }
}

// ---- Kubernetes ------------------------------------------------------------

#[test]
fn k8s_objects_are_in_the_hookfleet_namespace() {
    for obj in k8s_objects() {
        let kind = text(&obj["kind"]);
        assert!(
            !kind.is_empty(),
            "an object in deploy/k8s/ has no kind: {obj:?}"
        );
        assert!(
            !name(&obj).is_empty(),
            "a {kind} in deploy/k8s/ has no name"
        );
        let ns = if kind == "Namespace" {
            name(&obj)
        } else {
            text(&obj["metadata"]["namespace"])
        };
        assert_eq!(
            ns,
            "hookfleet",
            "{kind} {} is not in namespace hookfleet",
            name(&obj)
        );
    }
}

#[test]
fn k8s_workloads_run_real_roles() {
    let objs = k8s_objects();
    let mut seen = Vec::new();
    for w in workloads(&objs) {
        let cs = containers(w);
        assert!(!cs.is_empty(), "{} has no containers", name(w));
        for c in cs {
            let r = role(c);
            assert!(
                ROLES.contains(&r.as_str()),
                "{} runs `{r}`, not a hookfleet role (one of {ROLES:?})",
                name(w)
            );
            seen.push(r);
        }
    }
    for wanted in ["migrate", "api", "router", "worker"] {
        assert!(
            seen.iter().any(|r| r == wanted),
            "no workload in deploy/k8s/ runs `{wanted}`"
        );
    }
}

#[test]
fn k8s_deployments_probe_the_metrics_port() {
    let objs = k8s_objects();
    let deployments = of_kind(&objs, "Deployment");
    assert_eq!(
        deployments.len(),
        3,
        "expected the api, router and worker Deployments"
    );
    let metrics = Value::String("metrics".to_owned());
    for d in deployments {
        let annotations = &d["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(
            text(&annotations["prometheus.io/scrape"]),
            "true",
            "{}: scrape annotation",
            name(d)
        );
        assert_eq!(
            text(&annotations["prometheus.io/port"]),
            METRICS_PORT.to_string(),
            "{}: prometheus.io/port should be the metrics port",
            name(d)
        );
        assert_eq!(
            text(&annotations["prometheus.io/path"]),
            "/metrics",
            "{}: prometheus.io/path",
            name(d)
        );
        for c in containers(d) {
            assert_eq!(
                container_port(c, &metrics),
                Some(METRICS_PORT),
                "{}: the port named metrics should be {METRICS_PORT}",
                name(d)
            );
            for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
                let get = &c[probe]["httpGet"];
                assert_eq!(
                    text(&get["path"]),
                    path,
                    "{}: {probe} should GET {path}",
                    name(d)
                );
                assert_eq!(
                    text(&get["port"]),
                    "metrics",
                    "{}: {probe} should use the port named metrics",
                    name(d)
                );
            }
        }
    }
}

#[test]
fn k8s_pods_run_unprivileged_on_a_read_only_root() {
    let objs = k8s_objects();
    for w in workloads(&objs) {
        let pod = &w["spec"]["template"]["spec"]["securityContext"];
        for c in containers(w) {
            let own = &c["securityContext"];
            let non_root = own["runAsNonRoot"]
                .as_bool()
                .or(pod["runAsNonRoot"].as_bool());
            let uid = own["runAsUser"].as_u64().or(pod["runAsUser"].as_u64());
            assert_eq!(
                non_root,
                Some(true),
                "{}: runAsNonRoot should be true",
                name(w)
            );
            assert_eq!(
                uid,
                Some(IMAGE_UID),
                "{}: runAsUser should be the image's uid",
                name(w)
            );
            assert_eq!(
                own["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{}: readOnlyRootFilesystem should be true",
                name(w)
            );
            assert!(
                c["resources"]["requests"].is_mapping() && c["resources"]["limits"].is_mapping(),
                "{}: resources should have requests and limits",
                name(w)
            );
        }
    }
}

#[test]
fn k8s_workloads_read_the_configmap_and_secret() {
    let objs = k8s_objects();
    let config = named(&objs, "ConfigMap", "hookfleet-config");
    let data = config["data"]
        .as_mapping()
        .expect("hookfleet-config should have data");
    for (k, v) in data.iter() {
        assert!(
            v.is_string(),
            "ConfigMap value of {k:?} should be a string (quote it)"
        );
    }
    let secret = named(&objs, "Secret", "hookfleet-secrets");
    for key in [
        "HOOKFLEET__DATABASE__URL",
        "HOOKFLEET__AMQP__URL",
        "HOOKFLEET__API__ADMIN_KEY",
    ] {
        assert!(
            secret["stringData"][key].is_string(),
            "Secret hookfleet-secrets should set {key}"
        );
    }
    for w in workloads(&objs) {
        for c in containers(w) {
            let refs: Vec<(&str, &str)> = items(&c["envFrom"])
                .flat_map(|e| {
                    [
                        ("ConfigMap", text(&e["configMapRef"]["name"])),
                        ("Secret", text(&e["secretRef"]["name"])),
                    ]
                })
                .filter(|(_, n)| !n.is_empty())
                .collect();
            assert!(
                refs.contains(&("ConfigMap", "hookfleet-config")),
                "{}: envFrom hookfleet-config",
                name(w)
            );
            assert!(
                refs.contains(&("Secret", "hookfleet-secrets")),
                "{}: envFrom hookfleet-secrets",
                name(w)
            );
            for (kind, n) in refs {
                named(&objs, kind, n);
            }
        }
    }
}

#[test]
fn k8s_termination_grace_outlasts_the_shutdown_grace() {
    let objs = k8s_objects();
    let grace = shutdown_grace(&objs);
    for d in of_kind(&objs, "Deployment") {
        let pod = &d["spec"]["template"]["spec"];
        let seconds = pod["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}: set terminationGracePeriodSeconds", name(d)));
        for c in containers(d) {
            let needed = grace + Duration::from_secs(pre_stop_sleep(c));
            assert!(
                Duration::from_secs(seconds) > needed,
                "{}: terminationGracePeriodSeconds {seconds} should exceed the preStop sleep plus \
                 HOOKFLEET__SHUTDOWN__GRACE ({needed:?}), or the process is killed mid-shutdown",
                name(d)
            );
        }
    }
}

#[test]
fn k8s_api_service_targets_the_api_and_metrics_ports() {
    let objs = k8s_objects();
    let service = named(&objs, "Service", "hookfleet-api");
    let deployment = named(&objs, "Deployment", "hookfleet-api");
    assert!(
        selects(
            &service["spec"]["selector"],
            &deployment["spec"]["template"]["metadata"]["labels"]
        ),
        "Service hookfleet-api should select the hookfleet-api pods"
    );
    let api = containers(deployment)
        .into_iter()
        .find(|c| role(c) == "api")
        .expect("hookfleet-api should run `api`");
    let targets: Vec<u64> = items(&service["spec"]["ports"])
        .map(|p| {
            let target = if p["targetPort"].is_null() {
                &p["port"]
            } else {
                &p["targetPort"]
            };
            container_port(api, target).unwrap_or_else(|| {
                panic!(
                    "Service hookfleet-api: targetPort {target:?} is no port of the api container"
                )
            })
        })
        .collect();
    for port in [API_PORT, METRICS_PORT] {
        assert!(
            targets.contains(&port),
            "Service hookfleet-api should target {port}, has {targets:?}"
        );
    }
}

#[test]
fn k8s_disruption_budgets_cover_the_deployments() {
    let objs = k8s_objects();
    let pdbs = of_kind(&objs, "PodDisruptionBudget");
    for d in of_kind(&objs, "Deployment") {
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        assert!(
            selects(&d["spec"]["selector"]["matchLabels"], labels),
            "{}: its selector should match its pod labels",
            name(d)
        );
        let covered = pdbs
            .iter()
            .any(|p| selects(&p["spec"]["selector"]["matchLabels"], labels));
        assert!(
            covered,
            "{}: no PodDisruptionBudget selects its pods",
            name(d)
        );
    }
}

#[test]
fn k8s_scaled_objects_target_deployments_and_their_queues() {
    let objs = k8s_objects();
    let scaled = of_kind(&objs, "ScaledObject");
    assert_eq!(
        scaled.len(),
        2,
        "expected ScaledObjects for the worker and the router"
    );
    for so in scaled {
        let target = &so["spec"]["scaleTargetRef"];
        let kind = target["kind"].as_str().unwrap_or("Deployment");
        assert_eq!(
            kind,
            "Deployment",
            "ScaledObject {}: scales a Deployment",
            name(so)
        );
        let deployment = named(&objs, "Deployment", text(&target["name"]));
        let r = role(containers(deployment)[0]);
        let (min, max) = (
            so["spec"]["minReplicaCount"].as_u64().unwrap_or(0),
            so["spec"]["maxReplicaCount"].as_u64().unwrap_or(100),
        );
        assert!(
            (1..=max).contains(&min),
            "ScaledObject {}: want 1 <= minReplicaCount <= maxReplicaCount",
            name(so)
        );
        let triggers: Vec<&Value> = items(&so["spec"]["triggers"]).collect();
        assert!(
            !triggers.is_empty(),
            "ScaledObject {} has no trigger",
            name(so)
        );
        for t in triggers {
            let meta = &t["metadata"];
            match r.as_str() {
                // The deliverable backlog the workers report (issue #16):
                // paused and open-circuit endpoints excluded, every endpoint
                // covered whatever their number.
                "worker" => {
                    assert_eq!(
                        text(&t["type"]),
                        "prometheus",
                        "ScaledObject {}: trigger type",
                        name(so)
                    );
                    let query = text(&meta["query"]);
                    assert!(
                        query.starts_with("sum(hookfleet_deliverable_backlog"),
                        "ScaledObject {}: query `{query}`",
                        name(so)
                    );
                    let metrics = std::fs::read_to_string(
                        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("../crates/core/src/metrics.rs"),
                    )
                    .unwrap();
                    assert!(metrics.contains("\"hookfleet_deliverable_backlog\""));
                    assert!(
                        text(&meta["serverAddress"]).starts_with("http"),
                        "ScaledObject {}: serverAddress",
                        name(so)
                    );
                    assert!(text(&meta["threshold"]).parse::<u32>().is_ok_and(|n| n > 0));
                }
                "router" => {
                    assert_eq!(
                        text(&t["type"]),
                        "rabbitmq",
                        "ScaledObject {}: trigger type",
                        name(so)
                    );
                    assert_ne!(
                        text(&meta["useRegex"]),
                        "true",
                        "ScaledObject {}: the router has one queue, no regex",
                        name(so)
                    );
                    assert_eq!(
                        text(&meta["queueName"]),
                        "hookfleet.router",
                        "ScaledObject {}: queue",
                        name(so)
                    );
                    let auth = named(
                        &objs,
                        "TriggerAuthentication",
                        text(&t["authenticationRef"]["name"]),
                    );
                    for secret_ref in items(&auth["spec"]["secretTargetRef"]) {
                        let secret = named(&objs, "Secret", text(&secret_ref["name"]));
                        let key = text(&secret_ref["key"]);
                        assert!(
                            secret["stringData"][key].is_string()
                                || secret["data"][key].is_string(),
                            "TriggerAuthentication {}: Secret {} has no key {key}",
                            name(auth),
                            name(secret)
                        );
                    }
                }
                other => panic!(
                    "ScaledObject {} scales `{other}`, which has no trigger",
                    name(so)
                ),
            }
        }
    }
}

// ---- docker compose, Prometheus, Grafana -----------------------------------

#[test]
fn compose_runs_real_roles_with_three_workers() {
    let c = compose();
    let services = hookfleet_services(&c);
    let mut roles = Vec::new();
    for (svc_name, svc) in &services {
        let command: Vec<&str> = items(field(svc, "command"))
            .filter_map(Value::as_str)
            .collect();
        let r = command.first().copied().unwrap_or("");
        assert!(
            ROLES.contains(&r),
            "compose service {svc_name} runs `{r}`, not a hookfleet role (one of {ROLES:?})"
        );
        roles.push(r);
        if r == "worker" {
            assert_eq!(
                field(svc, "deploy")["replicas"].as_u64(),
                Some(3),
                "compose service {svc_name}: 3 worker replicas"
            );
        }
        if r == "api" {
            assert!(
                field(svc, "environment")["HOOKFLEET__API__ADMIN_KEY"].is_string(),
                "compose service {svc_name}: `api` needs HOOKFLEET__API__ADMIN_KEY"
            );
        }
    }
    for wanted in ["migrate", "router", "worker", "api"] {
        assert!(
            roles.contains(&wanted),
            "no compose service runs `{wanted}`"
        );
    }
}

#[test]
fn compose_bind_mounts_exist() {
    let c = compose();
    let services = c["services"].as_mapping().expect("compose services");
    for (svc_name, svc) in services.iter() {
        for (source, _) in bind_mounts(svc) {
            assert!(
                path(&source).exists(),
                "compose service {}: mounts {source}, which is not in deploy/ (Docker would \
                 create an empty directory in its place)",
                text(svc_name)
            );
        }
    }
}

#[test]
fn prometheus_scrapes_the_metrics_port() {
    let prom = document("prometheus/prometheus.yml");
    let mut hookfleet_jobs = 0;
    for job in items(&prom["scrape_configs"]) {
        let job_name = text(&job["job_name"]);
        if !job_name.starts_with("hookfleet") {
            continue;
        }
        hookfleet_jobs += 1;
        let mut ports: Vec<u64> = items(&job["dns_sd_configs"])
            .filter_map(|d| d["port"].as_u64())
            .collect();
        for target in items(&job["static_configs"]).flat_map(|s| items(&s["targets"])) {
            let port = text(target).rsplit(':').next().unwrap_or("");
            ports.push(port.parse().unwrap_or(0));
        }
        assert!(!ports.is_empty(), "prometheus job {job_name} names no port");
        for port in ports {
            assert_eq!(
                port, METRICS_PORT,
                "prometheus job {job_name} should scrape {METRICS_PORT}"
            );
        }
    }
    assert!(
        hookfleet_jobs > 0,
        "prometheus.yml has no hookfleet-* scrape job"
    );

    // Rule files must be where the compose file mounts them.
    let c = compose();
    let mounted: Vec<String> = bind_mounts(&c["services"]["prometheus"])
        .into_iter()
        .map(|(_, target)| target)
        .collect();
    for rule in items(&prom["rule_files"]).filter_map(Value::as_str) {
        let full = if rule.starts_with('/') {
            rule.to_owned()
        } else {
            format!("/etc/prometheus/{rule}")
        };
        assert!(
            mounted.contains(&full),
            "prometheus.yml loads {full}, which compose does not mount"
        );
    }
}

#[test]
fn grafana_provisioning_matches_the_compose_mounts() {
    let c = compose();
    let grafana = &c["services"]["grafana"];
    let mounts = bind_mounts(grafana);
    assert!(
        mounts.contains(&(
            "./grafana/provisioning".to_owned(),
            "/etc/grafana/provisioning".to_owned()
        )),
        "compose grafana should mount ./grafana/provisioning at /etc/grafana/provisioning, has {mounts:?}"
    );

    let datasources = document("grafana/provisioning/datasources/prometheus.yml");
    let prometheus = items(&datasources["datasources"])
        .find(|d| text(&d["type"]) == "prometheus")
        .expect("a prometheus datasource");
    assert_eq!(
        text(&prometheus["uid"]),
        "prometheus",
        "the dashboards use datasource uid prometheus"
    );
    assert!(
        text(&prometheus["url"]).starts_with("http://prometheus:"),
        "the datasource should reach the compose service prometheus"
    );

    let dashboards = document("grafana/provisioning/dashboards/hookfleet.yml");
    let provider_paths: Vec<&str> = items(&dashboards["providers"])
        .map(|p| text(&p["options"]["path"]))
        .collect();
    let dashboard = mounts
        .iter()
        .find(|(source, _)| source == "./grafana/hookfleet.json")
        .map(|(_, target)| target.as_str())
        .expect("compose grafana should mount ./grafana/hookfleet.json");
    assert_eq!(dashboard, "/var/lib/grafana/dashboards/hookfleet.json");
    assert!(
        provider_paths
            .iter()
            .any(|p| *p == dashboard || Path::new(dashboard).parent() == Some(Path::new(p))),
        "no dashboard provider loads {dashboard} (provider paths: {provider_paths:?})"
    );
}

/// Runs promtool (Prometheus's, `apt-get install prometheus` on Debian) in
/// deploy/prometheus and asserts it succeeds.
fn promtool(args: &[&str]) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus");
    let out = std::process::Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool is missing: install Prometheus's promtool (Debian: apt-get install prometheus)");
    assert!(
        out.status.success(),
        "promtool {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alert_rules_are_valid_and_their_unit_tests_pass() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
}

#[test]
fn prometheus_config_is_valid() {
    promtool(&["check", "config", "--syntax-only", "prometheus.yml"]);
}

// ---- the Grafana dashboard under each set-up's labels -----------------------

/// One selector of a panel's query: a metric and the labels its matchers pin
/// (`outcome="dead"`, `status=~"5.."` as `503`); `$job`/`$instance` matchers
/// are left to the set-up's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Selector {
    metric: String,
    labels: Vec<(String, String)>,
}

/// The selectors of hookfleet's and the process collector's metrics (and `up`)
/// in a PromQL expression. Quoted strings are skipped, so a queue name is not
/// taken for a metric.
fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'"' {
            i += 1 + expr[i + 1..].find('"').expect("a closed string") + 1;
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == b'_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
            i += 1;
        }
        let ident = &expr[start..i];
        if !(ident.starts_with("hookfleet_") || ident.starts_with("process_") || ident == "up") {
            continue;
        }
        let mut labels = Vec::new();
        if expr[i..].trim_start().starts_with('{') {
            let open = i + expr[i..].find('{').unwrap_or(0);
            // The matchers: split at commas, up to the brace, outside strings.
            let mut matchers = vec![String::new()];
            let mut quoted = false;
            let mut close = open + 1;
            for (j, ch) in expr[open + 1..].char_indices() {
                match ch {
                    '"' => quoted = !quoted,
                    '}' if !quoted => {
                        close = open + 1 + j;
                        break;
                    }
                    ',' if !quoted => {
                        matchers.push(String::new());
                        continue;
                    }
                    _ => {}
                }
                if let Some(m) = matchers.last_mut() {
                    m.push(ch);
                }
            }
            for m in matchers.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
                let op = ["=~", "!~", "!=", "="]
                    .into_iter()
                    .find(|op| m.contains(op))
                    .unwrap_or_else(|| panic!("a matcher without an operator: {m} in {expr}"));
                let (name, value) = m.split_once(op).unwrap_or_default();
                let value = value.trim().trim_matches('"');
                let sample = match (op, value) {
                    ("=", v) => v.to_owned(),
                    ("=~", v) if v.starts_with('$') => continue,
                    ("=~", "5..") => "503".to_owned(),
                    ("=~", "4..") => "404".to_owned(),
                    ("=~", v) => panic!("no sample value for {name}=~\"{v}\" in {expr}: add one"),
                    _ => continue,
                };
                labels.push((name.trim().to_owned(), sample));
            }
            i = close + 1;
        }
        out.push(Selector {
            metric: ident.to_owned(),
            labels,
        });
    }
    out
}

/// (`name`, `query`) of each variable, or (`title`, `expr`) of each panel query.
type Queries = Vec<(String, String)>;

/// Every query of the dashboard: its variables' and its panels', rows' panels
/// included.
fn dashboard_queries() -> (Queries, Queries) {
    let d: serde_json::Value = serde_json::from_str(&read("grafana/hookfleet.json"))
        .expect("grafana/hookfleet.json is JSON");
    let vars = d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| {
            let q = v["query"].as_str().or(v["query"]["query"].as_str());
            (
                v["name"].as_str().unwrap_or("").to_owned(),
                q.unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut exprs = Vec::new();
    let top = d["panels"].as_array().into_iter().flatten();
    let nested = top
        .clone()
        .flat_map(|p| p["panels"].as_array().into_iter().flatten());
    for p in top.chain(nested) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                exprs.push((p["title"].as_str().unwrap_or("").to_owned(), e.to_owned()));
            }
        }
    }
    (vars, exprs)
}

/// `label_values(<selector>, <label>)`, as Grafana's Prometheus source runs it.
fn label_values_as_promql(query: &str) -> (String, String) {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
        .unwrap_or_else(|| panic!("a variable query that is not label_values(…, label): {query}"));
    let (sel, label) = inner
        .rsplit_once(',')
        .expect("label_values(selector, label)");
    let label = label.trim().to_owned();
    (format!("group by ({label}) ({})", sel.trim()), label)
}

fn prom_labels(labels: &[(String, String)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(","))
}

/// Under docker-compose (deploy/prometheus/prometheus.yml: one DNS-discovered
/// job per role) and under Kubernetes (the pods' `prometheus.io/*`
/// annotations, scraped by the usual `kubernetes-pods` job, which maps the pod
/// labels and scrapes every annotated pod of the cluster), the dashboard's
/// variables list exactly hookfleet's jobs and processes, and every panel's
/// query finds series: none is blank for want of the job names it expects.
/// promtool evaluates the dashboard's own queries over series with each
/// set-up's labels.
#[test]
fn grafana_dashboard_finds_its_series_under_compose_and_kubernetes_labels() {
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let prom = document("prometheus/prometheus.yml");
    let compose_jobs: Vec<String> = items(&prom["scrape_configs"])
        .map(|j| text(&j["job_name"]).to_owned())
        .filter(|j| j.starts_with("hookfleet"))
        .collect();
    let compose: Vec<Vec<(String, String)>> = compose_jobs
        .iter()
        .enumerate()
        .map(|(i, job)| {
            let instance = format!("172.18.0.{}:{METRICS_PORT}", i + 10);
            owned(&[("job", job), ("instance", &instance)])
        })
        .collect();
    let k8s: Vec<Vec<(String, String)>> = ["api", "router", "worker"]
        .iter()
        .enumerate()
        .map(|(i, role)| {
            let instance = format!("10.42.0.{}:{METRICS_PORT}", i + 10);
            let pod = format!("hookfleet-{role}-6d5f7c9b8-x{i}");
            owned(&[
                ("job", "kubernetes-pods"),
                ("instance", &instance),
                ("namespace", "hookfleet"),
                ("pod", &pod),
                ("app_kubernetes_io_name", "hookfleet"),
                ("app_kubernetes_io_component", role),
            ])
        })
        .collect();
    // Another annotated pod in the same job: not a hookfleet process.
    let stranger = owned(&[
        ("job", "kubernetes-pods"),
        ("instance", "10.42.1.7:9153"),
        ("namespace", "kube-system"),
        ("pod", "coredns-5d78c9869d-abcde"),
    ]);

    let (vars, exprs) = dashboard_queries();
    assert!(exprs.len() > 30, "the dashboard's panels: {}", exprs.len());
    let mut wanted: Vec<Selector> = exprs.iter().flat_map(|(_, e)| selectors(e)).collect();
    wanted.push(Selector {
        metric: "up".into(),
        labels: vec![],
    });
    wanted.sort();
    wanted.dedup();

    let dir = std::env::temp_dir().join(format!("hf-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut tests = Vec::new();
    for (setup, procs, others) in [
        ("compose", &compose, vec![]),
        ("kubernetes", &k8s, vec![stranger.clone()]),
    ] {
        let mut series = std::collections::BTreeSet::new();
        for p in procs.iter() {
            for s in &wanted {
                let mut labels = p.clone();
                labels.extend(s.labels.iter().cloned());
                if s.metric.ends_with("_bucket") {
                    for le in ["0.1", "+Inf"] {
                        let mut l = labels.clone();
                        l.push(("le".into(), le.into()));
                        series.insert(format!("{}{}", s.metric, prom_labels(&l)));
                    }
                } else {
                    series.insert(format!("{}{}", s.metric, prom_labels(&labels)));
                }
            }
        }
        for o in &others {
            for m in [
                "up",
                "process_resident_memory_bytes",
                "process_cpu_seconds_total",
            ] {
                series.insert(format!("{m}{}", prom_labels(o)));
            }
        }
        let input: Vec<serde_json::Value> = series
            .iter()
            .map(|s| serde_json::json!({"series": s, "values": "0+1x100"}))
            .collect();

        // The variables, in order, each with the values of the ones before: what
        // Grafana's "All" sends is the regex of every value.
        let value_of = |label: &str| -> Vec<String> {
            let mut v: Vec<String> = procs
                .iter()
                .flat_map(|p| p.iter().filter(|(k, _)| k == label).map(|(_, v)| v.clone()))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let substitute = |q: &str| {
            let mut q = q
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1m");
            for (name, _) in &vars {
                q = q.replace(
                    &format!("${name}"),
                    &format!("({})", value_of(name).join("|")),
                );
            }
            q
        };
        let mut checks = Vec::new();
        for (name, query) in &vars {
            let (promql, label) = label_values_as_promql(query);
            let samples: Vec<serde_json::Value> = value_of(name)
                .iter()
                .map(|v| serde_json::json!({"labels": format!("{{{label}=\"{v}\"}}"), "value": 1}))
                .collect();
            checks.push(serde_json::json!({
                "expr": substitute(&promql),
                "eval_time": "20m",
                "exp_samples": samples,
            }));
        }
        // Each panel query finds something: 1 when it returns any series.
        for (_, e) in &exprs {
            checks.push(serde_json::json!({
                "expr": format!("count(({})) > bool 0 or vector(0)", substitute(e)),
                "eval_time": "20m",
                "exp_samples": [{"labels": "{}", "value": 1}],
            }));
        }
        tests.push(serde_json::json!({
            "name": setup,
            "interval": "15s",
            "input_series": input,
            "promql_expr_test": checks,
        }));
    }
    // JSON is YAML, which is what promtool reads.
    let file = dir.join("dashboard.test.yml");
    std::fs::write(
        &file,
        serde_json::json!({"rule_files": [], "evaluation_interval": "1m", "tests": tests})
            .to_string(),
    )
    .unwrap();
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", "dashboard.test.yml"])
        .current_dir(&dir)
        .output()
        .expect("promtool is missing: install Prometheus's promtool (Debian: apt-get install prometheus)");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "the dashboard's queries under compose and Kubernetes labels: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboard_selectors_are_parsed() {
    let s = selectors(
        r#"sum(rate(hookfleet_http_requests_total{job=~"$job", status=~"5..", route="/a/{b},c"}[5m])) / max(hookfleet_queue_messages{queue="hookfleet.router"}) + up"#,
    );
    let names: Vec<&str> = s.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(
        names,
        [
            "hookfleet_http_requests_total",
            "hookfleet_queue_messages",
            "up"
        ]
    );
    assert_eq!(
        s[0].labels,
        [
            ("status".to_owned(), "503".to_owned()),
            ("route".to_owned(), "/a/{b},c".to_owned())
        ]
    );
}

/// Every alert has a runbook section in docs/OPERATIONS.md (its `runbook`
/// annotation's anchor), a row in its alert table, and unit tests in
/// alerts.test.yml that see it fire and stay quiet.
#[test]
fn every_alert_has_a_runbook_and_tests_firing_and_quiet() {
    let ops = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/OPERATIONS.md"
    ))
    .expect("docs/OPERATIONS.md");
    let headings: Vec<String> = ops
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let tests = document("prometheus/alerts.test.yml");
    let cases: Vec<(&str, bool)> = items(&tests["tests"])
        .flat_map(|t| items(&t["alert_rule_test"]))
        .map(|c| {
            let fires = items(&c["exp_alerts"]).next().is_some();
            (text(&c["alertname"]), fires)
        })
        .collect();
    let rules = document("prometheus/alerts.yml");
    let mut alerts = 0;
    for rule in items(&rules["groups"]).flat_map(|g| items(&g["rules"])) {
        let alert = text(&rule["alert"]);
        if alert.is_empty() {
            continue;
        }
        alerts += 1;
        let runbook = text(&rule["annotations"]["runbook"]);
        let anchor = runbook
            .strip_prefix("docs/OPERATIONS.md#")
            .unwrap_or_else(|| panic!("{alert}: runbook {runbook:?} is not in docs/OPERATIONS.md"));
        assert_eq!(anchor, alert.to_lowercase(), "{alert}: its runbook anchor");
        assert!(
            headings.contains(&anchor.to_owned()),
            "{alert}: no section `## {alert}` in docs/OPERATIONS.md"
        );
        assert!(
            ops.contains(&format!("| [{alert}](#{anchor}) |")),
            "{alert}: no row in the alert table of docs/OPERATIONS.md"
        );
        for fires in [true, false] {
            assert!(
                cases.contains(&(alert, fires)),
                "{alert}: alerts.test.yml has no case where it {}",
                if fires { "fires" } else { "stays quiet" }
            );
        }
    }
    assert!(alerts >= 14, "{alerts} alerts");
}
