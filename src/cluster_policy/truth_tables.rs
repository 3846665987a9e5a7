//! The truth tables of cluster-wide policies: reading (both API versions
//! side by side, and what the API server would reject), tier evaluation
//! (priorities, rule order, `Pass` in both tiers, named ports, networks
//! with IPv6, outside ingress untouched), and the facts the webhook reads
//! (default-deny, allow-all, broad, ties).

use std::net::IpAddr;

use super::defaults::{self, ClusterDefault};
use super::tiers::{Far, Near, allowed_ports};
use super::*;
use crate::netpol::Direction::{self, Egress, Ingress};
use crate::ports::{ContainerPort, PortSet, Protocol};
use crate::selector::{Labels, NAMESPACE_NAME_LABEL};

fn value(yaml: &str) -> serde_json::Value {
    let options = serde_saphyr::options! { strict_booleans: true };
    serde_saphyr::from_str_with_options(yaml, options).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// Reads one policy from YAML (apiVersion and kind from the document).
fn try_read(yaml: &str) -> Result<ClusterPolicy, ClusterPolicyError> {
    let v = value(yaml);
    let kind = ClusterKind::from_group_kind(GROUP, v["kind"].as_str().unwrap()).unwrap();
    let version = v["apiVersion"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    read::from_value(kind, version, &v)
}

fn read(yaml: &str) -> ClusterPolicy {
    try_read(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn anp(name: &str, priority: u32, body: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  priority: {priority}\n{body}"
    )
}

fn banp(body: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {{name: default}}\nspec:\n{body}"
    )
}

fn cnp(name: &str, tier: &str, priority: u32, body: &str) -> String {
    format!(
        "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n  tier: {tier}\n  priority: {priority}\n{body}"
    )
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ns_labels(name: &str, extra: &[(&str, &str)]) -> Labels {
    let mut l = labels(extra);
    l.insert(NAMESPACE_NAME_LABEL.into(), name.into());
    l
}

fn tcp(ports: &[u16]) -> PortSet {
    let mut p = PortSet::none();
    for &n in ports {
        p.insert(Protocol::Tcp, n, n);
    }
    p
}

fn udp(ports: &[u16]) -> PortSet {
    let mut p = PortSet::none();
    for &n in ports {
        p.insert(Protocol::Udp, n, n);
    }
    p
}

/// A small cluster: pods `app=web` in namespace `shop` (team=a) and
/// `app=db` in `data` (team=b).
struct World {
    shop: Labels,
    data: Labels,
    web: Labels,
    db: Labels,
}

fn world() -> World {
    World {
        shop: ns_labels("shop", &[("team", "a")]),
        data: ns_labels("data", &[("team", "b")]),
        web: labels(&[("app", "web")]),
        db: labels(&[("app", "db")]),
    }
}

/// The ports `web` may send to `db` with these policies and no
/// NetworkPolicy, egress side only.
fn web_to_db(set: &ClusterPolicies, db_ports: &[ContainerPort]) -> PortSet {
    let w = world();
    allowed_ports(
        set,
        Egress,
        Near {
            namespace_labels: &w.shop,
            labels: &w.web,
        },
        Far::Pod {
            namespace: "data",
            namespace_labels: &w.data,
            labels: &w.db,
        },
        db_ports,
        &[],
        None,
    )
}

fn set(yamls: &[String]) -> ClusterPolicies {
    ClusterPolicies::new(yamls.iter().map(|y| read(y)))
}

// ---- reading ------------------------------------------------------------

/// The same intent in v1alpha1 and v1alpha2 reads into the same policy,
/// but for the kind that wrote it.
#[test]
fn both_api_versions_read_the_same_intent_the_same_way() {
    let v1 = read(&anp(
        "p",
        10,
        "  subject:\n    pods:\n      namespaceSelector: {matchLabels: {team: a}}\n      podSelector: {matchLabels: {app: web}}\n  egress:\n  - name: dns\n    action: Allow\n    to:\n    - pods:\n        namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}\n        podSelector: {matchLabels: {k8s-app: kube-dns}}\n    ports:\n    - portNumber: {protocol: UDP, port: 53}\n    - portRange: {protocol: TCP, start: 8000, end: 8080}\n    - namedPort: metrics\n  - action: Deny\n    to:\n    - namespaces: {}\n    - networks: [0.0.0.0/0, '::/0']\n  ingress:\n  - action: Pass\n    from: [{namespaces: {matchLabels: {team: b}}}]\n",
    ));
    let v2 = read(&cnp(
        "p",
        "Admin",
        10,
        "  subject:\n    pods:\n      namespaceSelector: {matchLabels: {team: a}}\n      podSelector: {matchLabels: {app: web}}\n  egress:\n  - name: dns\n    action: Accept\n    to:\n    - pods:\n        namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}\n        podSelector: {matchLabels: {k8s-app: kube-dns}}\n    protocols:\n    - udp: {destinationPort: {number: 53}}\n    - tcp: {destinationPort: {range: {start: 8000, end: 8080}}}\n    - destinationNamedPort: metrics\n  - action: Deny\n    to:\n    - namespaces: {}\n    - networks: [0.0.0.0/0, '::/0']\n  ingress:\n  - action: Pass\n    from: [{namespaces: {matchLabels: {team: b}}}]\n",
    ));
    assert_eq!(v1.kind, ClusterKind::AdminNetworkPolicy);
    assert_eq!(v2.kind, ClusterKind::ClusterNetworkPolicy);
    assert_eq!(
        ClusterPolicy {
            kind: ClusterKind::ClusterNetworkPolicy,
            ..v1.clone()
        },
        v2
    );
    assert_eq!(v1.tier, Tier::Admin);
    assert_eq!(v1.priority, Some(10));
    assert_eq!(v1.egress[0].action, Action::Allow);
    assert_eq!(v1.action_word(Action::Allow), "Allow");
    assert_eq!(v2.action_word(Action::Allow), "Accept");
    assert_eq!(
        v1.egress[0].ports.to_string(),
        "TCP 8000-8080; UDP 53; named metrics"
    );

    // A baseline in both versions: BANP (no priority) and CNP tier Baseline.
    let b1 = read(&banp(
        "  subject: {namespaces: {}}\n  egress:\n  - {action: Deny, to: [{namespaces: {}}]}\n",
    ));
    let b2 = read(&cnp(
        "default",
        "Baseline",
        0,
        "  subject: {namespaces: {}}\n  egress:\n  - {action: Deny, to: [{namespaces: {}}]}\n",
    ));
    assert_eq!((b1.tier, b1.priority), (Tier::Baseline, None));
    assert_eq!((b2.tier, b2.priority), (Tier::Baseline, Some(0)));
    assert_eq!(
        (b1.subject.clone(), b1.egress.clone()),
        (b2.subject, b2.egress)
    );
    assert_eq!(
        b1.to_string(),
        "baseline policy default (BaselineAdminNetworkPolicy)"
    );
    assert_eq!(v1.to_string(), "admin policy p (priority 10)");
}

/// A `pods` peer that leaves out a selector means `{}` there, in both
/// versions: the API's types hold plain selectors whose zero value selects
/// everything, and the reference analyzer's cases rely on it.
#[test]
fn absent_selectors_of_pod_peers_select_everything() {
    for yaml in [
        cnp(
            "p",
            "Admin",
            1,
            "  subject: {namespaces: {}}\n  ingress:\n  - action: Deny\n    from: [{pods: {podSelector: {}}}]\n",
        ),
        anp(
            "p",
            1,
            "  subject: {namespaces: {}}\n  ingress:\n  - action: Deny\n    from: [{pods: {podSelector: {}}}]\n",
        ),
        anp(
            "p",
            1,
            "  subject: {namespaces: {}}\n  ingress:\n  - action: Deny\n    from: [{pods: {namespaceSelector: {}}}]\n",
        ),
    ] {
        assert!(read(&yaml).ingress[0].admits_every_pod(), "{yaml}");
    }
    let scoped = read(&anp(
        "p",
        1,
        "  subject: {namespaces: {}}\n  ingress:\n  - action: Deny\n    from: [{pods: {namespaceSelector: {matchLabels: {team: b}}}}]\n",
    ));
    let w = world();
    assert!(scoped.ingress[0].admits_pod("data", &w.data, &w.db));
    assert!(!scoped.ingress[0].admits_pod("shop", &w.shop, &w.web));
}

/// What the API server would reject is an error naming the field.
#[test]
fn invalid_objects_name_the_field() {
    let s = "  subject: {namespaces: {}}\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (
            anp("p", 1, "  egress:\n  - {action: Deny, to: [{namespaces: {}}]}\n"),
            "spec.subject",
            "missing subject",
        ),
        (
            anp(
                "p",
                1,
                "  subject: {namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}\n",
            ),
            "spec.subject",
            "not both",
        ),
        (
            anp("p", 1, &format!("{s}  egress:\n  - {{action: Block, to: [{{namespaces: {{}}}}]}}\n")),
            "spec.egress[0].action",
            "unknown action \"Block\" (expected Allow, Deny or Pass)",
        ),
        (
            banp(&format!("{s}  egress:\n  - {{action: Pass, to: [{{namespaces: {{}}}}]}}\n")),
            "spec.egress[0].action",
            "unknown action \"Pass\" (expected Allow or Deny)",
        ),
        (
            cnp("p", "Admin", 1, &format!("{s}  egress:\n  - {{action: Allow, to: [{{namespaces: {{}}}}]}}\n")),
            "spec.egress[0].action",
            "(expected Accept, Deny or Pass)",
        ),
        (
            anp("p", 1, &format!("{s}  egress:\n  - {{action: Deny}}\n")),
            "spec.egress[0].to",
            "needs at least one peer",
        ),
        (
            anp("p", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{}}]}}\n")),
            "spec.egress[0].to[0]",
            "exactly one of its fields",
        ),
        (
            anp("p", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}, networks: [10.0.0.0/8]}}]}}\n")),
            "spec.egress[0].to[0]",
            "this one has 2",
        ),
        (
            anp("p", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{networks: [10.0.0.0/8, nope]}}]}}\n")),
            "spec.egress[0].to[0].networks[1]",
            "invalid CIDR",
        ),
        (
            anp("p", 1, &format!("{s}  ingress:\n  - {{action: Deny, from: [{{networks: [10.0.0.0/8]}}]}}\n")),
            "spec.ingress[0].from[0].networks",
            "unknown field",
        ),
        (
            anp("p", 1001, s),
            "spec.priority",
            "1001 is outside 0-1000",
        ),
        (
            anp("p", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}], ports: [{{portNumber: {{port: 70000}}}}]}}\n")),
            "spec.egress[0].ports[0].portNumber.port",
            "outside 1-65535",
        ),
        (
            anp("p", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}], ports: [{{portNumber: {{port: 1}}, namedPort: x}}]}}\n")),
            "spec.egress[0].ports[0]",
            "exactly one of portNumber",
        ),
        (
            anp("p", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{namespaces: {{matchExpressions: [{{key: a, operator: Has}}]}}}}]}}\n")),
            "spec.egress[0].to[0].namespaces",
            "unknown operator",
        ),
        (
            cnp("p", "Middle", 1, s),
            "spec.tier",
            "unknown tier",
        ),
        (
            cnp("p", "Admin", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}], protocols: [{{tcp: {{destinationPort: {{range: {{start: 90, end: 80}}}}}}}}]}}\n")),
            "spec.egress[0].protocols[0].tcp.destinationPort.range",
            "must be less than end",
        ),
        (
            cnp("p", "Admin", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{networks: [10.0.0.0/8]}}], protocols: [{{destinationNamedPort: http}}]}}\n")),
            "spec.egress[0]",
            "cannot be combined with destinationNamedPort",
        ),
        (
            cnp("p", "Admin", 1, &format!("{s}  egress:\n  - {{action: Deny, to: [{{domainNames: [example.com]}}]}}\n")),
            "spec.egress[0]",
            "Accept rules only",
        ),
        (
            "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: other}\nspec:\n  subject: {namespaces: {}}\n".to_owned(),
            "metadata.name",
            "named \"default\"",
        ),
        (
            "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: p}\n".to_owned(),
            "spec",
            "missing spec",
        ),
        (
            anp("p", 1, &format!("{s}  egres: []\n")),
            "spec.egres",
            "unknown field `egres`",
        ),
    ];
    for (yaml, path, text) in cases {
        let e = try_read(&yaml).expect_err(&yaml);
        assert_eq!(e.path, path, "{e}\n{yaml}");
        assert!(e.to_string().contains(text), "{e}\n{yaml}");
    }
    let e = try_read(&anp("deny-all", 1, "  egres: []\n")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("AdminNetworkPolicy deny-all: spec.egres:"),
        "{e}"
    );
    // A v1alpha1 port range that ends before it starts is accepted (the
    // schema does not check it) and holds no port.
    let p = read(&anp(
        "p",
        1,
        &format!(
            "{s}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}], ports: [{{portRange: {{start: 90, end: 80}}}}]}}\n"
        ),
    ));
    assert!(p.egress[0].ports.numeric().is_empty());
}

