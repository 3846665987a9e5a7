//! The mutating webhook: the owned role label and the access-proxy sidecar.
//!
//! Pod CREATE only. The decision is planned in plain data first (the
//! sidecar's [`InjectionPlan`], the role's [`LabelPlan`]) and rendered to
//! JSON Patch in one place ([`render`]). The API server may call again with
//! the pod this patch produced (`reinvocationPolicy: IfNeeded`), so running
//! on its own output must find nothing left to do.

use k8s_openapi::api::core::v1::{Pod, PodSpec};

use super::request::{Object, Operation, Request};
use super::validate::{governing_mode, request_namespace};
use super::verdict::{RuleId, Skip, Verdict};
use crate::cluster::NamespaceView;
use crate::config::{Config, PROXY_STATUS_ANNOTATION};
use crate::patch::PatchBuilder;
use crate::roles::{self, LabelPlan, PodFacts};
use crate::selector::Labels;
use crate::sidecar::{self, Conflict, INJECTED, Injection, InjectionPlan, SwitchSource};

/// Decides a request for the mutating webhook.
pub fn mutate(cfg: &Config, req: &Request, view: &NamespaceView) -> Verdict {
    let Some(ns) = request_namespace(req) else {
        return Verdict::skip(cfg.mode, Skip::NotCovered);
    };
    let mode = governing_mode(cfg, req, &ns, view);
    if cfg.is_exempt(&ns) {
        return Verdict::skip(mode, Skip::Exempt);
    }
    let (Some(Object::Pod(pod)), Operation::Create, None) =
        (&req.object, req.operation, &req.sub_resource)
    else {
        return Verdict::skip(mode, Skip::NotCovered);
    };
    let mut v = Verdict::new(mode);
    let switch = sidecar::switch(
        &cfg.proxy.label,
        view.labels(),
        pod.metadata.annotations.as_ref(),
    );
    if let Some(value) = &switch.ignored_annotation {
        let fallback = match switch.source {
            SwitchSource::NamespaceLabel if switch.enabled => "the namespace enables the proxy",
            SwitchSource::NamespaceLabel => "the namespace disables the proxy",
            _ => "the proxy stays off",
        };
        v.warnings.push(format!(
            "{}: annotation {}={value} is neither {} nor {} and is ignored; {fallback}",
            req.subject(),
            cfg.proxy.label,
            sidecar::ENABLED,
            sidecar::DISABLED,
        ));
    }

    let injection = match sidecar::plan(&cfg.proxy, &switch, pod) {
        InjectionPlan::Inject(i) => Some(i),
        InjectionPlan::HostNetwork => {
            v.warnings.push(format!(
                "{}: hostNetwork pods get no access-proxy sidecar: NetworkPolicy does not apply \
                 to them, so traffic could go around the proxy, and its ports would be taken on \
                 the node itself. Annotate the pod {}: {} to say this is intended.",
                req.subject(),
                cfg.proxy.label,
                sidecar::DISABLED,
            ));
            None
        }
        InjectionPlan::Conflict(c) => {
            v.violate(
                RuleId::SidecarConflict,
                conflict_message(cfg, req, &c),
                false,
            );
            None
        }
        InjectionPlan::Disabled | InjectionPlan::AlreadyInjected(_) | InjectionPlan::NoSpec => None,
    };

    // The role is derived from the pod as it will be admitted, sidecar
    // included: that is the pod the validating webhook checks the label
    // against, and the pod a re-invocation brings back, so both agree.
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    // Rules never read the role label itself, so the pod's labels serve
    // as they are.
    let empty_labels = Labels::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty_labels);
    let label = roles::plan_label(
        cfg,
        &PodFacts {
            namespace: &ns,
            labels,
            spec,
            injecting: injection.as_deref(),
        },
        labels.get(&cfg.roles.label).map(String::as_str),
    );

    v.patch = render(cfg, pod, &label, injection.as_deref());
    v.changes.extend(label.describe(&cfg.roles.label));
    v.changes
        .extend(injection.as_deref().map(Injection::describe));
    if !v.allowed() {
        // A denied pod is changed by nothing: logs and audit annotations
        // must not claim a label or a sidecar went anywhere.
        v.patch.clear();
        v.changes.clear();
    }
    v
}

