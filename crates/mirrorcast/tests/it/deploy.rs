//! What the repository deploys with: the container image's Dockerfile and the Helm chart of
//! deploy/helm/mirrorcast, rendered with `helm template` (Helm from the Go module proxy, which
//! `cargo xtask test` installs). The rendered objects validate strictly against Kubernetes'
//! schemas (`kubernetes-validate` from PyPI) and the Prometheus Operator's (npm
//! `@kubernetes-models/prometheus-operator`); the alert rules parse as PromQL and query only
//! metrics mirrorcast exposes, as do the Grafana dashboard's queries; the scenario's region
//! values (deploy/helm/scenario) give Deployments whose config passes `mirrorcast validate` with
//! the secrets mounted where the pod mounts them. No cluster, no image build (no daemon here).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mirrorcast::observe::metrics::Metrics;
use serde::Deserialize;
use serde_norway::Value;

use crate::common::*;

const SECRETS_DIR: &str = "/var/run/secrets/mirrorcast/";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    root().join("deploy/helm/mirrorcast")
}

/// A tool `cargo xtask test` installs: on PATH, or where it puts it.
fn tool(name: &str, installed_at: PathBuf) -> PathBuf {
    if installed_at.exists() {
        return installed_at;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|path| path.exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "{name} is not installed (neither on PATH nor at {}): `cargo xtask test` installs it",
            installed_at.display()
        )
    })
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME"))
}

fn helm() -> PathBuf {
    let gopath = std::env::var_os("GOPATH").map_or_else(|| home().join("go"), PathBuf::from);
    tool("helm", gopath.join("bin/helm"))
}

fn kubernetes_validate() -> PathBuf {
    tool(
        "kubernetes-validate",
        home().join(".cache/mirrorcast/kubernetes-validate/bin/kubernetes-validate"),
    )
}

/// `helm template` of the chart with these arguments (`-f FILE`, `--set K=V`): its objects, or
/// helm's error.
fn try_render(args: &[&str]) -> Result<Vec<Value>, String> {
    let out = Command::new(helm())
        .args(["template", "mc", chart().to_str().unwrap(), "-n", "regions"])
        .args(args)
        .output()
        .expect("running helm");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect())
}

fn render(args: &[&str]) -> Vec<Value> {
    try_render(args).unwrap_or_else(|e| panic!("helm template {args:?}: {e}"))
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_string())
        .collect()
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    let mut at = value;
    for key in path {
        at = &at[*key];
    }
    at.as_str()
        .unwrap_or_else(|| panic!("no string at {path:?}"))
}

