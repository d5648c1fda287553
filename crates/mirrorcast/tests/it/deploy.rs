//! What the repository deploys with: the container image's Dockerfile and the Kubernetes
//! manifests of deploy/kubernetes (one replicator per target region). Each Deployment's config
//! (a KafkaMirrorMaker2 resource in its ConfigMap) passes `mirrorcast validate` with the secrets
//! mounted where the Deployment mounts them, and its probes, port and scrape annotations agree
//! with the `--http` address it runs with. No cluster, no image build (no daemon here).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use crate::common::*;

const SECRETS_DIR: &str = "/var/run/secrets/mirrorcast/";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
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

#[test]
fn each_region_deploys_a_replicator_whose_config_validates_with_the_secrets_it_mounts() {
    let dir = root().join("deploy/kubernetes");
    let mut regions = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let docs = documents(&path);
        let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap().clone();
        let (config_map, deployment) = (kind("ConfigMap"), kind("Deployment"));
        let spec = &deployment["spec"];
        let name = path.display().to_string();
        // Several pods share the source's partitions: the resource says so too, or each pod
        // would copy everything.
        let replicas = spec["replicas"].as_u64().unwrap();
        assert!(replicas > 1, "{name}");
        assert_eq!(
            str_at(spec, &["strategy", "type"]),
            "RollingUpdate",
            "{name}"
        );
        let resource: serde_norway::Value =
            serde_norway::from_str(str_at(&config_map, &["data", "mm2.yaml"])).unwrap();
        assert_eq!(
            resource["spec"]["replicas"].as_u64(),
            Some(replicas),
            "{name}"
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        let container = &pod["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let after = |flag: &str| {
            let at = args.iter().position(|a| *a == flag).unwrap();
            args[at + 1]
        };
        let region = after("--clusters");
        regions.insert(region.to_string());
        let port = after("--http").rsplit_once(':').unwrap().1;
        assert_eq!(
            container["ports"][0]["containerPort"]
                .as_u64()
                .unwrap()
                .to_string(),
            port
        );
        let http_port_name = str_at(&container["ports"][0], &["name"]);
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            assert_eq!(
                str_at(container, &[probe, "httpGet", "path"]),
                path,
                "{name}"
            );
            assert_eq!(
                str_at(container, &[probe, "httpGet", "port"]),
                http_port_name
            );
        }
        let annotations = &spec["template"]["metadata"]["annotations"];
        assert_eq!(str_at(annotations, &["prometheus.io/scrape"]), "true");
        assert_eq!(str_at(annotations, &["prometheus.io/port"]), port);
        assert_eq!(str_at(annotations, &["prometheus.io/path"]), "/metrics");

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
            } else {
                let map = str_at(volume, &["configMap", "name"]);
                assert_eq!(map, str_at(&config_map, &["metadata", "name"]), "{name}");
                let file = after("run")
                    .strip_prefix(&format!("{mount_path}/"))
                    .unwrap();
                let text = str_at(&config_map, &["data", file]);
                let local = work.path().join(file);
                std::fs::write(&local, text).unwrap();
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
fn the_image_is_built_in_two_stages_and_runs_as_a_user() {
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
}