/// The one place plans become JSON Patch, against the pod as it was sent.
pub fn render(
    cfg: &Config,
    pod: &Pod,
    label: &LabelPlan<'_>,
    injection: Option<&Injection>,
) -> Vec<json_patch::PatchOperation> {
    const LABELS: [&str; 2] = ["metadata", "labels"];
    const ANNOTATIONS: [&str; 2] = ["metadata", "annotations"];
    let mut b = PatchBuilder::new();
    let labels = pod.metadata.labels.as_ref();
    match label {
        LabelPlan::Keep => {}
        LabelPlan::Set { role, .. } => b.set_in_map(&LABELS, labels, &cfg.roles.label, role),
        LabelPlan::Remove { .. } => b.remove_from_map(&LABELS, labels, &cfg.roles.label),
    }
    let (Some(i), Some(spec)) = (injection, pod.spec.as_ref()) else {
        return b.build();
    };
    b.prepend(
        &["spec", "initContainers"],
        spec.init_containers.as_ref().map_or(0, Vec::len),
        i.json.init_containers.clone(),
    );
    b.append(
        &["spec", "containers"],
        spec.containers.len(),
        i.json.containers.clone(),
    );
    b.append(
        &["spec", "volumes"],
        spec.volumes.as_ref().map_or(0, Vec::len),
        i.json.volumes.clone(),
    );
    b.set_in_map(
        &ANNOTATIONS,
        pod.metadata.annotations.as_ref(),
        PROXY_STATUS_ANNOTATION,
        INJECTED,
    );
    b.build()
}