// ---- tier evaluation ---------------------------------------------------

/// Admin policies by priority (lowest first), rules in order, first match
/// decides each port.
#[test]
fn priorities_and_rule_order_truth_table() {
    let subject = "  subject: {namespaces: {matchLabels: {team: a}}}\n";
    let to_data = "[{namespaces: {matchLabels: {team: b}}}]";
    let allow80 =
        format!("  - {{action: Allow, to: {to_data}, ports: [{{portNumber: {{port: 80}}}}]}}\n");
    let deny_all = format!("  - {{action: Deny, to: {to_data}}}\n");
    let deny80 =
        format!("  - {{action: Deny, to: {to_data}, ports: [{{portNumber: {{port: 80}}}}]}}\n");
    let all_but_80 = PortSet::all().subtract(&tcp(&[80]));
    let cases: Vec<(&str, Vec<String>, PortSet)> = vec![
        ("no policy: allowed", vec![], PortSet::all()),
        (
            "allow 80 then deny all, one policy",
            vec![anp(
                "a",
                10,
                &format!("{subject}  egress:\n{allow80}{deny_all}"),
            )],
            tcp(&[80]),
        ),
        (
            "deny all then allow 80, one policy: the allow never matches",
            vec![anp(
                "a",
                10,
                &format!("{subject}  egress:\n{deny_all}{allow80}"),
            )],
            PortSet::none(),
        ),
        (
            "allow 80 at priority 5 beats deny all at 10",
            vec![
                anp("deny", 10, &format!("{subject}  egress:\n{deny_all}")),
                anp("allow", 5, &format!("{subject}  egress:\n{allow80}")),
            ],
            tcp(&[80]),
        ),
        (
            "deny all at priority 5 beats allow 80 at 10",
            vec![
                anp("deny", 5, &format!("{subject}  egress:\n{deny_all}")),
                anp("allow", 10, &format!("{subject}  egress:\n{allow80}")),
            ],
            PortSet::none(),
        ),
        (
            "deny 80 only: everything else falls through to allowed",
            vec![anp("a", 10, &format!("{subject}  egress:\n{deny80}"))],
            all_but_80.clone(),
        ),
        (
            "a CNP admin policy interleaves with ANPs by priority",
            vec![
                anp("deny", 10, &format!("{subject}  egress:\n{deny_all}")),
                cnp(
                    "accept",
                    "Admin",
                    5,
                    &format!(
                        "{subject}  egress:\n  - {{action: Accept, to: {to_data}, protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]}}\n"
                    ),
                ),
            ],
            tcp(&[80]),
        ),
    ];
    for (name, yamls, want) in cases {
        assert_eq!(web_to_db(&set(&yamls), &[]), want, "{name}");
    }
}

