//! The Kubernetes manifests (examples/kubernetes/): the single llmtap's probes, selectors and
//! secrets, and the gateway of three replicas sharing the shipped Redis; the deployment
//! page's figure for a stored tool call.

use super::*;

/// The path a probe checks: `httpGet.path`, or the `--url` of an `llmtap healthcheck`
/// exec probe (its default is /healthz).
pub(crate) fn probe_path(probe: &Value) -> String {
    if let Some(p) = probe["httpGet"]["path"].as_str() {
        return p.to_string();
    }
    let cmd = str_list(&probe["exec"]["command"]);
    assert!(
        cmd.contains(&"healthcheck"),
        "probe is neither httpGet nor `llmtap healthcheck`: {probe}"
    );
    match cmd.iter().position(|a| *a == "--url") {
        Some(i) => {
            let url = cmd.get(i + 1).expect("--url value");
            let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
            rest.find('/')
                .map(|i| &rest[i..])
                .unwrap_or("/")
                .to_string()
        }
        None => "/healthz".to_string(),
    }
}

pub(crate) fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| &labels[k] == v))
}

#[test]
fn kubernetes_manifests_are_complete_and_keep_keys_in_secrets() {
    let mut docs: Vec<(String, Value)> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for f in &files {
        let rel = f
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .to_string();
        for d in yaml_docs(&rel) {
            docs.push((rel.clone(), d));
        }
    }
    let kinds: HashSet<&str> = docs
        .iter()
        .filter_map(|(_, d)| d["kind"].as_str())
        .collect();
    for k in [
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
    ] {
        assert!(
            kinds.contains(k),
            "no {k} in examples/kubernetes: {kinds:?}"
        );
    }
    let of_kind = |k: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|(_, d)| d["kind"] == k)
            .map(|(_, d)| d)
            .collect()
    };
    let config_maps: HashMap<&str, &Value> = of_kind("ConfigMap")
        .into_iter()
        .map(|d| (d["metadata"]["name"].as_str().unwrap(), d))
        .collect();

    // No key material in Secrets or ConfigMaps.
    let key = regex::Regex::new(r"sk-[A-Za-z0-9_-]{8,}").unwrap();
    for s in of_kind("Secret") {
        use base64::Engine as _;
        let mut values: Vec<String> = strings(&s["stringData"])
            .into_iter()
            .map(str::to_owned)
            .collect();
        for v in strings(&s["data"]) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(v)
                .unwrap_or_default();
            values.push(String::from_utf8_lossy(&decoded).into_owned());
        }
        for v in values {
            assert!(!key.is_match(&v), "a Secret holds a literal key: {s}");
        }
    }
    for cm in config_maps.values() {
        for v in strings(&cm["data"]) {
            assert!(!key.is_match(v), "a ConfigMap holds a literal key: {v}");
        }
    }

    // The llmtap.yaml in the ConfigMap loads, and names the variables its keys come from.
    let mut api_key_envs: Vec<String> = Vec::new();
    for cm in config_maps.values() {
        let Some(text) = cm["data"]["llmtap.yaml"].as_str() else {
            continue;
        };
        let file: Value = yaml_to_json(serde_norway::from_str(text).unwrap(), "llmtap.yaml");
        for u in file["upstreams"].as_array().into_iter().flatten() {
            if let Some(v) = u["api_key_env"].as_str() {
                api_key_envs.push(v.to_string());
            }
        }
        let envmap: HashMap<String, String> = api_key_envs
            .iter()
            .map(|k| (k.clone(), "sk-test-not-a-real-key".to_string()))
            .collect();
        llmtap::config::load_yaml(text, &envmap)
            .unwrap_or_else(|e| panic!("ConfigMap llmtap.yaml does not load: {e}"));
    }
    assert!(!api_key_envs.is_empty(), "no api_key_env in the ConfigMap");

    let deployments = of_kind("Deployment");
    let mut llmtap_containers = 0;
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap_or("?");
        let pod = &d["spec"]["template"]["spec"];
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        let containers = pod["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(pod["containers"].as_array().into_iter().flatten());
        for c in containers.filter(|c| c["image"].as_str().is_some_and(|i| i.contains("llmtap"))) {
            llmtap_containers += 1;
            let what = format!("{name}/{}", c["name"].as_str().unwrap_or("?"));
            // Env as the container sees it: envFrom ConfigMaps, then env values.
            let mut envs: HashMap<String, Value> = HashMap::new();
            for from in c["envFrom"].as_array().into_iter().flatten() {
                if let Some(cm) = from["configMapRef"]["name"].as_str() {
                    let cm = config_maps
                        .get(cm)
                        .unwrap_or_else(|| panic!("{what}: ConfigMap {cm} is not shipped"));
                    for (k, v) in cm["data"].as_object().into_iter().flatten() {
                        envs.insert(k.clone(), v.clone());
                    }
                }
            }
            for e in c["env"].as_array().into_iter().flatten() {
                envs.insert(e["name"].as_str().unwrap().to_string(), e.clone());
            }
            let env_value = |k: &str| -> Option<String> {
                let v = envs.get(k)?;
                v.as_str()
                    .or_else(|| v["value"].as_str())
                    .map(str::to_owned)
            };

            for (probe, path) in [
                ("startupProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
                ("livenessProbe", "/healthz"),
            ] {
                let p = &c[probe];
                assert!(p.is_object(), "{what}: no {probe}");
                assert_eq!(probe_path(p), path, "{what}: {probe}");
            }

            let shutdown: u64 = env_value("LLMTAP_SHUTDOWN_TIMEOUT")
                .map(|v| v.parse().unwrap())
                .unwrap_or(30);
            let pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
                .as_u64()
                .unwrap_or(0);
            assert!(
                grace > shutdown + pre_stop,
                "{what}: terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop} \
                 + LLMTAP_SHUTDOWN_TIMEOUT {shutdown}"
            );

            for k in &api_key_envs {
                let e = envs
                    .get(k)
                    .unwrap_or_else(|| panic!("{what}: {k} (api_key_env) is not set"));
                assert!(
                    e["valueFrom"]["secretKeyRef"]["name"].is_string() && e.get("value").is_none(),
                    "{what}: {k} must come from a secretKeyRef: {e}"
                );
            }

            // LLMTAP_CONFIG names a file of a mounted ConfigMap.
            if let Some(path) = env_value("LLMTAP_CONFIG") {
                let (dir, file) = path.rsplit_once('/').unwrap();
                let mount = c["volumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|m| m["mountPath"] == dir)
                    .unwrap_or_else(|| panic!("{what}: nothing mounted at {dir}"));
                let volume = pod["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|v| v["name"] == mount["name"])
                    .unwrap_or_else(|| panic!("{what}: no volume {}", mount["name"]));
                let cm = volume["configMap"]["name"]
                    .as_str()
                    .expect("configMap volume");
                assert!(
                    config_maps
                        .get(cm)
                        .is_some_and(|m| m["data"][file].is_string()),
                    "{what}: ConfigMap {cm} has no {file}"
                );
            }
        }
    }
    assert!(llmtap_containers >= 2, "sidecar and gateway");

    // The gateway's objects point at each other (Redis, redis.yaml, is a StatefulSet).
    let pod_labels: Vec<&Value> = deployments
        .iter()
        .chain(of_kind("StatefulSet").iter())
        .map(|d| &d["spec"]["template"]["metadata"]["labels"])
        .collect();
    for kind in ["Service", "PodDisruptionBudget"] {
        for o in of_kind(kind) {
            let sel = if kind == "Service" {
                &o["spec"]["selector"]
            } else {
                &o["spec"]["selector"]["matchLabels"]
            };
            assert!(
                pod_labels.iter().any(|l| labels_match(sel, l)),
                "{kind} selects no Deployment's or StatefulSet's Pods: {sel}"
            );
        }
    }
    let deployment_names: Vec<&str> = deployments
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    for h in of_kind("HorizontalPodAutoscaler") {
        let target = h["spec"]["scaleTargetRef"]["name"].as_str().unwrap_or("");
        assert!(deployment_names.contains(&target), "HPA targets {target}");
    }
    let services = of_kind("Service");
    for i in of_kind("Ingress") {
        for b in i["spec"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
        {
            let svc = &b["backend"]["service"];
            let ok = services.iter().any(|s| {
                s["metadata"]["name"] == svc["name"]
                    && s["spec"]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| {
                            p["name"] == svc["port"]["name"] || p["port"] == svc["port"]["number"]
                        })
            });
            assert!(ok, "Ingress backend {svc} is no Service port");
        }
    }
}

/// Every document of examples/kubernetes/*.yaml, with its file.
fn kubernetes_docs() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in &files {
        let rel = f
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .to_string();
        for d in yaml_docs(&rel) {
            docs.push((rel.clone(), d));
        }
    }
    docs
}

/// Bytes in a Kubernetes quantity (`512Mi`, `1G`) or a Redis size (`400mb`, `1gb`).
fn bytes_of(q: &str) -> u64 {
    let q = q.to_ascii_lowercase();
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let n: u64 = q[..split].parse().unwrap();
    n * match &q[split..] {
        "" | "b" => 1,
        // Redis reads kb, mb, gb as powers of 1024 (k, m, g as powers of 1000), Kubernetes
        // Ki, Mi, Gi as powers of 1024 and k, M, G as powers of 1000.
        "kb" | "ki" => 1 << 10,
        "k" => 1000,
        "mb" | "mi" => 1 << 20,
        "m" => 1_000_000,
        "gb" | "gi" => 1 << 30,
        "g" => 1_000_000_000,
        other => panic!("unit {other:?} in {q}"),
    }
}

/// The gateway runs three or more replicas (HPA from three, a PDB that lets one drain at a
/// time, spread over nodes) whose LLMTAP_STATE_URL names the shipped Redis Service, which
/// selects a StatefulSet running a pinned Redis 7 that refuses rather than evicts when full
/// and is reachable by the gateway's Pods.
#[test]
fn kubernetes_gateway_runs_three_replicas_sharing_the_shipped_redis() {
    let docs = kubernetes_docs();
    let of_kind = |k: &str| -> Vec<&Value> {
        docs.iter()
            .filter(|(_, d)| d["kind"] == k)
            .map(|(_, d)| d)
            .collect()
    };
    let config_maps: HashMap<&str, &Value> = of_kind("ConfigMap")
        .into_iter()
        .map(|d| (d["metadata"]["name"].as_str().unwrap(), d))
        .collect();
    let gateway = of_kind("Deployment")
        .into_iter()
        .find(|d| {
            d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
        })
        .expect("the gateway Deployment");
    let name = gateway["metadata"]["name"].as_str().unwrap();
    let pod_labels = &gateway["spec"]["template"]["metadata"]["labels"];
    let replicas = gateway["spec"]["replicas"].as_u64().expect("spec.replicas");
    assert!(replicas >= 3, "gateway replicas: {replicas}");

    let hpa = of_kind("HorizontalPodAutoscaler")
        .into_iter()
        .find(|h| h["spec"]["scaleTargetRef"]["name"] == name)
        .expect("an HPA for the gateway");
    let min = hpa["spec"]["minReplicas"].as_u64().unwrap_or(1);
    assert!(min >= 3, "HPA minReplicas {min}");
    assert!(hpa["spec"]["maxReplicas"].as_u64().unwrap() > min);
    assert!(
        hpa["spec"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["resource"]["name"] == "cpu"),
        "HPA on CPU"
    );
    let pdb = of_kind("PodDisruptionBudget")
        .into_iter()
        .find(|p| labels_match(&p["spec"]["selector"]["matchLabels"], pod_labels))
        .expect("a PDB for the gateway");
    let allowed = match (
        pdb["spec"]["maxUnavailable"].as_u64(),
        pdb["spec"]["minAvailable"].as_u64(),
    ) {
        (Some(m), _) => m,
        (None, Some(m)) => min.saturating_sub(m),
        _ => panic!("PDB without maxUnavailable/minAvailable: {pdb}"),
    };
    assert!(
        (1..min).contains(&allowed),
        "the PDB lets {allowed} of {min} Pods go at once: a drain must proceed and never empty the gateway"
    );
    let pod = &gateway["spec"]["template"]["spec"];
    assert!(
        pod["topologySpreadConstraints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["topologyKey"] == "kubernetes.io/hostname"
                && labels_match(&t["labelSelector"]["matchLabels"], pod_labels)),
        "replicas spread over nodes"
    );

    // LLMTAP_STATE_URL as the llmtap container sees it.
    let c = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["image"].as_str().is_some_and(|i| i.contains("llmtap")))
        .expect("llmtap container");
    assert_eq!(probe_path(&c["readinessProbe"]), "/readyz");
    let mut state: Option<Value> = None;
    for from in c["envFrom"].as_array().into_iter().flatten() {
        if let Some(cm) = from["configMapRef"]["name"].as_str() {
            if let Some(v) = config_maps
                .get(cm)
                .and_then(|m| m["data"].get("LLMTAP_STATE_URL"))
            {
                state = Some(v.clone());
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        if e["name"] == "LLMTAP_STATE_URL" {
            state = Some(e.get("value").cloned().unwrap_or_else(|| e.clone()));
        }
    }
    let state = state.expect("LLMTAP_STATE_URL for the gateway");
    let Some(url) = state.as_str() else {
        // From a Secret: nothing more to check here.
        assert!(
            state["valueFrom"]["secretKeyRef"]["name"].is_string(),
            "{state}"
        );
        return;
    };
    let url = reqwest::Url::parse(url).expect("LLMTAP_STATE_URL is a URL");
    assert!(["redis", "rediss"].contains(&url.scheme()), "{url}");
    assert!(
        url.password().is_none(),
        "a Redis password in a ConfigMap or plain env: use a secretKeyRef ({url})"
    );
    let host = url.host_str().unwrap();
    let svc_name = host.split('.').next().unwrap();
    let port = url.port().unwrap_or(6379);
    let svc = of_kind("Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == svc_name)
        .unwrap_or_else(|| panic!("LLMTAP_STATE_URL names Service {svc_name}, not shipped"));
    let svc_port = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(u64::from(port)))
        .unwrap_or_else(|| panic!("Service {svc_name} has no port {port}"));

    let sts = of_kind("StatefulSet")
        .into_iter()
        .find(|s| {
            labels_match(
                &svc["spec"]["selector"],
                &s["spec"]["template"]["metadata"]["labels"],
            )
        })
        .unwrap_or_else(|| panic!("Service {svc_name} selects no StatefulSet"));
    let governing = sts["spec"]["serviceName"].as_str().expect("serviceName");
    assert!(
        of_kind("Service")
            .iter()
            .any(|s| s["metadata"]["name"] == governing && s["spec"]["clusterIP"] == "None"),
        "the StatefulSet's serviceName {governing} is no shipped headless Service"
    );
    let redis = &sts["spec"]["template"]["spec"]["containers"][0];
    let image = redis["image"].as_str().unwrap();
    assert!(
        regex::Regex::new(r"^redis:7\.\d+\.\d+(-alpine)?$")
            .unwrap()
            .is_match(image),
        "Redis 7, pinned: {image}"
    );
    let target = &svc_port["targetPort"];
    assert!(
        redis["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| &p["name"] == target || &p["containerPort"] == target),
        "Service targetPort {target} is no port of the Redis container"
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        let cmd = strings(&redis[probe]["exec"]["command"]).join(" ");
        assert!(
            cmd.contains("redis-cli") && cmd.contains("ping"),
            "{probe}: {cmd}"
        );
    }
    let args: Vec<&str> = str_list(&redis["args"])
        .into_iter()
        .chain(str_list(&redis["command"]))
        .collect();
    let arg = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1).copied())
    };
    assert_eq!(arg("--maxmemory-policy"), Some("noeviction"));
    let maxmemory = bytes_of(arg("--maxmemory").expect("--maxmemory"));
    let limit = bytes_of(
        redis["resources"]["limits"]["memory"]
            .as_str()
            .expect("memory limit"),
    );
    assert!(
        maxmemory < limit,
        "Redis maxmemory {maxmemory} must stay under the container limit {limit}"
    );
    // A NetworkPolicy on Redis, if any, lets the gateway in.
    let redis_labels = &sts["spec"]["template"]["metadata"]["labels"];
    for np in of_kind("NetworkPolicy") {
        if !labels_match(&np["spec"]["podSelector"]["matchLabels"], redis_labels) {
            continue;
        }
        let admits = np["spec"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| {
                rule["from"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| labels_match(&f["podSelector"]["matchLabels"], pod_labels))
            });
        assert!(
            admits,
            "NetworkPolicy {} keeps the gateway out of Redis",
            np["metadata"]["name"]
        );
    }
}

/// The size of a pending call in Redis that docs/deployment.md ("Scale on paper") states is
/// what llmtap stores for a typical one: an OpenAI-style call id, a tool name and a one-line
/// description, content capture off.
#[test]
fn the_deployment_page_states_the_size_of_a_stored_tool_call() {
    let call = llmtap::state::StoredCall {
        call_id: "call_Xk3fT9qLmA2bC7dE1gH5jK8n".into(),
        name: "get_weather".into(),
        kind: "function".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        parent_span_id: "00f067aa0ba902b7".into(),
        trace_state: String::new(),
        keep: true,
        requested_unix_nanos: 1_796_000_086_760_215_803,
        request_model: Some("gpt-4o-mini".into()),
        arguments: None,
        description: Some("Current weather for a city, in Celsius.".into()),
        tenant: None,
    };
    let json = serde_json::to_string(&call).unwrap();
    let doc = read("docs/deployment.md");
    let phrase = format!("{} bytes of JSON", json.len());
    assert!(
        doc.contains(&phrase),
        "docs/deployment.md (\"Scale on paper\") should say \"{phrase}\" for:\n{json}"
    );
}
