//! Many replicas: the two-tier collector, the compose profile, nginx, Kubernetes, Redis.

use super::configs::{compose_secs, pinned, processors_of, redacted_attributes};
use super::*;

const GATEWAY_COLLECTOR: &str = "config/otel-collector-gateway.yaml";
const SAMPLING_COLLECTOR: &str = "config/otel-collector-sampling.yaml";
const NGINX_REPLICAS: &str = "config/nginx-replicas.conf";

/// Components of one kind (`receivers`, `processors`, `exporters`) whose type, the part of
/// the name before any `/`, is `ty`.
fn components_of<'a>(c: &'a Value, section: &str, ty: &str) -> Vec<(&'a String, &'a Value)> {
    c[section]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.split('/').next() == Some(ty))
        .collect()
}

/// Every pipeline starts with memory_limiter, uses only defined components, and every defined
/// component is used by some pipeline (or listed as an extension).
fn check_pipelines(c: &Value, what: &str) {
    let pipelines = c["service"]["pipelines"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no pipelines"));
    assert!(!pipelines.is_empty(), "{what}: no pipelines");
    let mut used: HashSet<(&str, &str)> = HashSet::new();
    for (name, p) in pipelines {
        let procs = str_list(&p["processors"]);
        assert_eq!(
            procs.first(),
            Some(&"memory_limiter"),
            "{what}: {name} pipeline must start with memory_limiter: {procs:?}"
        );
        for section in ["receivers", "processors", "exporters"] {
            let list = str_list(&p[section]);
            if section != "processors" {
                assert!(!list.is_empty(), "{what}: {name} pipeline has no {section}");
            }
            for u in list {
                assert!(
                    c[section].get(u).is_some(),
                    "{what}: {name} pipeline uses {u}, not defined under {section}"
                );
                used.insert((section, u));
            }
        }
    }
    for section in ["receivers", "processors", "exporters"] {
        for name in c[section].as_object().into_iter().flatten().map(|(n, _)| n) {
            assert!(
                used.contains(&(section, name.as_str())),
                "{what}: {section}.{name} is defined but no pipeline uses it"
            );
        }
    }
    for e in str_list(&c["service"]["extensions"]) {
        assert!(
            c["extensions"].get(e).is_some(),
            "{what}: extension {e} is not defined"
        );
    }
    assert!(
        c["extensions"]["health_check"]["endpoint"]
            .as_str()
            .is_some_and(|e| e.ends_with(":13133")),
        "{what}: health_check on :13133 (the image has no shell for a probe)"
    );
}

/// `host:port` of an endpoint written `host:port` or `scheme://host:port[/...]`.
fn host_port(endpoint: &str) -> (String, u16) {
    let rest = endpoint
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(endpoint);
    let rest = rest.split('/').next().unwrap();
    let (host, port) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {endpoint:?}"));
    (host.to_string(), port.parse().expect("port"))
}

fn grpc_port(c: &Value, what: &str) -> u16 {
    let e = c["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: no OTLP/gRPC receiver"));
    host_port(e).1
}