/// `Pass` in the admin tier hands ports to NetworkPolicies, or to the
/// baseline when none selects the pod; `Pass` in the baseline ends allowed.
#[test]
fn pass_in_both_tiers_truth_table() {
    let w = world();
    let subject = "  subject: {namespaces: {matchLabels: {team: a}}}\n";
    let to_data = "[{namespaces: {matchLabels: {team: b}}}]";
    let pass_all = anp(
        "pass",
        1,
        &format!("{subject}  egress:\n  - {{action: Pass, to: {to_data}}}\n"),
    );
    let admin_deny = anp(
        "deny",
        2,
        &format!("{subject}  egress:\n  - {{action: Deny, to: {to_data}}}\n"),
    );
    let baseline_deny = banp(&format!(
        "{subject}  egress:\n  - {{action: Deny, to: {to_data}}}\n"
    ));
    let baseline_pass_then_deny = cnp(
        "b",
        "Baseline",
        1,
        &format!(
            "{subject}  egress:\n  - {{action: Pass, to: {to_data}, protocols: [{{tcp: {{destinationPort: {{number: 443}}}}}}]}}\n  - {{action: Deny, to: {to_data}}}\n"
        ),
    );
    let eval = |yamls: &[String], netpol: Option<&PortSet>| {
        allowed_ports(
            &set(yamls),
            Egress,
            Near {
                namespace_labels: &w.shop,
                labels: &w.web,
            },
            Far::Pod {
                namespace: "data",
                namespace_labels: &w.data,
                labels: &w.db,
            },
            &[],
            &[],
            netpol,
        )
    };
    let np = tcp(&[5432]);
    // (policies, NetworkPolicy result, expected)
    let cases: Vec<(&str, Vec<String>, Option<&PortSet>, PortSet)> = vec![
        (
            "admin pass skips a later admin deny; nothing else: allowed",
            vec![pass_all.clone(), admin_deny.clone()],
            None,
            PortSet::all(),
        ),
        (
            "admin pass, then a NetworkPolicy decides",
            vec![pass_all.clone(), admin_deny.clone(), baseline_deny.clone()],
            Some(&np),
            np.clone(),
        ),
        (
            "admin pass, no NetworkPolicy: the baseline decides",
            vec![pass_all.clone(), admin_deny.clone(), baseline_deny.clone()],
            None,
            PortSet::none(),
        ),
        (
            "a NetworkPolicy selecting the pod overrides the baseline",
            vec![baseline_deny.clone()],
            Some(&np),
            np.clone(),
        ),
        (
            "an admin deny overrides the NetworkPolicy",
            vec![admin_deny.clone()],
            Some(&np),
            PortSet::none(),
        ),
        (
            "baseline pass on 443 ends allowed; the rest is denied",
            vec![baseline_pass_then_deny.clone()],
            None,
            tcp(&[443]),
        ),
    ];
    for (name, yamls, netpol, want) in cases {
        assert_eq!(eval(&yamls, netpol), want, "{name}");
    }
}