/// Core objects strictly against Kubernetes 1.37's schemas (unknown fields refused), the
/// Prometheus Operator's against their CRDs' schemas.
fn assert_valid(objects: &[Value]) {
    let (custom, core): (Vec<&Value>, Vec<&Value>) = objects
        .iter()
        .partition(|o| o["apiVersion"] == "monitoring.coreos.com/v1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("core.yaml");
    let text: Vec<String> = core
        .iter()
        .map(|o| serde_norway::to_string(o).unwrap())
        .collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let out = Command::new(kubernetes_validate())
        .args(["--strict", "--quiet", "-k", "1.37.0"])
        .arg(&file)
        .output()
        .expect("running kubernetes-validate");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if custom.is_empty() {
        return;
    }
    let schemas = root().join("crates/mirrorcast/tests/schemas");
    assert!(
        schemas.join("node_modules/@kubernetes-models").exists(),
        "the Prometheus Operator's schemas are not installed: `cargo xtask test` runs npm ci in {}",
        schemas.display()
    );
    let mut node = Command::new("node")
        .arg("validate.mjs")
        .current_dir(&schemas)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running node");
    let json = serde_json::to_vec(&custom).unwrap();
    node.stdin.take().unwrap().write_all(&json).unwrap();
    let out = node.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn container(objects: &[Value]) -> &Value {
    &kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(objects: &[Value]) -> Vec<&str> {
    container(objects)["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

fn after<'a>(args: &[&'a str], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| *a == flag)?;
    args.get(at + 1).copied()
}

#[test]
fn the_chart_renders_by_default_a_pdb_a_pod_monitor_alerts_and_a_network_policy_that_validate() {
    let out = Command::new(helm())
        .args(["lint", "--strict", chart().to_str().unwrap()])
        .output()
        .expect("running helm");
    assert!(out.status.success(), "{out:?}");

    let objects = render(&[]);
    let expected = [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PodMonitor",
        "PrometheusRule",
        "ServiceAccount",
    ];
    assert_eq!(kinds(&objects), expected.map(String::from).into());
    assert_valid(&objects);

    // Several pods share the work, one moved at a time; no API token without a reason.
    let deployment = kind(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let budget = &kind(&objects, "PodDisruptionBudget")["spec"];
    assert_eq!(budget["maxUnavailable"], 1);
    // An unready pod (a flow failing) never blocks a drain.
    assert_eq!(budget["unhealthyPodEvictionPolicy"], "AlwaysAllow");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        kind(&objects, "ServiceAccount")["automountServiceAccountToken"],
        false
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["topologySpreadConstraints"]
            .as_sequence()
            .unwrap()
            .len(),
        2
    );
    let container = container(&objects);
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    // Sized from the example's tasks.max = 2: 250m + 2 x 250m, 256Mi + 2 x 128Mi.
    assert_eq!(container["resources"]["requests"]["cpu"], "750m");
    assert_eq!(container["resources"]["requests"]["memory"], "512Mi");
    assert_eq!(container["resources"]["limits"]["memory"], "1024Mi");
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        assert_eq!(str_at(container, &[probe, "httpGet", "path"]), path);
        assert_eq!(str_at(container, &[probe, "httpGet", "port"]), "http");
    }
    let args = args(&objects);
    let port = after(&args, "--http").unwrap().rsplit_once(':').unwrap().1;
    assert_eq!(
        container["ports"][0]["containerPort"]
            .as_u64()
            .unwrap()
            .to_string(),
        port
    );
    let monitor = kind(&objects, "PodMonitor");
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "http");
    // The alert rules select the release by this label.
    assert_eq!(
        monitor["spec"]["podTargetLabels"][0],
        "app.kubernetes.io/instance"
    );
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["path"],
        "/metrics"
    );
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let policy = kind(&objects, "NetworkPolicy");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "http");
    // Prometheus usually runs in a namespace of its own: its scrapes get through.
    let from = serde_norway::to_string(&policy["spec"]["ingress"][0]["from"]).unwrap();
    assert!(
        from.contains("app.kubernetes.io/name: prometheus"),
        "{from}"
    );

    // A changed config rolls the pods.
    let checksum = |objects: &[Value]| {
        str_at(
            &kind(objects, "Deployment")["spec"]["template"]["metadata"],
            &["annotations", "checksum/config"],
        )
        .to_string()
    };
    let other = render(&["--set", "config.properties=clusters = a\\, b"]);
    assert_ne!(checksum(&objects), checksum(&other));
    assert_eq!(checksum(&objects), checksum(&render(&[])));

    // A config that does not say how many copier threads gets those the pods are sized for
    // (mirrorcast would run one per core of the node).
    let config = |objects: &[Value], file: &str| {
        str_at(kind(objects, "ConfigMap"), &["data", file]).to_string()
    };
    assert!(config(&other, "mm2.properties").ends_with("\ntasks.max = 2\n"));
    assert_eq!(
        config(&objects, "mm2.properties")
            .matches("tasks.max")
            .count(),
        1
    );
    let resource = render(&[
        "--set",
        "config.resource.spec.mirrors[0].sourceCluster=a",
        "--set",
        "copierThreads=3",
    ]);
    let written: Value = serde_norway::from_str(&config(&resource, "mm2.yaml")).unwrap();
    assert_eq!(
        written["spec"]["mirrors"][0]["sourceConnector"]["tasksMax"],
        3
    );
    let sized = &kind(&resource, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(sized["resources"]["requests"]["cpu"], "1000m");
}

