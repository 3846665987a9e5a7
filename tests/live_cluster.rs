//! The live cluster as users see it, against a local server that answers
//! list and watch calls the way the API server does
//! (tests/common/fake_api.rs): pods named by the workload a user wrote
//! (Deployment, CronJob) in the preview's watch and in `simulate
//! --cluster`, drift (`simulate diff --cluster`) equal to the same cluster
//! exported as `--state`, `check --cluster`, `audit`, and RBAC that
//! forbids ReplicaSets.
//!
//! The list responses are `docs/simulate-example/cluster/cluster.yaml`
//! (the objects as `kubectl get -o yaml` exports them) served as the API
//! server serves typed lists, or objects written here in the same shapes
//! (ownerReferences as in the captured
//! `mutating-pod-create-replicaset-controller.json`).

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::fake_api::{Collection, FakeApi, Seen};
use common::until;
use palisade::cluster::kube::KubeCluster;
use palisade::cluster::{ClusterView, PreviewModel};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_palisade");
const NAMESPACES: &str = "/api/v1/namespaces";
const POLICIES: &str = "/apis/networking.k8s.io/v1/networkpolicies";
const PODS: &str = "/api/v1/pods";
const REPLICA_SETS: &str = "/apis/apps/v1/replicasets";
const JOBS: &str = "/apis/batch/v1/jobs";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The items of the example cluster export.
fn example_cluster() -> Vec<Value> {
    let path = repo().join("docs/simulate-example/cluster/cluster.yaml");
    let list: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    list["items"].as_array().unwrap().clone()
}

/// Runs the binary with `KUBECONFIG` pointing at `api`, from the repository
/// root (where the default config is).
async fn palisade(api: &FakeApi, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(BIN)
            .args(&args)
            .current_dir(repo())
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .expect("run palisade");
        drop(dir);
        out
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The same command over `--state DIR` (the export), for comparison.
async fn offline(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&args)
            .current_dir(repo())
            .output()
            .expect("run palisade")
    })
    .await
    .unwrap()
}

const EXPORT: &str = "docs/simulate-example/cluster";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_cluster_names_deployments_and_drift_equals_the_export() {
    let api = FakeApi::start(Collection::from_export(&example_cluster())).await;

    // list: the same as the export read offline, by Deployment names.
    let live = palisade(&api, &["simulate", "list", "--cluster"]).await;
    assert!(live.status.success(), "{}", text(&live.stderr));
    let off = offline(&["simulate", "list", "--state", EXPORT]).await;
    assert_eq!(text(&live.stdout), text(&off.stdout));
    let out = text(&live.stdout);
    assert!(
        out.contains("monitoring/prometheus[Deployment]\n  => shop/db[Deployment]"),
        "{out}"
    );
    assert!(!out.contains("ReplicaSet"), "{out}");

    // eval finds `web` by its Deployment's name.
    let e = palisade(
        &api,
        &[
            "simulate",
            "eval",
            "--cluster",
            "--from",
            "web",
            "--to",
            "db",
            "--port",
            "5432",
        ],
    )
    .await;
    assert_eq!(e.status.code(), Some(0), "{}", text(&e.stderr));
    assert!(
        text(&e.stdout)
            .starts_with("ALLOWED: shop/web[Deployment] -> shop/db[Deployment] on TCP 5432"),
        "{}",
        text(&e.stdout)
    );

    // Drift: the pull request applied on top of the live cluster, with and
    // without --prune, exactly as over the export.
    for extra in [&[][..], &["--prune"][..], &["--output", "json"][..]] {
        let mut live_args = vec!["simulate", "diff", "--cluster"];
        live_args.extend(extra);
        live_args.push("docs/simulate-example/pr");
        let live = palisade(&api, &live_args).await;
        let mut off_args = vec!["simulate", "diff", "--state", EXPORT];
        off_args.extend(extra);
        off_args.push("docs/simulate-example/pr");
        let off = offline(&off_args).await;
        assert!(live.status.success(), "{extra:?}: {}", text(&live.stderr));
        assert_eq!(text(&live.stdout), text(&off.stdout), "{extra:?}");
    }
    let pruned = palisade(
        &api,
        &[
            "simulate",
            "diff",
            "--cluster",
            "--prune",
            "--fail-on",
            "open",
            "docs/simulate-example/main",
        ],
    )
    .await;
    assert_eq!(
        text(&pruned.stdout),
        "- monitoring/prometheus[Deployment] => shop/web[Deployment] : TCP 8080\n"
    );
    assert_eq!(pruned.status.code(), Some(0), "closing is not opening");
    let opened = palisade(
        &api,
        &[
            "simulate",
            "diff",
            "--cluster",
            "--fail-on",
            "open",
            "docs/simulate-example/pr",
        ],
    )
    .await;
    assert_eq!(opened.status.code(), Some(1), "{}", text(&opened.stdout));

    // ReplicaSets were read as metadata only.
    let rs: Vec<Seen> = api
        .seen()
        .into_iter()
        .filter(|s| s.uri.starts_with(REPLICA_SETS))
        .collect();
    assert!(!rs.is_empty());
    assert!(
        rs.iter()
            .all(|s| s.accept.contains("as=PartialObjectMetadataList")),
        "{rs:?}"
    );
}

