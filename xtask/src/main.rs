//! Project automation that is not the product: install the test broker, run the whole test
//! suite, run the benchmark. (The scenario on one machine is the product's own `mirrorcast demo`.)

mod bench;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the demo's broker (nisshi 0.8.1) unless it is already installed.
    InstallBroker,
    /// Install Apache Kafka and MirrorMaker 2 (jars from Maven Central) unless already there.
    InstallKafka,
    /// Everything the test suite needs (both brokers, Kafka's lines, the browser, the OIDC,
    /// Kerberos and chart tools), without running it.
    Install,
    /// The whole test suite: installs, formatting, clippy, every test (integration tests on
    /// Apache Kafka, the demo and page tests on nisshi).
    Test,
    /// Coverage-guided fuzzing of what mirrorcast reads from outside (cargo-fuzz, installed if
    /// missing), starting from and adding to the corpus in crates/mirrorcast/fuzz/corpus.
    Fuzz {
        /// The targets (default: all).
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// Seconds per target.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
    /// Throughput, latency, CPU and memory of replication next to the brokers' own limits.
    Bench {
        /// Backlog size in MB per record size (0: measure latency only).
        #[arg(long, default_value_t = 1024)]
        megabytes: u64,
        /// Record sizes in bytes.
        #[arg(long, value_delimiter = ',', default_value = "1024,100")]
        sizes: Vec<usize>,
        /// The brokers: `kafka` (Apache Kafka, with genuine MirrorMaker 2 next to mirrorcast)
        /// or `nisshi`.
        #[arg(long, default_value = "kafka")]
        broker: String,
        /// How many times to measure everything (the table shows medians and spreads).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Target counts to replicate the backlog to (1 and/or 2).
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        targets: Vec<usize>,
        /// Leave genuine MirrorMaker 2 out (e.g. to compare two mirrorcast builds quickly).
        #[arg(long)]
        without_mm2: bool,
        /// Measure mirrorcast with each of these copier thread counts (`tasks.max`; default:
        /// once, with its own default of one per core).
        #[arg(long, value_delimiter = ',')]
        copier_threads: Vec<usize>,
        /// Measure mirrorcast also as this many processes sharing the source through a group
        /// (`instances.group.enabled`), with each copier thread count (default: one process).
        #[arg(long, value_delimiter = ',')]
        instances: Vec<usize>,
        /// Measure every mirrorcast variant, and its latency, also with exactly once
        /// (`exactly.once.source.support = enabled`).
        #[arg(long)]
        exactly_once: bool,
        /// Measure mirrorcast on each of these data planes (`data.plane`: `records`, `batch`).
        #[arg(long, value_delimiter = ',', default_value = "records")]
        data_plane: Vec<String>,
        /// How the bench's producer compresses the source's records: `none`, `lz4`, `zstd`, ...
        #[arg(long, default_value = "none")]
        source_compression: String,
        /// Instead: churn topics and consumer groups for this many minutes and print the
        /// replicator's memory and metric series after a warm-up and at the end.
        #[arg(long)]
        churn_minutes: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::InstallBroker => localcluster::ensure_nisshi()
            .map(|path| {
                println!(
                    "nisshi {} at {}",
                    localcluster::NISSHI_VERSION,
                    path.display()
                )
            })
            .map_err(Into::into),
        Task::InstallKafka => install_kafka().map(|installs| {
            for (version, install) in installs {
                println!(
                    "Apache Kafka {version} and MirrorMaker 2 in {}",
                    install.lib_dir().display()
                )
            }
        }),
        Task::Install => install_all(),
        Task::Test => test(),
        Task::Fuzz { targets, seconds } => fuzz(&targets, seconds, true),
        Task::Bench {
            megabytes,
            sizes,
            broker,
            runs,
            targets,
            without_mm2,
            copier_threads,
            instances,
            exactly_once,
            data_plane,
            source_compression,
            churn_minutes,
        } => parse_broker(&broker).and_then(|broker| {
            bench::run(
                &bench::Options {
                    megabytes,
                    sizes,
                    broker,
                    runs: runs.max(1),
                    targets,
                    mm2: !without_mm2,
                    copier_threads,
                    instances,
                    exactly_once,
                    data_planes: data_plane,
                    source_compression,
                    churn_minutes,
                },
                &workspace_root(),
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn parse_broker(name: &str) -> Result<localcluster::Broker> {
    match name {
        "kafka" => Ok(localcluster::Broker::Kafka),
        "nisshi" => Ok(localcluster::Broker::Nisshi),
        other => bail!("--broker {other}: use `kafka` or `nisshi`"),
    }
}

/// The part of the integration suite that runs on the older Kafka line too: the MM2 hand-off,
/// replication, exactly once and security (test name filters of the `it` binary).
const OLDER_LINE_TESTS: [&str; 4] = ["mm2::", "replication::", "exactly_once::", "secure::"];

/// The copy tests that run again on the batch data plane (`data.plane = batch`), on the older
/// line: replication, a SIGKILL mid-copy, transactional and compacted sources.
const BATCH_PLANE_TESTS: [&str; 3] = ["replication::", "restart::", "source_logs::"];

/// Java and Maven from Debian's packages when missing (the machines normally have them), then
/// the jars of both Kafka lines the suite runs.
fn install_kafka() -> Result<Vec<(String, localcluster::KafkaInstall)>> {
    let missing: Vec<&str> = [("java", "openjdk-17-jdk-headless"), ("mvn", "maven")]
        .into_iter()
        .filter(|(tool, _)| !on_path(tool))
        .map(|(_, package)| package)
        .collect();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    // And the one `MIRRORCAST_KAFKA_VERSION` names, for a run on another line.
    let named = localcluster::kafka_version();
    let mut versions = vec![
        localcluster::KAFKA_VERSION.to_string(),
        localcluster::OLDER_KAFKA_VERSION.to_string(),
        localcluster::MARKER_SAFE_KAFKA_VERSION.to_string(),
    ];
    if !versions.contains(&named) {
        versions.push(named);
    }
    versions
        .into_iter()
        .map(|version| {
            let install = localcluster::ensure_kafka_release(&version)?;
            Ok((version, install))
        })
        .collect()
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

fn apt_install(packages: &[&str]) -> Result<()> {
    println!("installing Debian's {} ...", packages.join(", "));
    let install: Vec<&str> = ["install", "-y"].iter().chain(packages).copied().collect();
    for args in [&["update"][..], &install[..]] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("apt-get {} failed ({status})", args.join(" "));
        }
    }
    Ok(())
}

/// The fuzz targets of crates/mirrorcast/fuzz.
const FUZZ_TARGETS: [&str; 3] = ["properties", "resource", "internal_records"];

/// How long each target runs in `cargo xtask test`, after its whole corpus.
const FUZZ_SMOKE_SECONDS: u64 = 10;

fn fuzz_dir() -> PathBuf {
    workspace_root().join("crates/mirrorcast/fuzz")
}

/// Runs each target for `seconds`. `keep_finds`: new inputs go into the repository's corpus
/// (a fuzzing session); otherwise into a temporary directory (the smoke leaves the tree
/// untouched). A crash, a hang over 10 s or an input over 2 GiB of memory fails.
fn fuzz(targets: &[String], seconds: u64, keep_finds: bool) -> Result<()> {
    if !on_path("cargo-fuzz") {
        cargo(&["install", "cargo-fuzz", "--locked"])?;
    }
    let targets: Vec<&str> = if targets.is_empty() {
        FUZZ_TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    for target in targets {
        let corpus = fuzz_dir().join("corpus").join(target);
        let scratch = tempfile::tempdir()?;
        let mut dirs = vec![corpus.clone()];
        if !keep_finds {
            // libFuzzer writes new inputs to its first directory and only reads the others.
            dirs.insert(0, scratch.path().to_path_buf());
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        println!("$ cargo fuzz run {target} ({seconds} s)");
        let status = Command::new(cargo)
            .args(["fuzz", "run", "--sanitizer", "none", target])
            .args(&dirs)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
            // cargo-fuzz passes nightly flags; the stable toolchain takes them with this.
            .env("RUSTC_BOOTSTRAP", "1")
            .current_dir(workspace_root().join("crates/mirrorcast"))
            .status()
            .context("running cargo fuzz")?;
        if !status.success() {
            bail!(
                "fuzz target `{target}` failed ({status}): the input is in {}",
                fuzz_dir().join("artifacts").join(target).display()
            );
        }
    }
    Ok(())
}

fn install_all() -> Result<()> {
    let nisshi = localcluster::ensure_nisshi()?;
    println!("demo broker: {}", nisshi.display());
    for (version, install) in install_kafka()? {
        println!(
            "reference broker: Apache Kafka {version} in {}",
            install.lib_dir().display()
        );
    }
    ensure_browser()?;
    ensure_oidc()?;
    ensure_kerberos()?;
    ensure_chart_tools()
}

fn test() -> Result<()> {
    install_all()?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    // The production build without the demo (and its test-harness dependencies) must build too.
    cargo(&[
        "clippy",
        "-p",
        "mirrorcast",
        "--no-default-features",
        "--locked",
        "--",
        "-D",
        "warnings",
    ])?;
    fuzz(&[], FUZZ_SMOKE_SECONDS, false)?;
    // The integration tests run on Apache Kafka; the demo and page tests pick nisshi themselves.
    std::env::set_var(localcluster::BROKER_ENV, "kafka");
    let line = localcluster::kafka_version();
    let main = cargo_test(&["test", "--workspace", "--locked", "--no-fail-fast"])?;
    // Then the chosen part on the older line, whatever the first run gave.
    std::env::set_var(
        localcluster::KAFKA_VERSION_ENV,
        localcluster::OLDER_KAFKA_VERSION,
    );
    let mut args = vec!["test", "-p", "mirrorcast", "--test", "it", "--locked", "--"];
    args.extend(OLDER_LINE_TESTS);
    let older = cargo_test(&args)?;
    // And the copy tests on the batch plane (tests/it/common/config.rs reads the variable).
    std::env::set_var("MIRRORCAST_TEST_DATA_PLANE", "batch");
    let mut args = vec!["test", "-p", "mirrorcast", "--test", "it", "--locked", "--"];
    args.extend(BATCH_PLANE_TESTS);
    let batch = cargo_test(&args)?;
    println!(
        "summary: {} passed, {} failed (Kafka {}: {} passed, {} failed; Kafka {}: {} passed, {} failed; batch plane on Kafka {}: {} passed, {} failed)",
        main.passed + older.passed + batch.passed,
        main.failed + older.failed + batch.failed,
        line,
        main.passed,
        main.failed,
        localcluster::OLDER_KAFKA_VERSION,
        older.passed,
        older.failed,
        localcluster::OLDER_KAFKA_VERSION,
        batch.passed,
        batch.failed,
    );
    let batch_line = format!("{} (batch plane)", localcluster::OLDER_KAFKA_VERSION);
    for (run, version) in [
        (&main, line.as_str()),
        (&older, localcluster::OLDER_KAFKA_VERSION),
        (&batch, batch_line.as_str()),
    ] {
        if let Some(failure) = &run.failure {
            bail!("on Kafka {version}: {failure}");
        }
    }
    Ok(())
}

/// What one `cargo test` run counted, and why it failed if it did.
struct TestRun {
    passed: u64,
    failed: u64,
    failure: Option<String>,
}

/// librdkafka has OAUTHBEARER/OIDC only if libcurl's headers are there when it is built (its
/// configure script looks for them and leaves OIDC out otherwise): install them, and build
/// librdkafka again when the one built already (e.g. to build this program) lacks OIDC.
fn ensure_oidc() -> Result<()> {
    let has_libcurl = Command::new("pkg-config")
        .args(["--exists", "libcurl"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_libcurl {
        apt_install(&["pkg-config", "libcurl4-openssl-dev"])?;
    }
    let mut probe = rdkafka::ClientConfig::new();
    probe.set("sasl.oauthbearer.method", "oidc");
    if probe.create_native_config().is_err() {
        println!("librdkafka was built without libcurl (no OIDC): building it again");
        cargo(&["clean", "-p", "rdkafka-sys"])?;
    }
    Ok(())
}

/// The tests' librdkafka has GSSAPI (Cyrus SASL: its headers to build, its GSSAPI plugin to
/// run), and the Kerberos test runs a KDC of its own (Debian's MIT Kerberos: the KDC, its
/// database tools, kinit).
fn ensure_kerberos() -> Result<()> {
    let missing: Vec<&str> = [
        "pkg-config",
        "libsasl2-dev",
        "libsasl2-modules-gssapi-mit",
        "krb5-kdc",
        "krb5-admin-server",
        "krb5-user",
    ]
    .into_iter()
    .filter(|package| !debian_has(package))
    .collect();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    Ok(())
}

/// Helm as the Go module proxy serves it (the chart test's `helm lint` and `helm template`).
const HELM_MODULE: &str = "helm.sh/helm/v3/cmd/helm@v3.21.4";
/// Kubernetes' JSON schemas, bundled (the chart test validates offline).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// The chart test's tools: Helm (built with `go install` into `$GOPATH/bin`, where the test
/// looks), `kubernetes-validate` (in a virtualenv under ~/.cache/mirrorcast) and the Prometheus
/// Operator's schemas (npm, in crates/mirrorcast/tests/schemas).
fn ensure_chart_tools() -> Result<()> {
    let home = PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?);
    let gopath = std::env::var_os("GOPATH").map_or_else(|| home.join("go"), PathBuf::from);
    if !on_path("helm") && !gopath.join("bin/helm").exists() {
        let go = if on_path("go") {
            PathBuf::from("go")
        } else {
            PathBuf::from("/usr/local/go/bin/go")
        };
        println!("$ go install {HELM_MODULE}");
        let status = Command::new(&go)
            .args(["install", HELM_MODULE])
            .env("GOPATH", &gopath)
            .status()
            .with_context(|| format!("running {} (Go is needed to build Helm)", go.display()))?;
        if !status.success() {
            bail!("go install {HELM_MODULE} failed ({status})");
        }
    }
    let venv = home.join(".cache/mirrorcast/kubernetes-validate");
    if !venv.join("bin/kubernetes-validate").exists() {
        if !on_path("python3") {
            apt_install(&["python3", "python3-venv"])?;
        }
        println!(
            "$ python3 -m venv {} && pip install {KUBERNETES_VALIDATE}",
            venv.display()
        );
        let venv_made = || -> Result<bool> {
            Ok(Command::new("python3")
                .arg("-m")
                .arg("venv")
                .arg(&venv)
                .status()?
                .success())
        };
        // Debian's python3 has venv in a package of its own.
        let made = venv_made()? || (apt_install(&["python3-venv"]).is_ok() && venv_made()?);
        let pip = venv.join("bin/pip");
        if !made
            || !Command::new(&pip)
                .args(["install", "--quiet", KUBERNETES_VALIDATE])
                .status()?
                .success()
        {
            bail!(
                "installing {KUBERNETES_VALIDATE} into {} failed",
                venv.display()
            );
        }
    }
    let schemas = workspace_root().join("crates/mirrorcast/tests/schemas");
    if !schemas.join("node_modules/@kubernetes-models").exists() {
        npm_ci(&schemas)?;
    }
    Ok(())
}

fn debian_has(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "install ok installed")
}

/// Runs `cargo test`, passing its output through, and ends with one line that sums up every
/// test binary (cargo's own last line is that of the last doc-test binary, often "0 passed").
fn cargo_test(args: &[&str]) -> Result<TestRun> {
    use std::io::{BufRead, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("$ cargo {}", args.join(" "));
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                passed += count_before(rest, " passed");
                failed += count_before(rest, " failed");
            }
        }
    }
    let status = child.wait()?;
    println!("{passed} passed, {failed} failed");
    Ok(TestRun {
        passed,
        failed,
        failure: (!status.success()).then(|| format!("cargo {} failed ({status})", args.join(" "))),
    })
}

/// The number just before `label` in a cargo "test result" line.
fn count_before(line: &str, label: &str) -> u64 {
    line.find(label)
        .and_then(|end| line[..end].rsplit([' ', '.']).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The page test drives Debian's Chromium with Playwright (playwright-core from npm, which uses
/// the system browser rather than downloading its own).
fn ensure_browser() -> Result<()> {
    if !Path::new("/usr/bin/chromium").exists() {
        apt_install(&["chromium"])?;
    }
    let browser_tests = workspace_root().join("crates/mirrorcast/tests/browser");
    if !browser_tests.join("node_modules/playwright-core").exists() {
        npm_ci(&browser_tests)?;
    }
    Ok(())
}

/// Installs a test directory's npm packages as its lock file pins them.
fn npm_ci(dir: &Path) -> Result<()> {
    println!("$ npm ci (in {})", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .context("running npm")?;
    if !status.success() {
        bail!("npm ci failed ({status})");
    }
    Ok(())
}