/// Named ports resolve against the destination's container ports, whatever
/// their protocol; a name the destination lacks admits nothing, so the
/// ports fall through to the next rule.
#[test]
fn named_ports_truth_table() {
    let subject = "  subject: {namespaces: {matchLabels: {team: a}}}\n";
    let to_data = "[{namespaces: {matchLabels: {team: b}}}]";
    let p = set(&[anp(
        "a",
        1,
        &format!(
            "{subject}  egress:\n  - {{action: Allow, to: {to_data}, ports: [{{namedPort: dns}}]}}\n  - {{action: Deny, to: {to_data}}}\n"
        ),
    )]);
    let dns_udp = [ContainerPort {
        name: Some("dns".into()),
        protocol: Protocol::Udp,
        port: 5353,
    }];
    let other = [ContainerPort {
        name: Some("web".into()),
        protocol: Protocol::Tcp,
        port: 8080,
    }];
    assert_eq!(web_to_db(&p, &dns_udp), udp(&[5353]));
    assert_eq!(web_to_db(&p, &other), PortSet::none(), "unmatched name");
    assert_eq!(web_to_db(&p, &[]), PortSet::none(), "no container ports");
    // Towards an address a named port admits nothing either.
    let w = world();
    let ext = set(&[anp(
        "a",
        1,
        &format!(
            "{subject}  egress:\n  - {{action: Deny, to: [{{networks: ['0.0.0.0/0']}}], ports: [{{namedPort: dns}}]}}\n"
        ),
    )]);
    let out = allowed_ports(
        &ext,
        Egress,
        Near {
            namespace_labels: &w.shop,
            labels: &w.web,
        },
        Far::Address("8.8.8.8".parse().unwrap()),
        &[],
        &[],
        None,
    );
    assert!(out.is_all());
}