#[test]
fn the_alert_rules_parse_as_promql_and_query_only_metrics_that_exist() {
    let objects = render(&[]);
    let rules = kind(&objects, "PrometheusRule");
    let families = Metrics::exposed_families();
    assert!(families.contains("mirrorcast_flow_state"), "{families:?}");
    let mut alerts = BTreeSet::new();
    for group in rules["spec"]["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let alert = str_at(rule, &["alert"]);
            let expr = str_at(rule, &["expr"]);
            let parsed = promql_parser::parser::parse(expr)
                .unwrap_or_else(|e| panic!("{alert}: {expr}: {e}"));
            let mut names = Vec::new();
            metric_names(&parsed, &mut names);
            assert!(!names.is_empty(), "{alert}: {expr}");
            for name in names {
                assert!(
                    name == "up" || families.contains(Metrics::family_of(&name)),
                    "{alert} queries {name}, which mirrorcast does not expose"
                );
            }
            assert!(
                rule["labels"]["severity"].as_str().is_some(),
                "{alert} has no severity"
            );
            alerts.insert(alert.to_string());
        }
    }
    // What a platform team watches: the flow failed, a partition stopped, lag in seconds,
    // heartbeats, records lost at the source, no progress.
    for alert in [
        "MirrorcastDown",
        "MirrorcastFlowFailed",
        "MirrorcastPartitionStopped",
        "MirrorcastLagHigh",
        "MirrorcastHeartbeatStale",
        "MirrorcastRecordsLostAtSource",
        "MirrorcastNoProgress",
    ] {
        assert!(alerts.contains(alert), "{alert} missing: {alerts:?}");
    }
}

/// The Grafana dashboard (the chart's dashboards/mirrorcast.json): every query parses as PromQL, selects
/// only metrics mirrorcast exposes, and follows the dashboard's variables (namespace, pod, and
/// the flow's source and target), so one flow or one pod can be picked; flows are aggregated
/// over the pods.
#[test]
fn the_dashboard_parses_as_promql_follows_its_variables_and_queries_only_metrics_that_exist() {
    let text = std::fs::read_to_string(chart().join("dashboards/mirrorcast.json")).unwrap();
    // The chart ships it, on request, for Grafana's sidecar.
    assert!(render(&[])
        .iter()
        .all(|o| !str_at(o, &["metadata", "name"]).ends_with("-dashboard")));
    let shipped = render(&["--set", "monitoring.grafanaDashboard.enabled=true"]);
    let config_map = shipped
        .iter()
        .find(|o| str_at(o, &["metadata", "name"]).ends_with("-dashboard"))
        .expect("a dashboard ConfigMap");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        str_at(config_map, &["data", "mirrorcast.json"]).trim(),
        text.trim()
    );
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for wanted in ["datasource", "namespace", "pod", "source", "target"] {
        assert!(variables.contains(&wanted), "no ${wanted}: {variables:?}");
    }
    let families = Metrics::exposed_families();
    let mut queried = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap_or_default();
        if panel["type"] == "row" {
            continue;
        }
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            // As Grafana sends it with "All" picked.
            let sent = variables
                .iter()
                .fold(expr.to_string(), |e, v| e.replace(&format!("${v}"), ".*"));
            let parsed = promql_parser::parser::parse(&sent)
                .unwrap_or_else(|e| panic!("{title}: {expr}: {e}"));
            let mut selectors = Vec::new();
            vector_selectors(&parsed, &mut selectors);
            assert!(!selectors.is_empty(), "{title}: {expr}");
            for selector in selectors {
                let name = selector.name.clone().unwrap_or_default();
                assert!(
                    families.contains(Metrics::family_of(&name)),
                    "{title} queries {name}, which mirrorcast does not expose"
                );
                let labels: BTreeSet<&str> = selector
                    .matchers
                    .matchers
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect();
                let mut follows = vec!["namespace", "pod"];
                if name.starts_with("mirrorcast_") {
                    follows.push("source");
                }
                for label in follows {
                    assert!(
                        labels.contains(label),
                        "{title}: {name} does not follow ${label}: {expr}"
                    );
                }
                queried.insert(name);
            }
        }
    }
    for metric in [
        "mirrorcast_checkpoint_latency_seconds_bucket",
        "mirrorcast_checkpoint_group_failures_total",
        "mirrorcast_records_lost_at_source_total",
        "mirrorcast_group_partitions",
    ] {
        assert!(queried.contains(metric), "no panel shows {metric}");
    }
}

