//! The `palisade` command line: serve | certs | check | audit | simulate.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use palisade::certmgr::plan::Policy;
use palisade::certmgr::{Managed, Names};
use palisade::certs::{self, CertSpec};
use palisade::cluster::ClusterView;
use palisade::cluster::kube::KubeCluster;
use palisade::cluster::static_dir::StaticCluster;
use palisade::config::Config;
use palisade::generate::Generating;
use palisade::generate::plan::Scope;
use palisade::generate::writer::Writer;
use palisade::leader::lease::Election;
use palisade::mode::Mode;
use palisade::serve::{self, Settings, TlsSource};
use palisade::server::listen::ListenLimits;
use palisade::server::routes::BodyLimits;

/// mimalloc, not glibc's malloc: a review is decoded into many small
/// allocations, often freed on the other worker thread. In alternated load
/// bench runs palisade answered 8% more reviews per second with it, for
/// about 10 MiB more RSS (docs/performance.md, "Batched log writes and
/// mimalloc").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for usage and configuration errors.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(name = "palisade", version, about = "Kubernetes admission webhook for NetworkPolicy hygiene, role labels and access-proxy sidecars", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the validating and mutating webhooks over TLS.
    Serve(ServeArgs),
    /// Write a CA and a serving certificate for the webhook Service.
    Certs(CertsArgs),
    /// Decide manifest files as the webhooks would (for CI): exit 1 on a denial.
    Check(CheckArgs),
    /// Report what in a running cluster palisade would not admit today (read-only): exit 1 on findings.
    Audit(AuditArgs),
    /// Which workloads can reach which, and what a policy change opens or closes.
    #[command(subcommand)]
    Simulate(palisade::reach::SimulateCommand),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuditOutput {
    Text,
    Json,
    /// wgpolicyk8s.io/v1alpha2 PolicyReport YAML on stdout.
    Policyreport,
    /// The NetworkPolicies generation would create (with `generate.existing:
    /// true`), one YAML stream for `kubectl apply -f -`.
    Fixes,
}

#[derive(Args)]
struct AuditArgs {
    /// The policy file.
    #[arg(
        long,
        env = "PALISADE_CONFIG",
        default_value = "policies/palisade.yaml"
    )]
    config: PathBuf,
    /// Audit manifests under DIR instead of the live cluster.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: AuditOutput,
    /// With --state: a file that is not a manifest is an error (exit 2), not a note.
    #[arg(long)]
    strict: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CheckOutput {
    Text,
    Json,
    /// SARIF 2.1.0, for code scanning (one result per broken rule, at its line).
    Sarif,
    /// JUnit XML, for CI test reports (one test case per object decided).
    Junit,
}

/// Where `check` and `serve` look for the policy file when none is given.
const DEFAULT_CONFIG: &str = "policies/palisade.yaml";