/// Egress `networks` match addresses of both families; ingress from
/// outside the cluster is never decided by these kinds.
#[test]
fn networks_with_ipv6_and_outside_ingress_truth_table() {
    let w = world();
    let p = set(&[anp(
        "net",
        1,
        "  subject: {namespaces: {}}\n  egress:\n  - {action: Deny, to: [{networks: ['8.8.8.8/32', 'fd00::/8']}], ports: [{portNumber: {protocol: UDP, port: 53}}]}\n  - {action: Allow, to: [{networks: ['2001:db8::/32']}]}\n  - {action: Deny, to: [{networks: ['0.0.0.0/0', '::/0']}]}\n  ingress:\n  - {action: Deny, from: [{namespaces: {}}]}\n",
    )]);
    let near = Near {
        namespace_labels: &w.shop,
        labels: &w.web,
    };
    let out = |ip: &str| {
        allowed_ports(
            &p,
            Egress,
            near,
            Far::Address(ip.parse::<IpAddr>().unwrap()),
            &[],
            &[],
            None,
        )
    };
    assert!(out("8.8.8.8").is_empty(), "denied: UDP 53 then the rest");
    assert!(out("fd00::1").is_empty());
    assert!(out("2001:db8::1").is_all(), "IPv6 allow before the deny");
    assert!(out("1.1.1.1").is_empty());
    assert!(out("2002::1").is_empty());
    let ingress = allowed_ports(
        &p,
        Ingress,
        near,
        Far::Address("8.8.8.8".parse().unwrap()),
        &[],
        &[],
        None,
    );
    assert!(ingress.is_all(), "outside ingress is not decided here");
    let from_pod = allowed_ports(
        &p,
        Ingress,
        near,
        Far::Pod {
            namespace: "data",
            namespace_labels: &w.data,
            labels: &w.db,
        },
        &[],
        &[],
        None,
    );
    assert!(from_pod.is_empty());
}

