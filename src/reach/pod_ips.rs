//! Which pod holds an IP address: what `simulate verify` needs to name the
//! ends of an observed flow. Kept beside the model's pod table as one small
//! map (address -> pod), filled where pods enter the model (files, a
//! snapshot, the live watch) and emptied with them.
//!
//! A pod's address is only known as of the snapshot: an address can pass
//! from a deleted pod to a new one, so the pod's start time is kept to tell
//! a flow older than the pod now holding the address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// A pod's addresses as its status gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodAddrs {
    /// `status.podIPs` (or `status.podIP`), parsed; unparsable ones left out.
    pub ips: Vec<IpAddr>,
    /// `status.startTime`: before it, the address may have been another
    /// pod's.
    pub started: Option<Timestamp>,
    /// `spec.hostNetwork`: the addresses are the node's, shared by every
    /// hostNetwork pod there and by the node itself.
    pub host_network: bool,
}

impl PodAddrs {
    /// The addresses of a pod object (none while it is pending).
    pub fn from_pod(pod: &Pod) -> PodAddrs {
        let status = pod.status.as_ref();
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if let Some(ip) = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
            && !ips.contains(&ip)
        {
            ips.push(ip);
        }
        PodAddrs {
            ips,
            started: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
            host_network: pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false),
        }
    }
}

/// A pod's namespace and name.
pub(crate) type PodKey = (Arc<str>, Arc<str>);

/// Address -> pod, and pod -> its addresses (to forget them with it).
#[derive(Debug, Clone, Default)]
pub(crate) struct PodIps {
    by_ip: HashMap<IpAddr, PodKey>,
    by_pod: HashMap<PodKey, PodAddrs>,
}

impl PodIps {
    /// Records (or replaces) the addresses of pod `namespace/name`. The
    /// last pod to claim an address holds it.
    pub(crate) fn put(&mut self, namespace: &str, name: &str, addrs: PodAddrs) {
        self.remove(namespace, name);
        if addrs.ips.is_empty() {
            return;
        }
        let key: PodKey = (namespace.into(), name.into());
        for ip in &addrs.ips {
            self.by_ip.insert(*ip, key.clone());
        }
        self.by_pod.insert(key, addrs);
    }

    /// Forgets pod `namespace/name`'s addresses, unless another pod has
    /// claimed them since.
    pub(crate) fn remove(&mut self, namespace: &str, name: &str) {
        let key: PodKey = (namespace.into(), name.into());
        if let Some(old) = self.by_pod.remove(&key) {
            for ip in old.ips {
                if self.by_ip.get(&ip) == Some(&key) {
                    self.by_ip.remove(&ip);
                }
            }
        }
    }

    /// Forgets every address.
    pub(crate) fn clear(&mut self) {
        self.by_ip.clear();
        self.by_pod.clear();
    }

    /// The pod holding `ip`, with its addresses.
    pub(crate) fn holder(&self, ip: IpAddr) -> Option<(&PodKey, &PodAddrs)> {
        let key = self.by_ip.get(&ip)?;
        Some((key, self.by_pod.get(key)?))
    }

    /// How many addresses are held.
    pub(crate) fn len(&self) -> usize {
        self.by_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn addresses_come_from_pod_ips_and_pod_ip() {
        let p = pod("metadata: {name: a}\n\
                     spec: {containers: [], hostNetwork: false}\n\
                     status:\n  podIP: 10.0.0.5\n  podIPs: [{ip: 10.0.0.5}, {ip: 'fd00::5'}]\n  startTime: '2026-12-01T10:00:00Z'\n");
        let a = PodAddrs::from_pod(&p);
        assert_eq!(
            a.ips,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert_eq!(a.started.unwrap().to_string(), "2026-12-01T10:00:00Z");
        assert!(!a.host_network);
        // Pending: no address yet.
        assert!(
            PodAddrs::from_pod(&pod("metadata: {name: b}\n"))
                .ips
                .is_empty()
        );
    }

    #[test]
    fn an_address_claimed_again_stays_with_its_new_pod() {
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let addrs = PodAddrs {
            ips: vec![ip],
            ..PodAddrs::default()
        };
        let mut m = PodIps::default();
        m.put("shop", "old", addrs.clone());
        m.put("shop", "new", addrs);
        m.remove("shop", "old");
        assert_eq!(&*m.holder(ip).unwrap().0.1, "new");
        m.remove("shop", "new");
        assert!(m.holder(ip).is_none());
        assert_eq!(m.len(), 0);
    }
}