#[derive(Args)]
struct CheckArgs {
    /// The policy file [default: policies/palisade.yaml when it exists, else the built-in default policy].
    #[arg(long, env = "PALISADE_CONFIG")]
    config: Option<PathBuf>,
    /// Override the config's default mode.
    #[arg(long, env = "PALISADE_MODE", value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Generation on (generate.enabled) whatever the config says: a
    /// namespace the files create counts with the policies palisade would
    /// create in it.
    #[arg(long, env = "PALISADE_GENERATE")]
    generate: bool,
    /// The cluster before the files are applied: manifests under DIR.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// The cluster before the files are applied: the live cluster's
    /// namespaces and NetworkPolicies (KUBECONFIG or in-cluster; read-only).
    #[arg(long, conflicts_with = "state")]
    cluster: bool,
    /// Namespace for namespaced objects that name none (as kubectl apply -n).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The user the requests come from.
    #[arg(long = "as", value_name = "USER", default_value = "palisade-check")]
    as_user: String,
    /// A group of that user (repeatable); members of trustedGroups may set weakening namespace labels.
    #[arg(long = "as-group", value_name = "GROUP")]
    as_group: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: CheckOutput,
    /// A file that is not a manifest is an error (exit 2), not a note.
    #[arg(long)]
    strict: bool,
    /// Files and directories of manifests (YAML, multi-document, JSON, List).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    /// The policy file [default: policies/palisade.yaml; with --demo: the embedded one].
    #[arg(long, env = "PALISADE_CONFIG")]
    config: Option<PathBuf>,
    /// Override the config's default mode.
    #[arg(long, env = "PALISADE_MODE", value_parser = parse_mode)]
    mode: Option<Mode>,
    /// Turn on the reachability preview (simulate.preview) whatever the config says.
    #[arg(long, env = "PALISADE_PREVIEW")]
    preview: bool,
    /// Turn on generation (generate.enabled) whatever the config says: the
    /// leader replica creates the default-deny of new namespaces.
    #[arg(long, env = "PALISADE_GENERATE")]
    generate: bool,
    /// HTTPS address for /validate and /mutate [default: 0.0.0.0:8443; with --demo: 127.0.0.1:8443].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Plain-HTTP address for /healthz, /readyz and /metrics [default: 0.0.0.0:9090; with --demo: 127.0.0.1:9090].
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Self-managed certificates: keep a CA and a serving certificate in the
    /// Secret palisade-certs (the leader replica creates and renews them),
    /// serve from it, and keep both webhook configurations' caBundle in step.
    /// Also `certificates.manage: true` in the policy file.
    #[arg(long, env = "PALISADE_MANAGE_CERTS", conflicts_with_all = ["tls_cert", "tls_key", "demo"])]
    manage_certs: bool,
    /// palisade's own namespace (its Service, certificate Secret and leader Lease), for self-managed certificates.
    #[arg(long, env = "PALISADE_NAMESPACE", default_value = "palisade-system")]
    namespace: String,
    /// PEM certificate chain.
    #[arg(long, default_value = "certs/tls.crt")]
    tls_cert: PathBuf,
    /// PEM private key.
    #[arg(long, default_value = "certs/tls.key")]
    tls_key: PathBuf,
    /// Read the cluster from manifests under DIR instead of the API server.
    #[arg(long, value_name = "DIR")]
    state: Option<PathBuf>,
    /// With --state: a file that is not a manifest is an error (exit 2), not a note.
    #[arg(long)]
    strict: bool,
    /// Serve on 127.0.0.1 with an example cluster and a self-signed
    /// certificate made at start, and print how to call it.
    #[arg(long)]
    demo: bool,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = BodyLimits::default().max_bytes)]
    max_body_bytes: usize,
    /// Connections served at once.
    #[arg(long, default_value_t = ListenLimits::default().max_connections)]
    max_connections: usize,
}

#[derive(Args)]
struct CertsArgs {
    /// Directory to write ca.crt, tls.crt and tls.key into.
    #[arg(long, default_value = "certs")]
    out: PathBuf,
    /// The webhook Service's name.
    #[arg(long, default_value = "palisade")]
    service: String,
    /// The webhook Service's namespace.
    #[arg(long, default_value = "palisade-system")]
    namespace: String,
    /// Extra DNS names for the serving certificate.
    #[arg(long)]
    dns: Vec<String>,
    /// IP addresses for the serving certificate.
    #[arg(long)]
    ip: Vec<IpAddr>,
    /// Validity of both certificates, in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse::<Mode>().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => run_async(serve_command(args)),
        Command::Certs(args) => certs_command(args),
        Command::Check(args) => check_command(args),
        Command::Audit(args) => run_async(audit_command(args)),
        Command::Simulate(cmd) => run_async(simulate_command(cmd)),
    }
}

/// Hands the pages a worker thread freed back to the OS when the thread
/// goes idle, at most once a second per thread. mimalloc purges freed
/// pages only when the thread that freed them next allocates; a webhook
/// that decoded 100,000 policies while listing them at start and then
/// waits for reviews kept that garbage resident: 17 MiB at 10,000
/// namespaces (docs/performance.md, "The live path at scale").
fn give_back_idle_memory() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local!(static LAST: Cell<Option<Instant>> = const { Cell::new(None) });
    const EVERY: Duration = Duration::from_secs(1);
    LAST.with(|last| {
        let now = Instant::now();
        if last.get().is_some_and(|t| now.duration_since(t) < EVERY) {
            return;
        }
        last.set(Some(now));
        // SAFETY: mi_collect only walks and trims this thread's heap and
        // the allocator's shared caches; it takes no pointer from us.
        unsafe { libmimalloc_sys::mi_collect(false) };
    });
}