/// The vector selectors of an expression (a range's included).
fn vector_selectors(
    expr: &promql_parser::parser::Expr,
    found: &mut Vec<promql_parser::parser::VectorSelector>,
) {
    use promql_parser::parser::Expr;
    match expr {
        Expr::VectorSelector(v) => found.push(v.clone()),
        Expr::MatrixSelector(m) => found.push(m.vs.clone()),
        Expr::Aggregate(a) => vector_selectors(&a.expr, found),
        Expr::Unary(u) => vector_selectors(&u.expr, found),
        Expr::Binary(b) => {
            vector_selectors(&b.lhs, found);
            vector_selectors(&b.rhs, found);
        }
        Expr::Paren(p) => vector_selectors(&p.expr, found),
        Expr::Subquery(s) => vector_selectors(&s.expr, found),
        Expr::Call(c) => {
            for arg in &c.args.args {
                vector_selectors(arg, found);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// The metric names an expression selects.
fn metric_names(expr: &promql_parser::parser::Expr, names: &mut Vec<String>) {
    let mut selectors = Vec::new();
    vector_selectors(expr, &mut selectors);
    names.extend(selectors.into_iter().filter_map(|s| s.name));
}

#[test]
fn secrets_from_the_kubernetes_api_a_token_and_a_service_monitor_render_only_when_asked() {
    let objects = render(&[
        "--set",
        "kubernetesApi.secrets[0]=mm2-europe",
        "--set",
        "kubernetesApi.configMaps[0]=trust",
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "monitoring.podMonitor.enabled=false",
        "--set",
        "http.tokenSecret=mirrorcast-http",
    ]);
    assert_valid(&objects);
    let pod = &kind(&objects, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], true);
    // Only the named objects, only read.
    let role = kind(&objects, "Role");
    for (rule, (resource, name)) in role["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .zip([("secrets", "mm2-europe"), ("configmaps", "trust")])
    {
        assert_eq!(rule["resources"][0], resource);
        assert_eq!(rule["resourceNames"].as_sequence().unwrap().len(), 1);
        assert_eq!(rule["resourceNames"][0], name);
        assert_eq!(rule["verbs"].as_sequence().unwrap().len(), 1);
        assert_eq!(rule["verbs"][0], "get");
    }
    let binding = kind(&objects, "RoleBinding");
    assert_eq!(
        binding["subjects"][0]["name"],
        kind(&objects, "ServiceAccount")["metadata"]["name"]
    );
    assert!(!kinds(&objects).contains("PodMonitor"));
    // Prometheus sends the token the HTTP side asks for.
    let monitor = kind(&objects, "ServiceMonitor");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["name"],
        "mirrorcast-http"
    );
    let args = args(&objects);
    assert_eq!(
        after(&args, "--http-token-file"),
        Some("/var/run/secrets/mirrorcast-http/token")
    );
    assert_eq!(
        kind(&objects, "Service")["spec"]["ports"][0]["targetPort"],
        "http"
    );
}

/// `monitoring.mm2Metrics`: the pods serve MM2's metrics under Strimzi's names and the scrape
/// adds the labels Strimzi's MirrorMaker 2 dashboard selects by (the pods get no strimzi.io
/// label, which Strimzi's operator selects its own pods by).
#[test]
fn mm2_metrics_are_served_with_the_scrape_labels_of_strimzis_dashboard_when_asked() {
    assert!(!args(&render(&[])).contains(&"--mm2-metrics"));
    for monitor in ["podMonitor", "serviceMonitor"] {
        let objects = render(&[
            "--set",
            "monitoring.mm2Metrics.enabled=true",
            "--set",
            "monitoring.mm2Metrics.clusterName=my-mirror-maker-2",
            "--set",
            &format!("monitoring.{monitor}.enabled=true"),
        ]);
        assert_valid(&objects);
        assert!(args(&objects).contains(&"--mm2-metrics"));
        let (kind_name, endpoints) = match monitor {
            "podMonitor" => ("PodMonitor", "podMetricsEndpoints"),
            _ => ("ServiceMonitor", "endpoints"),
        };
        let relabelings = kind(&objects, kind_name)["spec"][endpoints][0]["relabelings"]
            .as_sequence()
            .unwrap()
            .clone();
        let added: Vec<(&str, &str)> = relabelings
            .iter()
            .map(|r| {
                (
                    r["targetLabel"].as_str().unwrap(),
                    r["replacement"].as_str().unwrap_or("(from the pod)"),
                )
            })
            .collect();
        assert_eq!(
            added,
            [
                ("strimzi_io_kind", "KafkaMirrorMaker2"),
                ("strimzi_io_cluster", "my-mirror-maker-2"),
                ("kubernetes_pod_name", "(from the pod)"),
            ]
        );
        let pod_labels = &kind(&objects, "Deployment")["spec"]["template"]["metadata"]["labels"];
        assert!(
            pod_labels
                .as_mapping()
                .unwrap()
                .keys()
                .all(|k| !k.as_str().unwrap_or_default().starts_with("strimzi.io")),
            "{pod_labels:?}"
        );
    }
}

#[test]
fn pods_that_would_each_copy_everything_are_refused_naming_the_setting() {
    let refused = try_render(&[
        "--set",
        "replicas=2",
        "--set",
        "config.resource.spec.replicas=1",
    ])
    .unwrap_err();
    assert!(
        refused.contains("replicas: 2 pods") && refused.contains("spec.replicas is 1"),
        "{refused}"
    );
    let refused = try_render(&[
        "--set-string",
        "config.properties=instances.group.enabled = false",
    ])
    .unwrap_err();
    assert!(
        refused.contains("instances.group.enabled = false"),
        "{refused}"
    );
    let refused = try_render(&[
        "--set",
        "replicas=3",
        "--set",
        "config.resource.spec.replicas=0",
    ])
    .unwrap_err();
    assert!(refused.contains("spec.replicas is 0"), "{refused}");
    // One pod copying alone, or none (MM2 runs meanwhile), is fine.
    for replicas in ["1", "0"] {
        let objects = render(&[
            "--set",
            &format!("replicas={replicas}"),
            "--set-string",
            "config.properties=instances.group.enabled = false",
        ]);
        assert_eq!(
            kind(&objects, "Deployment")["spec"]["replicas"]
                .as_u64()
                .unwrap()
                .to_string(),
            replicas
        );
        // No pod to scrape is no alert.
        let rules = serde_norway::to_string(kind(&objects, "PrometheusRule")).unwrap();
        assert_eq!(rules.contains("MirrorcastDown"), replicas != "0", "{rules}");
    }
}

#[test]
fn each_region_deploys_a_replicator_whose_config_validates_with_the_secrets_it_mounts() {
    let dir = root().join("deploy/helm/scenario");
    let mut regions = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.display().to_string();
        let objects = render(&["-f", path.to_str().unwrap()]);
        assert_valid(&objects);
        let (config_map, deployment) = (kind(&objects, "ConfigMap"), kind(&objects, "Deployment"));
        let spec = &deployment["spec"];
        // Several pods share the source's partitions: the resource says how many.
        let replicas = spec["replicas"].as_u64().unwrap();
        assert!(replicas > 1, "{name}");
        let resource: Value =
            serde_norway::from_str(str_at(config_map, &["data", "mm2.yaml"])).unwrap();
        assert_eq!(
            resource["spec"]["replicas"].as_u64(),
            Some(replicas),
            "{name}"
        );
        let pod = &spec["template"]["spec"];
        let container = container(&objects);
        let args = args(&objects);
        let region = after(&args, "--clusters").unwrap();
        regions.insert(region.to_string());

        // The files as the pod sees them: the ConfigMap's keys under the config mount, each
        // mounted secret under the secrets directory (with the keys its kind holds).
        let work = tempfile::tempdir().unwrap();
        let volumes = pod["volumes"].as_sequence().unwrap();
        let mut config_path = None;
        for mount in container["volumeMounts"].as_sequence().unwrap() {
            let volume = volumes
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap_or_else(|| panic!("{name}: no volume for {mount:?}"));
            let mount_path = str_at(mount, &["mountPath"]);
            if let Some(secret) = mount_path.strip_prefix(SECRETS_DIR) {
                assert_eq!(str_at(volume, &["secret", "secretName"]), secret, "{name}");
                let at = work.path().join("secrets").join(secret);
                std::fs::create_dir_all(&at).unwrap();
                std::fs::write(at.join("password"), "not-the-real-one\n").unwrap();
                std::fs::write(at.join("ca.crt"), "").unwrap();
            } else if let Some(map) = volume["configMap"]["name"].as_str() {
                assert_eq!(map, str_at(config_map, &["metadata", "name"]), "{name}");
                let file = after(&args, "run")
                    .unwrap()
                    .strip_prefix(&format!("{mount_path}/"))
                    .unwrap();
                let local = work.path().join(file);
                std::fs::write(&local, str_at(config_map, &["data", file])).unwrap();
                config_path = Some(local);
            }
        }
        let config = config_path.unwrap_or_else(|| panic!("{name}: the config is not mounted"));
        let secrets = work.path().join("secrets");
        let out = mirrorcast_command(&[
            "validate",
            config.to_str().unwrap(),
            "--clusters",
            region,
            "--secrets-dir",
            secrets.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && stdout.contains(&format!("europe->{region}"))
                && stdout.contains("instances: share europe's partitions"),
            "{name}: {out:?}"
        );
        assert!(
            !stdout.contains("not-the-real-one"),
            "a secret in validate's output"
        );
    }
    assert_eq!(
        regions,
        ["northamerica", "southamerica"].map(String::from).into(),
        "one replicator per target region"
    );
}

#[test]
fn the_image_is_built_in_two_stages_from_pinned_bases_and_runs_as_a_user() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(lines.iter().filter(|l| l.starts_with("FROM ")).count(), 2);
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    assert!(user.trim() != "0" && user.trim() != "root", "USER {user}");
    assert!(lines.iter().any(|l| l.contains("--no-default-features")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("ENTRYPOINT") && l.contains("mirrorcast")));
    assert!(lines.iter().any(|l| l.trim() == "EXPOSE 8080"));
    // Pinned bases: a version in every FROM (through an ARG with a default), none floating.
    for from in lines.iter().filter(|l| l.starts_with("FROM ")) {
        let image = from.split_whitespace().nth(1).unwrap();
        let arg = image
            .split_once("${")
            .and_then(|(_, rest)| rest.split_once('}'))
            .map(|(name, _)| name);
        let version = arg.map_or_else(
            || image.rsplit_once(':').unwrap().1.to_string(),
            |name| {
                let default = lines
                    .iter()
                    .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
                    .unwrap_or_else(|| panic!("{from}: ARG {name} has no default"));
                default.to_string()
            },
        );
        assert!(
            version.starts_with(|c: char| c.is_ascii_digit()) && version.contains('.'),
            "{from}: not pinned to a release ({version})"
        );
    }
    // Dependencies cached between builds; labels a registry shows.
    assert!(dockerfile.contains("--mount=type=cache,target=/src/target"));
    for label in ["title", "version", "revision", "licenses"] {
        assert!(
            dockerfile.contains(&format!("org.opencontainers.image.{label}=")),
            "{label}"
        );
    }
    let ignored = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for path in ["target", ".git", "**/node_modules"] {
        assert!(
            ignored.lines().any(|l| l.trim() == path),
            "{path} not ignored"
        );
    }
}
