//! What each rule checks and how to fix what it finds, in general terms,
//! for the rule descriptions of SARIF and the README's table. Each
//! finding's own message says the specifics (which namespace, which
//! policy, the manifest to apply).

use crate::decide::RuleId;

/// One line: what the rule requires.
pub fn summary(rule: RuleId) -> &'static str {
    match rule {
        RuleId::RequireDefaultDeny => {
            "Workloads need a namespace with a default-deny NetworkPolicy for every required direction"
        }
        RuleId::NoAllowAll => "No NetworkPolicy may allow all traffic outside dev namespaces",
        RuleId::KeepDefaultDeny => {
            "A NetworkPolicy change may not remove a namespace's last default-deny"
        }
        RuleId::AllowAllStaysDev => {
            "A namespace holding allow-all NetworkPolicies may not become non-dev"
        }
        RuleId::TrustedLabels => "Weakening namespace labels may be set only by trusted groups",
        RuleId::ValidModeLabel => "palisade.io/mode must name a mode",
        RuleId::OwnedRoleLabel => "The role label holds only the value palisade's rules derive",
        RuleId::SidecarConflict => {
            "The access-proxy sidecar must be injectable without breaking the pod"
        }
        RuleId::InvalidObject => "The object must be readable as its kind",
    }
}

/// Why the rule exists and the general fix.
pub fn fix(rule: RuleId) -> &'static str {
    match rule {
        RuleId::RequireDefaultDeny => {
            "Kubernetes allows all traffic to and from a pod no NetworkPolicy selects. Fix: apply a NetworkPolicy with `podSelector: {}`, the required `policyTypes` and no rules in the namespace first (the finding prints it), then allow what is needed by name."
        }
        RuleId::NoAllowAll => {
            "A rule with a peer that matches everything on all ports reopens a fenced namespace. Fix: name the peers (podSelector, namespaceSelector, ipBlock) and ports that are needed."
        }
        RuleId::KeepDefaultDeny => {
            "Removing the last default-deny opens the namespace. Fix: apply another default-deny for the direction first, or delete the whole namespace."
        }
        RuleId::AllowAllStaysDev => {
            "Allow-all policies are tolerated only in dev namespaces. Fix: delete or narrow the allow-all policies first, then relabel the namespace."
        }
        RuleId::TrustedLabels => {
            "A dev environment label or a weaker palisade.io/mode lowers the namespace's protection. Fix: leave the label out, or have a member of the config's trustedGroups set it."
        }
        RuleId::ValidModeLabel => {
            "Fix: set palisade.io/mode to enforce, warn or dry-run, or remove the label to use the default mode."
        }
        RuleId::OwnedRoleLabel => {
            "Policies select pods by the role label, so a pod may not choose its own. Fix: leave the label out; change the role rules in palisade's config to give pods a role."
        }
        RuleId::SidecarConflict => {
            "A container, volume or port of the pod clashes with the sidecar template. Fix: rename the clashing item in the pod, or disable the proxy for it (palisade.io/proxy: disabled)."
        }
        RuleId::InvalidObject => {
            "Fix: correct the field the finding names so the object parses as its kind."
        }
    }
}

/// Every rule, in a stable order.
pub const ALL: [RuleId; 9] = [
    RuleId::RequireDefaultDeny,
    RuleId::NoAllowAll,
    RuleId::KeepDefaultDeny,
    RuleId::AllowAllStaysDev,
    RuleId::TrustedLabels,
    RuleId::ValidModeLabel,
    RuleId::OwnedRoleLabel,
    RuleId::SidecarConflict,
    RuleId::InvalidObject,
];