/// `nodes` peers are the addresses of the nodes whose labels match; with
/// no node known they match nothing.
#[test]
fn node_peers_match_known_node_addresses() {
    let w = world();
    let p = set(&[anp(
        "n",
        1,
        "  subject: {namespaces: {}}\n  egress:\n  - {action: Deny, to: [{nodes: {matchLabels: {role: infra}}}]}\n",
    )]);
    let nodes = vec![
        (
            labels(&[("role", "infra")]),
            crate::addresses::AddrSet::from_cidr("10.0.0.5/32").unwrap(),
        ),
        (
            labels(&[("role", "worker")]),
            crate::addresses::AddrSet::from_cidr("10.0.0.6/32").unwrap(),
        ),
    ];
    let near = Near {
        namespace_labels: &w.shop,
        labels: &w.web,
    };
    let out = |ip: &str, nodes: &[(Labels, crate::addresses::AddrSet)]| {
        allowed_ports(
            &p,
            Egress,
            near,
            Far::Address(ip.parse().unwrap()),
            &[],
            nodes,
            None,
        )
    };
    assert!(out("10.0.0.5", &nodes).is_empty());
    assert!(out("10.0.0.6", &nodes).is_all());
    assert!(out("10.0.0.5", &[]).is_all(), "no node known: no match");
}

/// Subjects: namespaces, or pods in namespaces; pods elsewhere are not
/// governed.
#[test]
fn subjects_truth_table() {
    let w = world();
    let deny = "  egress:\n  - {action: Deny, to: [{namespaces: {}}]}\n";
    let cases = [
        ("  subject: {namespaces: {matchLabels: {team: a}}}\n", true),
        ("  subject: {namespaces: {matchLabels: {team: b}}}\n", false),
        (
            "  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}\n",
            true,
        ),
        (
            "  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}\n",
            false,
        ),
    ];
    for (subject, governed) in cases {
        let p = set(&[anp("s", 1, &format!("{subject}{deny}"))]);
        assert_eq!(web_to_db(&p, &[]).is_empty(), governed, "{subject}");
        let policy = &p.all()[0];
        assert_eq!(policy.subject.selects(&w.shop, &w.web), governed);
    }
}

// ---- ordering and ties -------------------------------------------------

#[test]
fn ties_are_ordered_by_name_and_reported() {
    let s = "  subject: {namespaces: {}}\n";
    let p = set(&[
        anp("zeta", 5, s),
        anp("alpha", 5, s),
        cnp("mid", "Admin", 3, s),
        cnp("b2", "Baseline", 5, s),
        banp(s),
    ]);
    let names: Vec<&str> = p.all().iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["mid", "alpha", "zeta", "b2", "default"]);
    let ties = p.ties();
    assert_eq!(ties.len(), 1, "{ties:?}");
    assert_eq!(
        (ties[0].first.as_str(), ties[0].second.as_str()),
        ("alpha", "zeta")
    );
    assert!(ties[0].to_string().contains("palisade applies alpha first"));
    assert_eq!(p.ties_of(ClusterKind::AdminNetworkPolicy, "zeta").len(), 1);
    assert!(
        p.ties_of(ClusterKind::ClusterNetworkPolicy, "mid")
            .is_empty()
    );
    assert_eq!(p.tier(Tier::Baseline).len(), 2);
    // Replacing keeps one copy, re-sorted.
    let mut p = p;
    p.put(read(&anp("zeta", 1, s)));
    let names: Vec<&str> = p.all().iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["zeta", "mid", "alpha", "b2", "default"]);
    assert!(p.ties().is_empty());
}

// ---- default-deny from the tiers --------------------------------------

fn dd(yamls: &[String], d: Direction) -> ClusterDefault {
    defaults::default_deny(&set(yamls), &ns_labels("shop", &[("team", "a")]), d)
}