/// The gateway tier routes traces by trace id to the sampling tier and samples nothing; the
/// sampling tier samples with exactly the single-tier config's policies and redacts exactly
/// what it redacts; every pipeline of both is complete.
#[test]
fn two_tier_collector_routes_by_trace_id_then_samples_like_the_single_tier() {
    let single = yaml_file("config/otel-collector.yaml");
    let gw = yaml_file(GATEWAY_COLLECTOR);
    let samp = yaml_file(SAMPLING_COLLECTOR);
    check_pipelines(&gw, GATEWAY_COLLECTOR);
    check_pipelines(&samp, SAMPLING_COLLECTOR);

    // ---- gateway tier
    let protocols = &gw["receivers"]["otlp"]["protocols"];
    assert!(protocols["grpc"].is_object() && protocols["http"].is_object());
    assert!(
        processors_of(&gw["processors"], "tail_sampling").is_empty(),
        "the gateway tier holds no traces: no tail_sampling"
    );
    let lb = components_of(&gw, "exporters", "loadbalancing");
    assert_eq!(lb.len(), 1, "one loadbalancing exporter: {lb:?}");
    let (lb_name, lb) = lb[0];
    assert_eq!(lb["routing_key"], "traceID", "{lb}");
    let otlp = &lb["protocol"]["otlp"];
    assert!(otlp.is_object(), "protocol.otlp: {lb}");
    assert!(
        otlp.get("endpoint").is_none(),
        "the resolver gives the endpoints"
    );
    let resolver = lb["resolver"].as_object().expect("resolver");
    assert_eq!(resolver.len(), 1, "one resolver: {resolver:?}");
    let sampling_port = grpc_port(&samp, SAMPLING_COLLECTOR);
    match resolver.iter().next().unwrap() {
        (k, dns) if k == "dns" => {
            assert!(dns["hostname"].as_str().is_some_and(|h| !h.is_empty()));
            let port: u16 = match &dns["port"] {
                Value::String(p) => p.parse().unwrap(),
                Value::Number(n) => n.as_u64().unwrap() as u16,
                _ => 4317,
            };
            assert_eq!(
                port, sampling_port,
                "resolver port vs the sampling receiver"
            );
        }
        (k, st) if k == "static" => {
            let hosts = str_list(&st["hostnames"]);
            assert!(hosts.len() >= 2, "{hosts:?}");
            for h in hosts {
                assert_eq!(host_port(h).1, sampling_port, "{h}");
            }
        }
        (k, k8s) if k == "k8s" => assert!(k8s["service"].is_string()),
        (k, _) => panic!("unknown resolver {k}"),
    }
    let gp = &gw["service"]["pipelines"];
    let traces = gp["traces"].as_object().expect("gateway traces pipeline");
    assert_eq!(str_list(&traces["exporters"]), [lb_name.as_str()]);
    // Health-check spans dropped before the hop, with the single tier's conditions.
    assert!(str_list(&traces["processors"]).contains(&"filter/healthchecks"));
    assert_eq!(
        gw["processors"]["filter/healthchecks"], single["processors"]["filter/healthchecks"],
        "the gateway's health-check filter differs from config/otel-collector.yaml's"
    );
    // Metrics go straight on: no routing, no sampling, no filtering.
    let metrics = gp["metrics"].as_object().expect("gateway metrics pipeline");
    assert!(!str_list(&metrics["exporters"]).contains(&lb_name.as_str()));
    for p in str_list(&metrics["processors"]) {
        assert!(
            ["memory_limiter", "batch"].contains(&p),
            "metrics pass through {p}"
        );
    }
    for (name, p) in gp.as_object().unwrap() {
        if str_list(&p["exporters"]).contains(&lb_name.as_str()) {
            assert!(
                name.starts_with("traces") || name.starts_with("logs"),
                "routing by trace id in a {name} pipeline"
            );
        }
    }

    // ---- sampling tier
    let sp = &samp["service"]["pipelines"];
    assert!(
        sp.as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("metrics")),
        "metrics never reach the sampling tier"
    );
    let ts = processors_of(&samp["processors"], "tail_sampling");
    assert_eq!(ts.len(), 1, "one tail_sampling processor");
    let single_ts = &single["processors"]["tail_sampling"];
    assert_eq!(
        ts[0].1["policies"], single_ts["policies"],
        "the sampling tier's policies differ from config/otel-collector.yaml's"
    );
    assert_eq!(ts[0].1["decision_wait"], single_ts["decision_wait"]);
    let wait = compose_secs(ts[0].1["decision_wait"].as_str().unwrap());
    let per_sec = ts[0].1["expected_new_traces_per_sec"].as_u64().unwrap();
    let held = ts[0].1["num_traces"].as_u64().unwrap();
    assert!(
        held >= per_sec * wait,
        "num_traces {held} cannot hold {per_sec}/s for {wait} s"
    );
    assert_eq!(
        redacted_attributes(&samp),
        redacted_attributes(&single),
        "the sampling tier redacts other attributes than the single tier"
    );
    assert_eq!(
        samp["processors"]["transform/redact"], single["processors"]["transform/redact"],
        "the redaction statements differ from config/otel-collector.yaml's"
    );
    let st = str_list(&sp["traces"]["processors"]);
    for needed in ["tail_sampling", "transform/redact", "batch"] {
        assert!(
            st.contains(&needed),
            "sampling traces pipeline lacks {needed}: {st:?}"
        );
    }
    assert_eq!(st.last(), Some(&"batch"), "{st:?}");
    assert_eq!(
        samp["exporters"]["otlp_grpc/tempo"], single["exporters"]["otlp_grpc/tempo"],
        "the sampling tier exports to Tempo like the single tier"
    );
    assert_eq!(
        str_list(&sp["traces"]["exporters"]),
        ["otlp_grpc/tempo"],
        "{sp}"
    );
}