/// RBAC without ReplicaSets and Jobs (a CI identity set up before they
/// were needed): pods keep their ReplicaSet's name, and stderr says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_replicasets_are_a_note_not_an_error() {
    let api = FakeApi::start(Collection::from_export(&example_cluster())).await;
    api.forbid(REPLICA_SETS);
    api.forbid(JOBS);
    let o = palisade(&api, &["simulate", "list", "--cluster"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout)
            .contains("shop/web-85854c6447[ReplicaSet]\n  => shop/db-6b9d7f6c8d[ReplicaSet]"),
        "{}",
        text(&o.stdout)
    );
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "note: cannot list replicasets (replicasets.apps is forbidden: User \"system:anonymous\" cannot list resource \"replicasets\" in API group \"apps\" at the cluster scope): \
             pods are named by their ReplicaSet"
        ),
        "{err}"
    );
    assert!(
        err.contains("note: cannot list jobs (jobs.batch is forbidden"),
        "{err}"
    );

    // Pods themselves are not optional: that is an error, exit 2.
    api.forbid(PODS);
    let o = palisade(&api, &["simulate", "list", "--cluster"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("pods is forbidden"),
        "{}",
        text(&o.stderr)
    );
}

/// `check --cluster` decides against the live namespaces and policies,
/// and reads nothing else; `audit` names a pod's Deployment and says to
/// restart it. Every request these commands and `simulate --cluster` make
/// is granted by deploy/reader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_audit_read_the_live_cluster() {
    let mut items = example_cluster();
    // A db pod made before palisade was installed: no role label.
    for i in &mut items {
        if i["kind"] == "Pod" && i["metadata"]["labels"]["app"] == "db" {
            i["spec"]["containers"][0]["image"] = json!("postgres:16");
        }
    }
    let api = FakeApi::start(Collection::from_export(&items)).await;
    let dir = tempfile::tempdir().unwrap();
    let pod = |ns: &str| {
        let path = dir.path().join(format!("{ns}.yaml"));
        std::fs::write(
            &path,
            format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: {ns}}}\nspec: {{containers: [{{name: c, image: x}}]}}\n"),
        )
        .unwrap();
        path.to_str().unwrap().to_owned()
    };
    // monitoring has no default-deny in the live cluster; shop has one.
    let denied = palisade(&api, &["check", "--cluster", &pod("monitoring")]).await;
    assert_eq!(denied.status.code(), Some(1), "{}", text(&denied.stderr));
    assert!(
        text(&denied.stdout)
            .contains("Pod monitoring/p: namespace monitoring has no default-deny NetworkPolicy"),
        "{}",
        text(&denied.stdout)
    );
    let allowed = palisade(&api, &["check", "--cluster", &pod("shop")]).await;
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stdout));
    assert!(
        api.seen().iter().all(|s| !s.uri.starts_with(PODS)),
        "check reads namespaces and policies only"
    );
    let both = palisade(
        &api,
        &["check", "--cluster", "--state", EXPORT, &pod("shop")],
    )
    .await;
    assert_eq!(both.status.code(), Some(2));

    let audit = palisade(&api, &["audit", "--output", "json"]).await;
    assert_eq!(audit.status.code(), Some(1), "{}", text(&audit.stderr));
    let report: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let db = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "missing-role-label")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(db["name"], "db-6b9d7f6c8d-w2hzr");
    assert_eq!(db["workload"], "shop/db[Deployment]");
    let message = db["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "pod shop/db-6b9d7f6c8d-w2hzr (of shop/db[Deployment]) has no palisade.io/role label"
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "Fix: restart its workload: kubectl -n shop rollout restart deployment/db, so"
        ),
        "{message}"
    );

    let sim = palisade(&api, &["simulate", "list", "--cluster"]).await;
    assert!(sim.status.success());
    assert_reader_role_grants(&api.seen());
}