fn run_async(f: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(give_back_idle_memory)
        .build()
    {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("palisade: cannot start the async runtime: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("palisade: {msg}");
    ExitCode::from(EXIT_USAGE)
}

fn certs_command(a: CertsArgs) -> ExitCode {
    let spec = CertSpec {
        service: a.service,
        namespace: a.namespace,
        dns: a.dns,
        ips: a.ip,
        validity_days: a.days,
    };
    let bundle = match certs::generate(&spec).and_then(|b| b.write_to(&a.out).map(|()| b)) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    println!(
        "wrote {dir}/ca.crt, {dir}/tls.crt, {dir}/tls.key for {names}",
        dir = a.out.display(),
        names = spec.dns_names().join(", ")
    );
    println!("caBundle (base64 of ca.crt, for both webhook configurations):");
    println!("{}", bundle.ca_bundle_base64());
    ExitCode::SUCCESS
}

/// Namespaces, NetworkPolicies and pods (and ReplicaSets and Jobs as
/// metadata) listed from the live cluster; `hint` ends the message when
/// the cluster cannot be reached. Its notes go to stderr.
async fn live_inventory(hint: &str) -> Result<palisade::audit::Inventory, String> {
    let inv = palisade::audit::inventory(live_client(hint).await?)
        .await
        .map_err(|e| format!("cannot list from the cluster: {e}"))?;
    for n in &inv.notes {
        eprintln!("note: {n}");
    }
    Ok(inv)
}

async fn live_client(hint: &str) -> Result<kube::Client, String> {
    kube::Client::try_default().await.map_err(|e| {
        format!("cannot reach the cluster (in-cluster config or KUBECONFIG): {e}{hint}")
    })
}

/// The live cluster's namespaces and NetworkPolicies, for `check --cluster`.
async fn live_policy_state() -> Result<StaticCluster, String> {
    let client = live_client("; use --state DIR to check against manifests").await?;
    let inv = palisade::audit::policy_state(client)
        .await
        .map_err(|e| format!("cannot list from the cluster: {e}"))?;
    Ok(inv.static_cluster().0)
}

async fn simulate_command(cmd: palisade::reach::SimulateCommand) -> ExitCode {
    let seed = if cmd.wants_cluster() {
        match live_inventory("").await {
            Ok(inv) => match inv.model_builder() {
                Ok(b) => Some(b),
                Err(e) => return fail(e),
            },
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match palisade::reach::run_seeded(cmd, seed, &mut out, &mut err) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(EXIT_USAGE)),
        Err(e) => {
            eprintln!("palisade simulate: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE))
        }
    }
}

fn load_config(path: &Path, mode: Option<Mode>) -> Result<Config, String> {
    let mut c = Config::load(path).map_err(|e| e.to_string())?;
    if let Some(m) = mode {
        c.mode = m;
    }
    Ok(c)
}

/// The policy for `check`: `--config` when given, else
/// `policies/palisade.yaml` when it exists, else the built-in default
/// (said once on stderr), so `check` runs in any repository.
fn check_config(path: Option<&Path>, mode: Option<Mode>) -> Result<Config, String> {
    let mut c = match path {
        Some(p) => Config::load(p),
        None if Path::new(DEFAULT_CONFIG).exists() => Config::load(Path::new(DEFAULT_CONFIG)),
        None => {
            eprintln!(
                "palisade: no --config and no {DEFAULT_CONFIG} here: using the built-in default policy (enforce; default-deny for Ingress and Egress required); pass --config FILE to use your own"
            );
            Config::embedded()
        }
    }
    .map_err(|e| e.to_string())?;
    if let Some(m) = mode {
        c.mode = m;
    }
    Ok(c)
}

fn check_command(a: CheckArgs) -> ExitCode {
    let config = match check_config(a.config.as_deref(), a.mode) {
        Ok(mut c) => {
            c.generate.enabled |= a.generate;
            c
        }
        Err(e) => return fail(e),
    };
    let seed = if a.cluster {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))
            .and_then(|rt| rt.block_on(live_policy_state()))
        {
            Ok(c) => Some(c),
            Err(e) => return fail(e),
        }
    } else {
        None
    };
    let opts = palisade::check::Options {
        paths: a.paths,
        state: a.state,
        namespace: a.namespace,
        user: palisade::decide::User {
            username: a.as_user,
            groups: a.as_group,
        },
        strict: a.strict,
    };
    let note = &mut |s: &palisade::manifest::Skipped| {
        eprintln!("{}", palisade::manifest::skipped::note(s));
    };
    let report = match palisade::check::run_seeded(&config, &opts, seed, note) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let rendered = match a.output {
        CheckOutput::Text => Ok(palisade::check::render_text(&report)),
        CheckOutput::Json => serde_json::to_string_pretty(&report)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        CheckOutput::Sarif => serde_json::to_string_pretty(&palisade::check_output::sarif(&report))
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        CheckOutput::Junit => palisade::check_output::junit(&report).map_err(|e| e.to_string()),
    };
    match rendered {
        Ok(s) => print!("{s}"),
        Err(e) => return fail(e),
    }
    ExitCode::from(report.exit_code())
}

async fn audit_command(a: AuditArgs) -> ExitCode {
    let config = match load_config(&a.config, None) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let inventory = match &a.state {
        Some(dir) => state_inventory(dir, a.strict),
        None => live_inventory("; use --state DIR to audit manifests").await,
    };
    let inventory = match inventory {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let report = palisade::audit::audit(&config, &inventory);
    match a.output {
        AuditOutput::Text => print!("{}", palisade::audit::render_text(&report)),
        AuditOutput::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return fail(e),
        },
        AuditOutput::Policyreport => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            print!("{}", palisade::audit::render_policy_reports(&report, now));
        }
        AuditOutput::Fixes => {
            let fixes = palisade::audit::fixes(&config, &inventory);
            if fixes.is_empty() {
                eprintln!("palisade audit: generation would create nothing");
            }
            print!("{}", palisade::audit::render_fixes(&fixes));
        }
    }
    ExitCode::from(report.exit_code())
}