/// The repository file a compose service mounts at a path ending in `target_suffix`.
pub(crate) fn mounted(s: &Value, target_suffix: &str) -> Option<String> {
    str_list(&s["volumes"]).into_iter().find_map(|v| {
        let mut parts = v.split(':');
        let (host, target) = (parts.next()?, parts.next()?);
        target
            .ends_with(target_suffix)
            .then(|| host.trim_start_matches("./").to_string())
    })
}

/// The `server host:port` lines of the nginx config's upstream blocks.
fn nginx_upstream_servers(conf: &str) -> Vec<(String, u16)> {
    let comment = regex::Regex::new(r"(?m)#.*$").unwrap();
    let conf = comment.replace_all(conf, "");
    let block = regex::Regex::new(r"upstream\s+[A-Za-z0-9_]+\s*\{([^}]*)\}").unwrap();
    let server = regex::Regex::new(r"server\s+([A-Za-z0-9_.-]+):(\d+)[^;]*;").unwrap();
    block
        .captures_iter(&conf)
        .flat_map(|b| {
            server
                .captures_iter(&b[1])
                .map(|s| (s[1].to_string(), s[2].parse().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A directive's arguments in the nginx config (comments removed), one entry per occurrence.
fn nginx_directive(conf: &str, name: &str) -> Vec<String> {
    let comment = regex::Regex::new(r"(?m)#.*$").unwrap();
    let conf = comment.replace_all(conf, "");
    let re = regex::Regex::new(&format!(r"(?m)^\s*{}\s+([^;]*);", regex::escape(name))).unwrap();
    re.captures_iter(&conf)
        .map(|c| c[1].trim().to_string())
        .collect()
}

/// Seconds in an nginx time such as `900s`, `15m` or `900`.
fn nginx_secs(t: &str) -> u64 {
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    n.parse::<u64>().unwrap()
        * match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            other => panic!("nginx time unit {other:?}"),
        }
}

/// docker-compose.yml's profile `replicas`: two or more llmtap replicas sharing a pinned,
/// health-checked Redis through LLMTAP_STATE_URL, behind nginx round robin (unbuffered, long
/// timeouts), exporting to the gateway tier, which finds a sampling tier of two or more.
#[test]
fn compose_replicas_profile_wires_replicas_redis_nginx_and_both_collector_tiers() {
    let compose = yaml_file("docker-compose.yml");
    let services = compose["services"].as_object().expect("services");
    let profile: Vec<(&String, &Value)> = services
        .iter()
        .filter(|(_, s)| str_list(&s["profiles"]).contains(&"replicas"))
        .collect();
    assert!(!profile.is_empty(), "no service in the profile `replicas`");
    // A service of the profile, or one that always runs (no profile).
    let reachable = |name: &str| {
        services.get(name).is_some_and(|s| {
            s["profiles"].is_null() || str_list(&s["profiles"]).contains(&"replicas")
        })
    };
    let instances = |s: &Value| {
        s["deploy"]["replicas"]
            .as_u64()
            .or_else(|| s["scale"].as_u64())
            .unwrap_or(1)
    };
    let image = |s: &Value| s["image"].as_str().unwrap_or("").to_string();
    let by_image = |prefix: &str| -> Vec<(&String, &Value)> {
        profile
            .iter()
            .filter(|(_, s)| image(s).starts_with(prefix))
            .copied()
            .collect()
    };
    let collector_image = |s: &Value| image(s).starts_with("otel/opentelemetry-collector");

    for (name, s) in &profile {
        let img = image(s);
        assert!(pinned(&img), "{name}: image {img:?} is not pinned");
        // Every server is probed (a client such as the load generator serves nothing).
        // Docker can only probe images with something to run; the collector's is FROM
        // scratch, and its config must then have the health_check extension (checked in
        // two_tier_collector_routes_by_trace_id_then_samples_like_the_single_tier).
        let serves = !s["expose"].is_null() || !s["ports"].is_null();
        if serves && !collector_image(s) {
            assert!(
                !str_list(&s["healthcheck"]["test"]).is_empty(),
                "{name}: no healthcheck"
            );
        }
        for p in str_list(&s["ports"]) {
            assert!(
                p.starts_with("127.0.0.1:"),
                "{name}: port {p} not on 127.0.0.1"
            );
        }
        for (dep, _) in s["depends_on"].as_object().into_iter().flatten() {
            assert!(
                reachable(dep),
                "{name} depends on {dep}, which this profile does not run"
            );
        }
    }

    // ---- Redis
    let redis = by_image("redis:");
    assert_eq!(redis.len(), 1, "one Redis in the profile");
    let (redis_name, redis_svc) = redis[0];
    let redis_image = image(redis_svc);
    assert!(
        regex::Regex::new(r"^redis:7\.\d+\.\d+-alpine$")
            .unwrap()
            .is_match(&redis_image),
        "Redis pinned to a 7.x.y alpine tag: {redis_image}"
    );
    let probe = str_list(&redis_svc["healthcheck"]["test"]).join(" ");
    assert!(
        probe.contains("redis-cli") && probe.contains("ping"),
        "Redis healthcheck: {probe}"
    );
    let redis_cmd = str_list(&redis_svc["command"]);
    let arg = |flag: &str| {
        redis_cmd
            .iter()
            .position(|a| *a == flag)
            .and_then(|i| redis_cmd.get(i + 1).copied())
    };
    assert_eq!(
        arg("--maxmemory-policy"),
        Some("noeviction"),
        "a full Redis must refuse (counted by llmtap), not evict pending calls silently"
    );
    let redis_port: u16 = arg("--port").map_or(6379, |p| p.parse().unwrap());

    // ---- the llmtap replicas
    let cli = read("src/cli.rs");
    let settings = read("src/telemetry/settings.rs");
    let replicas = by_image("llmtap:");
    let count: u64 = replicas.iter().map(|(_, s)| instances(s)).sum();
    assert!(count >= 2, "at least two llmtap replicas: {count}");
    let mut instance_ids = HashSet::new();
    let mut gateway_endpoints = HashSet::new();
    let mut listen_ports = HashSet::new();
    for (name, s) in &replicas {
        let env = s["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}: environment"));
        let var = |k: &str| env.get(k).and_then(Value::as_str);
        for k in env.keys() {
            let read_by_llmtap = if k.starts_with("LLMTAP_") {
                cli.contains(&format!("env = \"{k}\""))
            } else if k.starts_with("OTEL_") {
                settings.contains(&format!("\"{k}\""))
            } else {
                k == "RUST_LOG"
            };
            assert!(read_by_llmtap, "{name}: llmtap does not read {k}");
        }
        let state =
            var("LLMTAP_STATE_URL").unwrap_or_else(|| panic!("{name}: no LLMTAP_STATE_URL"));
        let url = reqwest::Url::parse(state).expect("LLMTAP_STATE_URL is a URL");
        assert!(["redis", "rediss"].contains(&url.scheme()), "{state}");
        assert_eq!(url.host_str(), Some(redis_name.as_str()), "{name}: {state}");
        assert_eq!(url.port().unwrap_or(6379), redis_port, "{name}: {state}");
        assert_eq!(
            s["depends_on"][redis_name.as_str()]["condition"],
            "service_healthy",
            "{name} starts after Redis is healthy"
        );
        let test = str_list(&s["healthcheck"]["test"]).join(" ");
        assert!(
            test.contains("llmtap healthcheck") && test.contains("/healthz"),
            "{name}: healthcheck {test:?}"
        );
        let shutdown: u64 = var("LLMTAP_SHUTDOWN_TIMEOUT").map_or(30, |v| v.parse().unwrap());
        let grace = compose_secs(s["stop_grace_period"].as_str().unwrap_or("10s"));
        assert!(
            grace > shutdown,
            "{name}: stop_grace_period {grace}s <= {shutdown}s"
        );
        // One sampling decision, in the collector.
        assert_eq!(var("OTEL_TRACES_SAMPLER_ARG"), Some("1.0"), "{name}");
        let id = var("OTEL_RESOURCE_ATTRIBUTES")
            .unwrap_or("")
            .split(',')
            .find_map(|kv| kv.strip_prefix("service.instance.id="))
            .unwrap_or_else(|| panic!("{name}: no service.instance.id"));
        assert!(
            instance_ids.insert(id.to_string()),
            "{name}: service.instance.id {id} taken"
        );
        assert_eq!(var("OTEL_EXPORTER_OTLP_PROTOCOL"), Some("grpc"), "{name}");
        gateway_endpoints.insert(host_port(var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap()));
        let listen = var("LLMTAP_LISTEN").expect("LLMTAP_LISTEN");
        listen_ports.insert(((*name).clone(), host_port(listen).1));
    }
    assert_eq!(
        instance_ids.len() as u64,
        count,
        "each replica its own service.instance.id"
    );
    // Otherwise the replicas are configured alike.
    let alike = |s: &Value| {
        let mut e = s["environment"].as_object().unwrap().clone();
        e.remove("OTEL_RESOURCE_ATTRIBUTES");
        e
    };
    for (name, s) in &replicas[1..] {
        assert_eq!(
            alike(s),
            alike(replicas[0].1),
            "{name}'s environment differs from {}'s",
            replicas[0].0
        );
    }

    // ---- the collector tiers
    let gateway: Vec<&(&String, &Value)> = profile
        .iter()
        .filter(|(_, s)| mounted(s, "config.yaml").as_deref() == Some(GATEWAY_COLLECTOR))
        .collect();
    assert_eq!(gateway.len(), 1, "one service runs {GATEWAY_COLLECTOR}");
    let (gateway_name, _) = gateway[0];
    let gw = yaml_file(GATEWAY_COLLECTOR);
    assert_eq!(
        gateway_endpoints,
        HashSet::from([((*gateway_name).clone(), grpc_port(&gw, GATEWAY_COLLECTOR))]),
        "the replicas export to the gateway tier's OTLP/gRPC receiver"
    );
    let sampling: Vec<&(&String, &Value)> = profile
        .iter()
        .filter(|(_, s)| mounted(s, "config.yaml").as_deref() == Some(SAMPLING_COLLECTOR))
        .collect();
    let sampling_instances: u64 = sampling.iter().map(|(_, s)| instances(s)).sum();
    assert!(
        sampling_instances >= 2,
        "two or more sampling-tier collectors: {sampling_instances}"
    );
    let (_, lb) = components_of(&gw, "exporters", "loadbalancing")[0];
    let sampling_names: HashSet<&str> = sampling.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(h) = lb["resolver"]["dns"]["hostname"].as_str() {
        // Docker's DNS answers a service name with the address of every replica.
        assert!(
            sampling_names.contains(h),
            "DNS resolver {h} vs {sampling_names:?}"
        );
    } else {
        let hosts: HashSet<String> = str_list(&lb["resolver"]["static"]["hostnames"])
            .into_iter()
            .map(|h| host_port(h).0)
            .collect();
        assert_eq!(
            hosts,
            sampling_names.iter().map(|s| s.to_string()).collect(),
            "static resolver vs the sampling services"
        );
    }
    for exporter in gw["exporters"].as_object().unwrap().values() {
        if let Some(e) = exporter["endpoint"].as_str() {
            let host = host_port(e).0;
            assert!(
                reachable(&host),
                "the gateway exports to {host}, not run with this profile"
            );
        }
    }
    let samp = yaml_file(SAMPLING_COLLECTOR);
    for exporter in samp["exporters"].as_object().unwrap().values() {
        if let Some(e) = exporter["endpoint"].as_str() {
            let host = host_port(e).0;
            assert!(
                reachable(&host),
                "the sampling tier exports to {host}, not run here"
            );
        }
    }

    // ---- nginx in front of the replicas
    let lbs: Vec<&(&String, &Value)> = profile
        .iter()
        .filter(|(_, s)| mounted(s, ".conf").as_deref() == Some(NGINX_REPLICAS))
        .collect();
    assert_eq!(lbs.len(), 1, "one service runs {NGINX_REPLICAS}");
    let (lb_name, lb_svc) = lbs[0];
    assert!(image(lb_svc).starts_with("nginx:"), "{lb_name}");
    let conf = read(NGINX_REPLICAS);
    let servers: HashSet<(String, u16)> = nginx_upstream_servers(&conf).into_iter().collect();
    assert_eq!(
        servers, listen_ports,
        "{NGINX_REPLICAS}'s upstream servers vs the replicas' LLMTAP_LISTEN"
    );
    for r in servers.iter().map(|(n, _)| n) {
        assert_eq!(
            lb_svc["depends_on"][r.as_str()]["condition"],
            "service_healthy",
            "nginx resolves {r} at start: it must start after it"
        );
    }
    assert_eq!(
        nginx_directive(&conf, "proxy_buffering"),
        ["off"],
        "streams unbuffered"
    );
    assert_eq!(nginx_directive(&conf, "proxy_http_version"), ["1.1"]);
    let first_byte = llmtap::config::Timeouts::default().first_byte.as_secs();
    for d in ["proxy_read_timeout", "proxy_send_timeout"] {
        let v = nginx_directive(&conf, d);
        assert_eq!(v.len(), 1, "{d}: {v:?}");
        assert!(
            nginx_secs(&v[0]) > first_byte,
            "{d} {} must outlast llmtap's first-byte timeout ({first_byte} s)",
            v[0]
        );
    }
    assert_eq!(nginx_directive(&conf, "client_max_body_size"), ["32m"]);
    let listen: Vec<u16> = nginx_directive(&conf, "listen")
        .iter()
        .map(|l| l.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    for p in str_list(&lb_svc["ports"]) {
        let container: u16 = p.rsplit(':').next().unwrap().parse().unwrap();
        assert!(
            listen.contains(&container),
            "{lb_name} publishes {p}; nginx listens on {listen:?}"
        );
    }
    let probe = str_list(&lb_svc["healthcheck"]["test"]).join(" ");
    let probe_path = probe.split_whitespace().last().unwrap_or("").to_string();
    let health_path = probe_path
        .rsplit_once(":8080")
        .map(|(_, p)| p)
        .unwrap_or("");
    assert!(
        conf.contains(&format!("location = {health_path} ")),
        "{lb_name}: healthcheck {probe:?} probes no location of {NGINX_REPLICAS}"
    );

    // ---- traffic: a load generator through nginx, so tool turns cross replicas.
    let lb_port = listen[0];
    assert!(
        profile
            .iter()
            .any(|(_, s)| s["environment"]["OPENAI_BASE_URL"]
                .as_str()
                .is_some_and(|u| u == format!("http://{lb_name}:{lb_port}/v1"))),
        "no load generator sends through {lb_name}"
    );
}

/// config/nginx-replicas.conf on a real nginx (Debian's), its two server names pointed at
/// two llmtap processes on 127.0.0.1: it loads, answers its health location, spreads
/// requests over both replicas (whatever the client's keep-alive), and passes a stream's
/// chunks on as they come rather than when the response ends.
#[tokio::test]
async fn shipped_nginx_config_round_robins_and_streams_through_two_llmtap_replicas() {
    let Some(bin) = tool("nginx") else {
        return;
    };
    let (_up, a) = plain_proxy().await;
    let (_up2, b) = plain_proxy().await;
    let dir = TempDir::new("nginx-replicas");
    let lb_port = free_port();
    let conf = read(NGINX_REPLICAS);
    let servers = nginx_upstream_servers(&conf);
    assert_eq!(servers.len(), 2, "{servers:?}");
    let mut site = conf.clone();
    for ((host, port), proxy) in servers.iter().zip([&a, &b]) {
        let from = format!("server {host}:{port};");
        assert!(site.contains(&from), "{from}");
        site = site.replace(&from, &format!("server {};", proxy.addr));
    }
    let listen = nginx_directive(&conf, "listen");
    assert_eq!(listen.len(), 1, "{listen:?}");
    site = site.replace(
        &format!("listen {};", listen[0]),
        &format!("listen 127.0.0.1:{lb_port};"),
    );
    let site_path = dir.path().join("site.conf");
    std::fs::write(&site_path, site).unwrap();
    let main = dir.path().join("nginx.conf");
    let tmp = dir.path().display();
    std::fs::write(
        &main,
        format!(
            "worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n\
             events {{ worker_connections 128; }}\n\
             http {{\n  client_body_temp_path {tmp}/client;\n  proxy_temp_path {tmp}/proxy;\n\
             fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
             include {};\n}}\n",
            site_path.display()
        ),
    )
    .unwrap();
    let prefix = dir.path().to_str().unwrap().to_string();
    let main_s = main.to_str().unwrap().to_string();
    let mut check = tokio::process::Command::new(&bin);
    check.args(["-t", "-c", &main_s, "-p", &prefix]);
    run_ok("nginx -t on config/nginx-replicas.conf", check).await;

    let access = dir.path().join("access.log");
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["-c", &main_s, "-p", &prefix, "-g", "daemon off;"])
        .stdin(Stdio::null())
        // The site logs to /dev/stdout, as in the container.
        .stdout(std::fs::File::create(&access).unwrap())
        .stderr(Stdio::null());
    // Master and worker in one group, stopped together (a master killed alone left its
    // worker running, orphaned and listening).
    let mut nginx = common::process::Service::spawn(&mut cmd).expect("nginx did not start");
    let lb = format!("http://127.0.0.1:{lb_port}");
    nginx
        .wait_ready(
            "nginx",
            &format!("{lb}/lb-healthz"),
            Duration::from_secs(10),
            &dir.path().join("error.log"),
        )
        .await;
    let c = client();

    // One client, one keep-alive connection: the requests still alternate.
    for i in 0..6 {
        let (status, body) = chat_text(
            &lb,
            json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("Hi {i}")}]}),
            &[],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let r = c.get(format!("{lb}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "/readyz passes through to a replica");

    // A stream of 6 chunks 250 ms apart: the first arrives long before the last.
    let started = std::time::Instant::now();
    let mut resp = c
        .post(format!("{lb}/v1/chat/completions"))
        .header("x-mock-chunks", "6")
        .header("x-mock-chunk-delay-ms", "250")
        .json(&json!({"model": "gpt-4o-mini", "stream": true,
            "messages": [{"role": "user", "content": "Stream, please."}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut first = None;
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        if first.is_none() && chunk.windows(5).any(|w| w == b"data:") {
            first = Some(started.elapsed());
        }
        body.extend_from_slice(&chunk);
    }
    let total = started.elapsed();
    let first = first.expect("no SSE event");
    println!("stream through nginx: first event after {first:?}, done after {total:?}");
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    assert!(
        total >= Duration::from_millis(1200) && first + Duration::from_millis(900) < total,
        "buffered: first event after {first:?}, end after {total:?}"
    );

    // Stopped (TERM, so it flushes its log) before the access log is read.
    drop(nginx);
    let log = std::fs::read_to_string(&access).unwrap_or_default();
    let served = |p: &Proxy| {
        log.lines()
            .filter(|l| l.contains(&format!("upstream={}", p.addr)))
            .count()
    };
    println!("access log:\n{log}");
    assert!(
        served(&a) >= 3 && served(&b) >= 3,
        "round robin: {} and {} requests\n{log}",
        served(&a),
        served(&b)
    );
    a.stop().await;
    b.stop().await;
}