#[test]
fn default_deny_from_the_tiers_truth_table() {
    let all = "  subject: {namespaces: {}}\n";
    let dns = "  - name: dns\n    action: Allow\n    to: [{pods: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: kube-dns}}}}]\n    ports: [{portNumber: {protocol: UDP, port: 53}}]\n";
    let deny_egress = "  - {name: deny-all, action: Deny, to: [{namespaces: {}}, {networks: ['0.0.0.0/0', '::/0']}]}\n";
    let cases: Vec<(&str, Vec<String>, Direction, &str)> = vec![
        ("nothing", vec![], Egress, "nothing"),
        (
            "baseline denies every pod and address",
            vec![banp(&format!("{all}  egress:\n{deny_egress}"))],
            Egress,
            "denied",
        ),
        (
            "the same in v1alpha2",
            vec![cnp(
                "b",
                "Baseline",
                1,
                &format!("{all}  egress:\n{deny_egress}"),
            )],
            Egress,
            "denied",
        ),
        (
            "split over two rules",
            vec![banp(&format!(
                "{all}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}]}}\n  - {{action: Deny, to: [{{networks: ['0.0.0.0/0', '::/0']}}]}}\n"
            ))],
            Egress,
            "denied",
        ),
        (
            "DNS before it is an allowance",
            vec![banp(&format!("{all}  egress:\n{dns}{deny_egress}"))],
            Egress,
            "denied",
        ),
        (
            "no ::/0: partial",
            vec![banp(&format!(
                "{all}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}, {{networks: ['0.0.0.0/0']}}]}}\n"
            ))],
            Egress,
            "partial",
        ),
        (
            "pods only: partial for egress",
            vec![banp(&format!(
                "{all}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}]}}\n"
            ))],
            Egress,
            "partial",
        ),
        (
            "some ports only: nothing",
            vec![banp(&format!(
                "{all}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}, {{networks: ['0.0.0.0/0', '::/0']}}], ports: [{{portNumber: {{port: 80}}}}]}}\n"
            ))],
            Egress,
            "nothing",
        ),
        (
            "a subject of some pods only does not cover the namespace",
            vec![banp(&format!(
                "  subject: {{pods: {{namespaceSelector: {{}}, podSelector: {{matchLabels: {{app: web}}}}}}}}\n  egress:\n{deny_egress}"
            ))],
            Egress,
            "nothing",
        ),
        (
            "a subject that selects other namespaces",
            vec![banp(&format!(
                "  subject: {{namespaces: {{matchLabels: {{team: b}}}}}}\n  egress:\n{deny_egress}"
            ))],
            Egress,
            "nothing",
        ),
        (
            "an admin allow of every namespace cuts into the baseline",
            vec![
                anp(
                    "open",
                    1,
                    &format!(
                        "{all}  egress:\n  - {{action: Allow, to: [{{namespaces: {{}}}}], ports: [{{portNumber: {{port: 443}}}}]}}\n"
                    ),
                ),
                banp(&format!("{all}  egress:\n{deny_egress}")),
            ],
            Egress,
            "cut",
        ),
        (
            "an admin pass of everything does not: the baseline still applies",
            vec![
                anp(
                    "pass",
                    1,
                    &format!("{all}  egress:\n  - {{action: Pass, to: [{{namespaces: {{}}}}]}}\n"),
                ),
                banp(&format!("{all}  egress:\n{deny_egress}")),
            ],
            Egress,
            "denied",
        ),
        (
            "an admin pass of everything cuts into a later admin deny",
            vec![
                anp(
                    "pass",
                    1,
                    &format!("{all}  egress:\n  - {{action: Pass, to: [{{namespaces: {{}}}}]}}\n"),
                ),
                anp("deny", 2, &format!("{all}  egress:\n{deny_egress}")),
            ],
            Egress,
            "cut",
        ),
        (
            "a baseline pass of everything cuts into a later baseline deny",
            vec![cnp(
                "b",
                "Baseline",
                1,
                &format!(
                    "{all}  egress:\n  - {{action: Pass, to: [{{networks: ['0.0.0.0/0']}}]}}\n{deny_egress}"
                ),
            )],
            Egress,
            "cut",
        ),
        (
            "an admin deny of everything counts",
            vec![anp(
                "deny",
                2,
                &format!("{all}  egress:\n{dns}{deny_egress}"),
            )],
            Egress,
            "denied",
        ),
        (
            "ingress: every pod is everything the tiers can deny",
            vec![banp(&format!(
                "{all}  ingress:\n  - {{action: Deny, from: [{{namespaces: {{}}}}]}}\n"
            ))],
            Ingress,
            "denied",
        ),
        (
            "ingress: kubernetes.io/metadata.name Exists is every namespace",
            vec![banp(&format!(
                "{all}  ingress:\n  - {{action: Deny, from: [{{namespaces: {{matchExpressions: [{{key: kubernetes.io/metadata.name, operator: Exists}}]}}}}]}}\n"
            ))],
            Ingress,
            "denied",
        ),
        (
            "egress rules say nothing of ingress",
            vec![banp(&format!("{all}  egress:\n{deny_egress}"))],
            Ingress,
            "nothing",
        ),
    ];
    for (name, yamls, d, want) in cases {
        let got = dd(&yamls, d);
        let kind = match &got {
            ClusterDefault::Nothing => "nothing",
            ClusterDefault::Denied { .. } => "denied",
            ClusterDefault::Cut { .. } => "cut",
            ClusterDefault::Partial { .. } => "partial",
        };
        assert_eq!(kind, want, "{name}: {got:?}");
    }
    // What the messages are made of.
    let policies = set(&[banp(&format!("{all}  egress:\n{dns}{deny_egress}"))]);
    let got = defaults::default_deny(&policies, &ns_labels("shop", &[("team", "a")]), Egress);
    let ClusterDefault::Denied { by, allowances } = got else {
        panic!("{got:?}")
    };
    assert_eq!(
        by[0].named(&policies, Egress).unwrap().to_string(),
        "baseline policy default (BaselineAdminNetworkPolicy) rule \"deny-all\""
    );
    assert_eq!(allowances.len(), 1);
    let words = allowances[0].describe(&policies, Egress);
    assert!(
        words.contains("rule \"dns\": Allow pods k8s-app=kube-dns in namespaces kubernetes.io/metadata.name=kube-system on UDP 53"),
        "{words}"
    );
    let got = dd(
        &[banp(&format!(
            "{all}  egress:\n  - {{action: Deny, to: [{{namespaces: {{}}}}, {{networks: ['0.0.0.0/0']}}]}}\n"
        ))],
        Egress,
    );
    let ClusterDefault::Partial { missing, .. } = got else {
        panic!("{got:?}")
    };
    assert_eq!(missing, "IPv6 addresses (networks: [::/0])");
}