/// Every request made is a get or list (never a watch, never a write)
/// that `deploy/reader/clusterrole.yaml` grants, or discovery (`/apis`,
/// `/apis/GROUP/VERSION`: which cluster-wide policy kinds are served),
/// which every authenticated user may read.
fn assert_reader_role_grants(seen: &[Seen]) {
    let role: k8s_openapi::api::rbac::v1::ClusterRole = serde_saphyr::from_str(
        &std::fs::read_to_string(repo().join("deploy/reader/clusterrole.yaml")).unwrap(),
    )
    .unwrap();
    let rules = role.rules.unwrap_or_default();
    for s in seen {
        assert_eq!(s.method, "GET", "{s:?}");
        assert!(!s.uri.contains("watch="), "{s:?}");
        let path = s.uri.split('?').next().unwrap();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if matches!(parts.as_slice(), ["apis"] | ["apis", _, _]) {
            continue;
        }
        let (group, resource, verb) = match parts.as_slice() {
            ["api", "v1", resource] => ("", *resource, "list"),
            ["apis", group, _, resource] => (*group, *resource, "list"),
            ["api", "v1", resource, _] => ("", *resource, "get"),
            other => panic!("unexpected request {other:?}"),
        };
        assert!(
            rules.iter().any(|r| {
                r.api_groups.iter().flatten().any(|g| g == group)
                    && r.resources.iter().flatten().any(|x| x == resource)
                    && r.verbs.iter().any(|v| v == verb)
            }),
            "deploy/reader does not grant {verb} on {group}/{resource}"
        );
    }
}

fn pod(name: &str, labels: Value, owner: Option<(&str, &str, &str)>) -> Value {
    let refs = owner.map(|(kind, name, uid)| {
        let api_version = if kind == "Job" { "batch/v1" } else { "apps/v1" };
        json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true}])
    });
    json!({"metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "resourceVersion": "7", "labels": labels, "ownerReferences": refs},
           "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]},
           "status": {"phase": "Running"}})
}

fn owner_object(name: &str, uid: &str, controller: Option<(&str, &str)>) -> Value {
    let refs = controller.map(|(kind, name)| {
        let api_version = if kind == "CronJob" {
            "batch/v1"
        } else {
            "apps/v1"
        };
        json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": format!("uid-{name}"),
                "controller": true, "blockOwnerDeletion": true}])
    });
    json!({"metadata": {"name": name, "namespace": "shop", "uid": uid, "resourceVersion": "5",
            "ownerReferences": refs}, "spec": {}})
}

/// A Deployment's pod, a CronJob's Job's pod, a bare ReplicaSet's pod,
/// and a pod whose ReplicaSet has not been listed.
fn preview_cluster() -> Vec<Collection> {
    let ns = json!({"metadata": {"name": "shop", "uid": "uid-shop", "resourceVersion": "1",
        "labels": {"kubernetes.io/metadata.name": "shop"}}, "status": {"phase": "Active"}});
    vec![
        Collection::held(NAMESPACES, "v1", "Namespace", vec![ns]),
        Collection::held(POLICIES, "networking.k8s.io/v1", "NetworkPolicy", vec![]),
        Collection::held(
            PODS,
            "v1",
            "Pod",
            vec![
                pod(
                    "web-85854c6447-7xk2p",
                    json!({"app": "web", "pod-template-hash": "85854c6447"}),
                    Some(("ReplicaSet", "web-85854c6447", "uid-rs-web")),
                ),
                pod(
                    "backup-29034720-q8z4n",
                    json!({"job-name": "backup-29034720"}),
                    Some(("Job", "backup-29034720", "uid-job")),
                ),
                pod(
                    "cache-4kq9d",
                    json!({"app": "cache"}),
                    Some(("ReplicaSet", "cache", "uid-rs-cache")),
                ),
                pod(
                    "api-5d9f8b7c6d-z9x2w",
                    json!({"app": "api", "pod-template-hash": "5d9f8b7c6d"}),
                    Some(("ReplicaSet", "api-5d9f8b7c6d", "uid-rs-api")),
                ),
            ],
        ),
        Collection::held(
            REPLICA_SETS,
            "apps/v1",
            "ReplicaSet",
            vec![
                owner_object("web-85854c6447", "uid-rs-web", Some(("Deployment", "web"))),
                owner_object("cache", "uid-rs-cache", None),
            ],
        ),
        Collection::held(
            JOBS,
            "batch/v1",
            "Job",
            vec![owner_object(
                "backup-29034720",
                "uid-job",
                Some(("CronJob", "backup")),
            )],
        ),
    ]
}