fn conflict_message(cfg: &Config, req: &Request, c: &Conflict) -> String {
    let proxy = cfg.proxy.template.proxy_name();
    let mut clashes = Vec::new();
    let mut fixes = Vec::new();
    let quoted = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.containers.is_empty() {
        let s = if c.containers.len() > 1 { "s" } else { "" };
        clashes.push(format!(
            "the pod already has container{s} {}, which the sidecar template also defines",
            quoted(&c.containers)
        ));
        fixes.push(format!("rename container{s} {}", quoted(&c.containers)));
    }
    if !c.volumes.is_empty() {
        let s = if c.volumes.len() > 1 { "s" } else { "" };
        clashes.push(format!(
            "the pod already has volume{s} {}, which the sidecar template also defines",
            quoted(&c.volumes)
        ));
        fixes.push(format!("rename volume{s} {}", quoted(&c.volumes)));
    }
    for p in &c.ports {
        clashes.push(format!(
            "container {:?} already uses port {}/{}, which sidecar container {:?} listens on",
            p.container, p.port, p.protocol, p.proxy
        ));
        fixes.push(format!(
            "move container {:?} off port {}/{}",
            p.container, p.port, p.protocol
        ));
    }
    format!(
        "{subject}: cannot inject the access-proxy sidecar {proxy:?}: {clashes}.\n\
         Injecting it anyway would give the pod duplicate names (rejected by the API server) \
         or two processes on one port (the proxy would never start).\n\
         Fix: {fixes} in the pod, or opt the pod out of the proxy with the annotation {label}: {disabled}.",
        subject = req.subject(),
        clashes = clashes.join("; "),
        fixes = fixes.join(", "),
        label = cfg.proxy.label,
        disabled = sidecar::DISABLED,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EMBEDDED_SIDECAR;
    use crate::decide::{Decision, Gvk, User};
    use crate::mode::Mode;
    use crate::posture::NamespaceInfo;
    use serde_json::{Value, json};

    fn cfg() -> Config {
        Config::from_yaml(
            r#"apiVersion: palisade.io/v1alpha1
kind: PalisadeConfig
roles:
  rules:
    - role: database
      match: {images: ["postgres:*"]}
    - role: proxied
      match: {images: ["*/envoyproxy/envoy-distroless:*"]}
"#,
            EMBEDDED_SIDECAR,
        )
        .unwrap()
    }

    fn request(op: Operation, ns: &str, pod: Value) -> Request {
        Request {
            uid: "u-1".into(),
            kind: Gvk::new("", "v1", "Pod"),
            sub_resource: None,
            operation: op,
            namespace: Some(ns.into()),
            name: Some("p".into()),
            user: User::default(),
            dry_run: false,
            object: Some(Object::Pod(Box::new(serde_json::from_value(pod).unwrap()))),
            old_object: None,
        }
    }

    fn view(ns: &str, labels: &[(&str, &str)]) -> NamespaceView {
        NamespaceView {
            name: ns.into(),
            namespace: Some(NamespaceInfo {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                terminating: false,
                created: None,
            }),
            policies: Vec::new(),
            ..Default::default()
        }
    }

    fn apply(pod: &Value, v: &Verdict) -> Value {
        let mut out = pod.clone();
        json_patch::patch(&mut out, v.effective_patch()).unwrap();
        out
    }

    fn db_pod() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}})
    }

    #[test]
    fn only_pod_create_outside_exempt_namespaces_is_decided() {
        let c = cfg();
        let on = view("shop", &[("palisade.io/proxy", "enabled")]);
        let mut r = request(Operation::Update, "shop", db_pod());
        assert_eq!(mutate(&c, &r, &on).skipped, Some(Skip::NotCovered));
        r.operation = Operation::Create;
        r.sub_resource = Some("status".into());
        assert_eq!(mutate(&c, &r, &on).skipped, Some(Skip::NotCovered));
        let r = request(Operation::Create, "kube-system", db_pod());
        let v = mutate(
            &c,
            &r,
            &view("kube-system", &[("palisade.io/proxy", "enabled")]),
        );
        assert_eq!(v.skipped, Some(Skip::Exempt));
        assert!(v.patch.is_empty());
        let mut r = request(Operation::Create, "shop", db_pod());
        r.kind = Gvk::new("", "v1", "ConfigMap");
        r.object = Some(Object::Other(r.kind.clone()));
        assert_eq!(mutate(&c, &r, &on).skipped, Some(Skip::NotCovered));
    }

    #[test]
    fn labels_and_injects_and_says_so() {
        let c = cfg();
        let r = request(Operation::Create, "shop", db_pod());
        let v = mutate(&c, &r, &view("shop", &[("palisade.io/proxy", "enabled")]));
        assert_eq!(v.decision(), Decision::Patch);
        assert_eq!(
            v.changes,
            [
                "set label palisade.io/role=database",
                "inject sidecar access-proxy"
            ]
        );
        let out = apply(&db_pod(), &v);
        assert_eq!(out["metadata"]["labels"]["palisade.io/role"], "database");
        assert_eq!(
            out["metadata"]["annotations"]["palisade.io/proxy-status"],
            "injected"
        );
        assert_eq!(out["spec"]["containers"][1]["name"], "access-proxy");
        // Its own output is final.
        let again = mutate(
            &c,
            &request(Operation::Create, "shop", out),
            &view("shop", &[("palisade.io/proxy", "enabled")]),
        );
        assert!(
            again.patch.is_empty() && again.changes.is_empty(),
            "{again:?}"
        );
    }

    /// A pod no other rule gives a role gets the one its sidecar gives it:
    /// the role is derived from the pod as admitted, which is what the
    /// validating webhook and a re-invocation see.
    #[test]
    fn the_role_is_derived_from_the_injected_pod() {
        let c = cfg();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}});
        let r = request(Operation::Create, "shop", pod.clone());
        let off = mutate(&c, &r, &view("shop", &[]));
        assert!(off.patch.is_empty());
        let v = mutate(&c, &r, &view("shop", &[("palisade.io/proxy", "enabled")]));
        let out = apply(&pod, &v);
        assert_eq!(out["metadata"]["labels"]["palisade.io/role"], "proxied");
        let validated = crate::decide::validate(
            &c,
            &request(Operation::Create, "shop", out),
            &view("shop", &[]),
        );
        assert!(
            validated
                .violations
                .iter()
                .all(|x| x.rule != RuleId::OwnedRoleLabel),
            "{validated:?}"
        );
    }

    fn clashing_pod() -> Value {
        json!({"metadata": {"name": "p", "labels": {"palisade.io/role": "admin"}}, "spec": {
            "containers": [{"name": "db", "image": "postgres:16", "ports": [{"containerPort": 15443}]}],
            "volumes": [{"name": "palisade-proxy-tls", "emptyDir": {}}],
        }})
    }

    #[test]
    fn a_clash_denies_in_enforce_and_skips_the_sidecar_otherwise() {
        let c = cfg();
        let r = request(Operation::Create, "shop", clashing_pod());
        let labels = |mode: &'static str| {
            view(
                "shop",
                &[("palisade.io/proxy", "enabled"), ("palisade.io/mode", mode)],
            )
        };

        let v = mutate(&c, &r, &labels("enforce"));
        assert_eq!(v.decision(), Decision::Deny);
        assert!(v.patch.is_empty() && v.changes.is_empty());
        let msg = v.denial_message().unwrap();
        for needle in [
            "[sidecar-conflict] Pod shop/p: cannot inject the access-proxy sidecar \"access-proxy\"",
            "volume \"palisade-proxy-tls\", which the sidecar template also defines",
            "container \"db\" already uses port 15443/TCP, which sidecar container \"access-proxy\" listens on",
            "Fix: rename volume \"palisade-proxy-tls\", move container \"db\" off port 15443/TCP in the pod, \
             or opt the pod out of the proxy with the annotation palisade.io/proxy: disabled.",
        ] {
            assert!(msg.contains(needle), "{needle}\nnot in:\n{msg}");
        }

        let v = mutate(&c, &r, &labels("warn"));
        assert_eq!(v.decision(), Decision::WouldDeny);
        assert_eq!(
            v.changes,
            ["set label palisade.io/role=database (replacing admin)"]
        );
        let out = apply(&clashing_pod(), &v);
        assert_eq!(out["metadata"]["labels"]["palisade.io/role"], "database");
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
        assert!(v.client_warnings()[0].contains("[sidecar-conflict]"));

        let v = mutate(&c, &r, &labels("dry-run"));
        assert!(v.allowed() && v.effective_patch().is_empty());
        assert_eq!(
            v.changes,
            ["set label palisade.io/role=database (replacing admin)"]
        );
        assert_eq!(v.audit_annotations()["rules"], "sidecar-conflict");
    }

    #[test]
    fn dry_run_withholds_the_patch_and_records_the_changes() {
        let c = cfg();
        let r = request(Operation::Create, "shop", db_pod());
        let v = mutate(
            &c,
            &r,
            &view(
                "shop",
                &[
                    ("palisade.io/proxy", "enabled"),
                    ("palisade.io/mode", "dry-run"),
                ],
            ),
        );
        assert_eq!(v.mode, Mode::DryRun);
        assert!(v.effective_patch().is_empty() && !v.patch.is_empty());
        let a = v.audit_annotations();
        assert_eq!(a["decision"], "would-patch");
        assert_eq!(
            a["changes"],
            "set label palisade.io/role=database; inject sidecar access-proxy"
        );
    }

    #[test]
    fn host_network_pods_get_the_label_and_a_warning() {
        let c = cfg();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"hostNetwork": true, "containers": [{"name": "db", "image": "postgres:16"}]}});
        let r = request(Operation::Create, "shop", pod.clone());
        let v = mutate(&c, &r, &view("shop", &[("palisade.io/proxy", "enabled")]));
        assert_eq!(v.changes, ["set label palisade.io/role=database"]);
        assert_eq!(v.warnings.len(), 1);
        assert!(
            v.warnings[0].starts_with("Pod shop/p: hostNetwork pods get no access-proxy sidecar")
        );
        let out = apply(&pod, &v);
        assert_eq!(out["spec"]["containers"].as_array().unwrap().len(), 1);
        assert!(out["metadata"].get("annotations").is_none());
    }

    #[test]
    fn an_unreadable_annotation_is_ignored_with_a_warning() {
        let c = cfg();
        let pod = json!({"metadata": {"name": "p", "annotations": {"palisade.io/proxy": "yes"}}, "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}});
        let r = request(Operation::Create, "shop", pod);
        let v = mutate(&c, &r, &view("shop", &[("palisade.io/proxy", "enabled")]));
        assert_eq!(
            v.warnings,
            [
                "Pod shop/p: annotation palisade.io/proxy=yes is neither enabled nor disabled and is ignored; the namespace enables the proxy"
            ]
        );
        assert!(
            v.changes
                .contains(&"inject sidecar access-proxy".to_string())
        );
    }
}