/// The namespaces, policies and pods under `dir`, read one object at a
/// time; what is not a manifest is noted on stderr (an error with
/// `--strict`).
fn state_inventory(dir: &Path, strict: bool) -> Result<palisade::audit::Inventory, String> {
    use palisade::manifest::{self, Entry};
    let mut inv = palisade::audit::Inventory::default();
    let mut skipped = Vec::new();
    manifest::stream_paths(
        &[dir],
        &palisade::audit::Inventory::keeps,
        &mut |e| match e {
            Entry::Document(d) => inv.add(&d).map_err(anyhow::Error::msg),
            Entry::Skipped(s) => {
                eprintln!("{}", manifest::skipped::note(&s));
                skipped.push(s);
                Ok(())
            }
        },
    )
    .map_err(|e| e.to_string())?;
    manifest::skipped::verdict(skipped, strict).map_err(|e| e.to_string())?;
    Ok(inv)
}

const DEMO_CLUSTER: &str = include_str!("../policies/examples/demo-cluster.yaml");
const DEMO_REVIEWS: [(&str, &str, &str, &str); 3] = [
    (
        "validate-pod.json",
        include_str!("../policies/examples/reviews/validate-pod.json"),
        "/validate",
        "a pod in fx-apps, which has no default-deny NetworkPolicy: denied, with the policy to apply",
    ),
    (
        "validate-allow-all-policy.json",
        include_str!("../policies/examples/reviews/validate-allow-all-policy.json"),
        "/validate",
        "an allow-all NetworkPolicy in fx-apps (environment=prod): denied",
    ),
    (
        "mutate-pod.json",
        include_str!("../policies/examples/reviews/mutate-pod.json"),
        "/mutate",
        "the same pod at the mutating webhook: a base64 JSON Patch with its role label and sidecar",
    ),
];