fn names(cluster: &KubeCluster) -> Vec<String> {
    match cluster.preview_model() {
        PreviewModel::Ready(m) => m.workloads().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The preview's model follows owners as the watches deliver them: a
/// ReplicaSet seen after its pod renames the pod's workload, and one
/// adopted by another Deployment follows its new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_watch_names_workloads_by_their_top_level_owner() {
    common::init();
    let api = FakeApi::start(preview_cluster()).await;
    let (cluster, tasks) = KubeCluster::start(api.client(), Some(64 << 20));
    let first = [
        "shop/api-5d9f8b7c6d[ReplicaSet]",
        "shop/backup[CronJob]",
        "shop/cache[ReplicaSet]",
        "shop/web[Deployment]",
    ];
    until("the first model", || names(&cluster) == first).await;
    let meta_only = |path: &str| {
        api.seen()
            .iter()
            .filter(|s| s.uri.starts_with(path))
            .all(|s| s.accept.contains("as=PartialObjectMetadata"))
    };
    assert!(
        meta_only(REPLICA_SETS) && meta_only(JOBS),
        "{:?}",
        api.seen()
    );

    until("the ReplicaSet watch", || {
        api.seen()
            .iter()
            .any(|s| s.uri.starts_with(REPLICA_SETS) && s.uri.contains("watch=true"))
    })
    .await;
    api.push(
        REPLICA_SETS,
        "ADDED",
        owner_object("api-5d9f8b7c6d", "uid-rs-api", Some(("Deployment", "api"))),
    );
    until("the late ReplicaSet", || {
        names(&cluster).contains(&"shop/api[Deployment]".to_owned())
    })
    .await;

    api.push(
        REPLICA_SETS,
        "MODIFIED",
        owner_object(
            "web-85854c6447",
            "uid-rs-web",
            Some(("Deployment", "web-v2")),
        ),
    );
    until("the adoption", || {
        names(&cluster).contains(&"shop/web-v2[Deployment]".to_owned())
    })
    .await;

    api.push(
        REPLICA_SETS,
        "DELETED",
        owner_object("cache", "uid-rs-cache", None),
    );
    api.push(
        JOBS,
        "DELETED",
        owner_object("backup-29034720", "uid-job", Some(("CronJob", "backup"))),
    );
    until("the deletions", || {
        names(&cluster)
            == [
                "shop/api[Deployment]",
                "shop/backup-29034720[Job]",
                "shop/cache[ReplicaSet]",
                "shop/web-v2[Deployment]",
            ]
    })
    .await;
    for t in tasks {
        t.abort();
    }
}

/// An RBAC from before the preview needed ReplicaSets and Jobs: the
/// preview still works, pods keep their controllers' names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_goes_on_when_replicasets_are_forbidden() {
    common::init();
    let api = FakeApi::start(preview_cluster()).await;
    api.forbid(REPLICA_SETS);
    let (cluster, tasks) = KubeCluster::start(api.client(), Some(64 << 20));
    until("a model without ReplicaSets", || {
        names(&cluster)
            == [
                "shop/api-5d9f8b7c6d[ReplicaSet]",
                "shop/backup[CronJob]",
                "shop/cache[ReplicaSet]",
                "shop/web-85854c6447[ReplicaSet]",
            ]
    })
    .await;
    for t in tasks {
        t.abort();
    }
}

/// Every `$ palisade ...` session in docs/simulate.md prints what the doc
/// says it prints, and `$ echo $?` after one gives its exit code.
#[test]
fn the_documented_sessions_print_what_the_doc_says() {
    let doc = std::fs::read_to_string(repo().join("docs/simulate.md")).unwrap();
    let mut sessions = 0;
    for block in doc.split("```\n").skip(1).step_by(2) {
        if !block.starts_with("$ palisade ") {
            continue;
        }
        // Each command with the lines up to the next prompt.
        let mut steps: Vec<(String, String)> = Vec::new();
        for line in block.lines() {
            match line.strip_prefix("$ ") {
                Some(cmd) => steps.push((cmd.to_owned(), String::new())),
                None => {
                    let (_, out) = steps.last_mut().expect("a block starts with a prompt");
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        let mut last: Option<i32> = None;
        for (cmd, want) in steps {
            if cmd == "echo $?" {
                assert_eq!(
                    last.map(|c| c.to_string()).as_deref(),
                    Some(want.trim_end()),
                    "{cmd}"
                );
                continue;
            }
            let args: Vec<&str> = cmd.split_whitespace().skip(1).collect();
            let out = std::process::Command::new(BIN)
                .args(&args)
                .current_dir(repo())
                .output()
                .unwrap();
            // Blank lines separate commands in the doc.
            assert_eq!(
                text(&out.stdout).trim_end(),
                want.trim_end(),
                "{cmd}\n{}",
                text(&out.stderr)
            );
            last = out.status.code();
            sessions += 1;
        }
    }
    assert!(sessions >= 10, "only {sessions} documented commands found");
}