#[test]
fn admin_allow_all_and_broad_truth_table() {
    let all = "  subject: {namespaces: {}}\n";
    let cases: Vec<(&str, String, Option<Direction>, usize)> = vec![
        (
            "ingress from every namespace, all ports",
            anp(
                "a",
                1,
                &format!("{all}  ingress:\n  - {{action: Allow, from: [{{namespaces: {{}}}}]}}\n"),
            ),
            Some(Ingress),
            0,
        ),
        (
            "v1alpha2 accept from every pod",
            cnp(
                "a",
                "Admin",
                1,
                &format!(
                    "{all}  ingress:\n  - {{action: Accept, from: [{{pods: {{podSelector: {{}}}}}}]}}\n"
                ),
            ),
            Some(Ingress),
            0,
        ),
        (
            "egress to every namespace and 0.0.0.0/0",
            anp(
                "a",
                1,
                &format!(
                    "{all}  egress:\n  - {{action: Allow, to: [{{namespaces: {{}}}}, {{networks: ['0.0.0.0/0']}}]}}\n"
                ),
            ),
            Some(Egress),
            0,
        ),
        (
            "egress to every namespace only: broad",
            anp(
                "a",
                1,
                &format!("{all}  egress:\n  - {{action: Allow, to: [{{namespaces: {{}}}}]}}\n"),
            ),
            None,
            1,
        ),
        (
            "some ports only: broad",
            anp(
                "a",
                1,
                &format!(
                    "{all}  ingress:\n  - {{action: Allow, from: [{{namespaces: {{}}}}], ports: [{{portNumber: {{port: 80}}}}]}}\n"
                ),
            ),
            None,
            1,
        ),
        (
            "pass of everything: neither (it allows nothing itself)",
            anp(
                "a",
                1,
                &format!("{all}  ingress:\n  - {{action: Pass, from: [{{namespaces: {{}}}}]}}\n"),
            ),
            None,
            0,
        ),
        (
            "a specific peer: neither",
            anp(
                "a",
                1,
                &format!(
                    "{all}  ingress:\n  - {{action: Allow, from: [{{namespaces: {{matchLabels: {{team: a}}}}}}]}}\n"
                ),
            ),
            None,
            0,
        ),
        (
            "the baseline allowing everything is what Kubernetes does anyway",
            banp(&format!(
                "{all}  ingress:\n  - {{action: Allow, from: [{{namespaces: {{}}}}]}}\n"
            )),
            None,
            0,
        ),
    ];
    for (name, yaml, allow_all, broad) in cases {
        let p = read(&yaml);
        let got = Direction::ALL
            .into_iter()
            .find(|d| defaults::allow_all(&p, *d).is_some());
        assert_eq!(got, allow_all, "{name}");
        assert_eq!(defaults::broad_rules(&p).len(), broad, "{name}");
    }
}

#[test]
fn confinement_to_dev_namespaces_truth_table() {
    let dev = vec!["dev".to_owned(), "development".to_owned()];
    let cases = [
        ("{namespaces: {matchLabels: {environment: dev}}}", true),
        (
            "{namespaces: {matchExpressions: [{key: environment, operator: In, values: [dev, development]}]}}",
            true,
        ),
        (
            "{namespaces: {matchExpressions: [{key: environment, operator: In, values: [dev, prod]}]}}",
            false,
        ),
        (
            "{namespaces: {matchExpressions: [{key: environment, operator: NotIn, values: [prod]}]}}",
            false,
        ),
        (
            "{pods: {namespaceSelector: {matchLabels: {environment: development, team: a}}, podSelector: {}}}",
            true,
        ),
        ("{namespaces: {matchLabels: {team: a}}}", false),
        ("{namespaces: {}}", false),
    ];
    for (subject, confined) in cases {
        let p = read(&anp("a", 1, &format!("  subject: {subject}\n")));
        assert_eq!(
            defaults::confined_to_dev(&p.subject, "environment", &dev),
            confined,
            "{subject}"
        );
    }
}