async fn serve_command(a: ServeArgs) -> ExitCode {
    // Held to the end: dropping it writes out the log lines still queued.
    let _log = palisade::server::log::init();
    let mut config = match (&a.config, a.demo) {
        (Some(path), _) => Config::load(path),
        (None, true) => Config::embedded(),
        (None, false) => Config::load(Path::new("policies/palisade.yaml")),
    }
    .map_err(|e| e.to_string());
    if let (Ok(c), Some(m)) = (&mut config, a.mode) {
        c.mode = m;
    }
    if let (Ok(c), true) = (&mut config, a.preview) {
        c.simulate.preview = true;
    }
    if let (Ok(c), true) = (&mut config, a.generate) {
        c.generate.enabled = true;
    }
    let config = match config {
        Ok(c) => Arc::new(c),
        Err(e) => return fail(e),
    };
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let any = |port: u16| SocketAddr::from(([0, 0, 0, 0], port));
    let (listen, metrics_listen) = if a.demo {
        (
            a.listen.unwrap_or(local(serve::DEFAULT_WEBHOOK_PORT)),
            a.metrics_listen
                .unwrap_or(local(serve::DEFAULT_METRICS_PORT)),
        )
    } else {
        (
            a.listen.unwrap_or(any(serve::DEFAULT_WEBHOOK_PORT)),
            a.metrics_listen.unwrap_or(any(serve::DEFAULT_METRICS_PORT)),
        )
    };

    let mut demo_dir = None;
    let (tls_cert, tls_key) = if a.demo {
        match prepare_demo(listen) {
            Ok(dir) => {
                let paths = (dir.join(certs::CERT_FILE), dir.join(certs::KEY_FILE));
                demo_dir = Some(dir);
                paths
            }
            Err(e) => return fail(e),
        }
    } else {
        (a.tls_cert.clone(), a.tls_key.clone())
    };

    let mut live: Option<kube::Client> = None;
    let cluster: Arc<dyn ClusterView> = if a.demo && a.state.is_none() {
        let mut m = palisade::manifest::Manifests::default();
        palisade::manifest::read_text(Path::new("<demo-cluster.yaml>"), DEMO_CLUSTER, &mut m);
        match static_cluster(&config, &m) {
            Ok(c) => Arc::new(c),
            Err(e) => return fail(e),
        }
    } else if let Some(dir) = &a.state {
        match state_cluster(&config, dir, a.strict) {
            Ok(c) => Arc::new(c),
            Err(e) => return fail(e),
        }
    } else {
        let client = match kube_client().await {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let (view, _tasks) = KubeCluster::start(client.clone(), config.simulate.preview_budget());
        live = Some(client);
        view
    };

    // Generation writes into the live cluster; a directory of manifests
    // has nobody to write to.
    let generate = config.generate.enabled && live.is_some();
    if config.generate.enabled && !generate {
        tracing::warn!("generation needs the live cluster: with --state or --demo it does not run");
    }
    let manage = (a.manage_certs || config.certificates.manage) && !a.demo;
    let client = if manage || generate {
        match live.clone() {
            Some(c) => Some(c),
            None => match kube_client().await {
                Ok(c) => Some(c),
                Err(e) => return fail(e),
            },
        }
    } else {
        None
    };
    // One election for every writer: certificates and generation write
    // from the same replica.
    let election = client
        .as_ref()
        .map(|c| Election::start(c.clone(), &a.namespace));
    let managed = match (&client, &election) {
        (Some(c), Some(e)) if manage => Some(Managed::start_with(
            c.clone(),
            Names::new(&a.namespace),
            Policy::default(),
            e.leadership.clone(),
        )),
        _ => None,
    };
    let generating = match &election {
        Some(e) if generate => Some(Generating {
            scope: Scope::started_at(palisade::certmgr::unix_now()),
            leadership: e.leadership.clone(),
        }),
        _ => None,
    };
    let tls = match &managed {
        Some(m) => TlsSource::Managed(Arc::clone(&m.replica)),
        None => TlsSource::Files {
            cert: tls_cert,
            key: tls_key,
        },
    };

    let settings = Settings {
        config: Arc::clone(&config),
        cluster: Arc::clone(&cluster),
        listen,
        metrics_listen,
        tls,
        limits: ListenLimits {
            max_connections: a.max_connections,
            ..ListenLimits::default()
        },
        body: BodyLimits {
            max_bytes: a.max_body_bytes,
            ..BodyLimits::default()
        },
        generating: generating.clone(),
    };
    let server = match serve::start(settings).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let generator = match (&client, generating) {
        (Some(client), Some(g)) => {
            tracing::info!(
                "generation is on: the leader creates the default-deny of new namespaces"
            );
            Some(
                Writer {
                    client: client.clone(),
                    cluster,
                    config: Arc::clone(&config),
                    scope: g.scope,
                    leadership: g.leadership,
                    metrics: Arc::clone(&server.metrics),
                }
                .spawn(),
            )
        }
        _ => None,
    };
    tracing::info!(mode = %config.mode, "decisions default to this mode");
    if let Some(dir) = demo_dir {
        print_demo(&dir, server.https_addr, server.metrics_addr);
    }
    serve::termination().await;
    tracing::info!("shutting down: finishing in-flight reviews");
    server.shutdown();
    // Give the Lease up while the reviews in flight drain, so another
    // replica takes over the certificates and generation at once.
    if let Some(g) = generator {
        g.abort();
    }
    let release = async {
        if let Some(m) = managed {
            m.stop(std::time::Duration::from_secs(3)).await;
        }
        if let Some(e) = election {
            e.stop(std::time::Duration::from_secs(3)).await;
        }
    };
    let (done, ()) = tokio::join!(server.wait(), release);
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("palisade: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A client for the cluster palisade runs in (in-cluster config, else KUBECONFIG).
async fn kube_client() -> Result<kube::Client, String> {
    kube::Client::try_default().await.map_err(|e| {
        format!(
            "cannot reach the cluster (in-cluster config or KUBECONFIG): {e}; use --state DIR or --demo to run without one"
        )
    })
}

/// A cluster view of a set of manifests, with the reachability model for
/// admission previews when the config asks for it.
fn static_cluster(
    config: &Config,
    m: &palisade::manifest::Manifests,
) -> Result<StaticCluster, String> {
    let mut c = StaticCluster::new();
    c.apply_all(m).map_err(|e| e.to_string())?;
    if config.simulate.preview {
        let mut b = palisade::reach::ModelBuilder::new();
        b.documents(m).map_err(|e| e.to_string())?;
        c.set_reach_model(b.build());
    }
    Ok(c)
}

/// The cluster of `serve --state DIR`, read one object at a time so that
/// memory stays that of the index (and, with the preview, of the model's
/// summaries) however large the files: kinds neither needs are passed
/// over unparsed. What is not a manifest is logged (an error with
/// `--strict`).
fn state_cluster(config: &Config, dir: &Path, strict: bool) -> Result<StaticCluster, String> {
    use palisade::manifest::{self, Entry};
    let mut c = StaticCluster::new();
    let mut skipped = Vec::new();
    let mut note = |s: palisade::manifest::Skipped| {
        tracing::warn!(
            file = %s.source.display(),
            line = s.line,
            document = s.index,
            reason = %s.reason,
            "skipped a file or document in --state that is not a manifest"
        );
        skipped.push(s);
    };
    if config.simulate.preview {
        let mut b = palisade::reach::ModelBuilder::new();
        manifest::stream_paths(&[dir], &manifest::all_kinds, &mut |e| match e {
            Entry::Document(d) => {
                c.apply(&d)?;
                b.document(&d)?;
                Ok::<(), anyhow::Error>(())
            }
            Entry::Skipped(s) => {
                note(s);
                Ok(())
            }
        })
        .map_err(|e| e.to_string())?;
        c.set_reach_model(b.build());
    } else {
        c.stream(&[dir], &mut note).map_err(|e| e.to_string())?;
    }
    manifest::skipped::verdict(skipped, strict).map_err(|e| e.to_string())?;
    Ok(c)
}

/// Writes a self-signed certificate for 127.0.0.1/localhost and the sample
/// reviews into a directory under the system temp dir.
fn prepare_demo(listen: SocketAddr) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join("palisade-demo");
    let spec = CertSpec {
        service: "palisade".into(),
        namespace: "palisade-system".into(),
        dns: vec!["localhost".into()],
        ips: vec![listen.ip(), IpAddr::from([127, 0, 0, 1])],
        validity_days: 7,
    };
    let bundle = certs::generate(&spec).map_err(|e| e.to_string())?;
    bundle.write_to(&dir).map_err(|e| e.to_string())?;
    let reviews = dir.join("reviews");
    std::fs::create_dir_all(&reviews)
        .map_err(|e| format!("cannot create {}: {e}", reviews.display()))?;
    for (name, body, _, _) in DEMO_REVIEWS {
        let path = reviews.join(name);
        std::fs::write(&path, body).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(dir)
}

fn print_demo(dir: &Path, https: SocketAddr, metrics: SocketAddr) {
    let host = if https.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], https.port()))
    } else {
        https
    };
    println!("palisade demo: webhooks on https://{host}, metrics on http://{metrics}/metrics");
    println!(
        "cluster: namespaces fx-apps (no default-deny, proxy enabled) and payments (fenced); config: the embedded policies/palisade.yaml"
    );
    println!("Try it; each command works as printed (Ctrl-C stops the demo):");
    for (name, _, path, what) in DEMO_REVIEWS {
        println!();
        println!("  # {what}");
        println!(
            "  curl -sS --cacert {ca} -H 'Content-Type: application/json' --data-binary @{body} https://{host}{path}",
            ca = dir.join(certs::CA_FILE).display(),
            body = dir.join("reviews").join(name).display(),
        );
    }
    println!();
    println!("  # decisions counted");
    println!("  curl -sS http://{metrics}/metrics | grep palisade_decisions_total");
}
