//! Reading an object off the wire with only the fields the rules read.
//!
//! Every pod CREATE waits on palisade, and most of a pod's JSON is what no
//! rule looks at: container env, resources, probes, volume sources,
//! `status`, `managedFields`. Decoding all of it into k8s-openapi's types
//! was two thirds of palisade's own work per review; decoding only what is
//! read takes a quarter less (docs/performance.md has the figures).
//! [`from_str`] wraps the deserializer so that the members a [`Keep`] does not
//! name are skipped unread (serde_json checks their syntax, nothing more)
//! and the members it names reach k8s-openapi's own `Deserialize`
//! impls as they are. The result is the same typed object with the unread
//! fields left at their defaults, decoded by the same code, so a field
//! that is read is judged exactly as a full parse would judge it.
//!
//! The API server has validated the whole object before it asks, so what
//! is skipped needs no second opinion; manifests read by `check`, written
//! by people, are still parsed whole.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess,
    SeqAccess, Visitor,
};

/// Which parts of a JSON value are read.
#[derive(Debug)]
pub enum Keep {
    /// The whole value.
    All,
    /// An object: these members, each kept as given; the rest are skipped.
    Fields(&'static [(&'static str, &'static Keep)]),
    /// An array: every item kept as given.
    Items(&'static Keep),
}

/// The object metadata the rules read: identity, labels, annotations, and
/// whether it is being deleted. Not `managedFields`, the owner references
/// or the bookkeeping.
pub const METADATA: Keep = Keep::Fields(&[
    ("name", &Keep::All),
    ("generateName", &Keep::All),
    ("namespace", &Keep::All),
    ("labels", &Keep::All),
    ("annotations", &Keep::All),
    ("deletionTimestamp", &Keep::All),
]);

const NAME_ONLY: Keep = Keep::Fields(&[("name", &Keep::All)]);

/// What role rules and sidecar injection read of a container: its name
/// (names clash), image (roles match on it), ports (ports clash) and
/// restart policy (a native sidecar runs alongside the others).
const CONTAINER: Keep = Keep::Fields(&[
    ("name", &Keep::All),
    ("image", &Keep::All),
    ("ports", &Keep::All),
    ("restartPolicy", &Keep::All),
]);

/// What the rules read of a pod spec.
pub const POD_SPEC: Keep = Keep::Fields(&[
    ("containers", &Keep::Items(&CONTAINER)),
    ("initContainers", &Keep::Items(&CONTAINER)),
    ("ephemeralContainers", &Keep::Items(&NAME_ONLY)),
    ("volumes", &Keep::Items(&NAME_ONLY)),
    ("hostNetwork", &Keep::All),
    ("serviceAccountName", &Keep::All),
    ("serviceAccount", &Keep::All),
]);

/// A Pod: kind checks, metadata and spec; not `status`.
pub const POD: Keep = Keep::Fields(&[
    ("apiVersion", &Keep::All),
    ("kind", &Keep::All),
    ("metadata", &METADATA),
    ("spec", &POD_SPEC),
]);

/// A pod template.
pub const POD_TEMPLATE: Keep = Keep::Fields(&[("metadata", &METADATA), ("spec", &POD_SPEC)]);

/// A workload whose template is `spec.template` (all but CronJob).
pub const WORKLOAD: Keep = Keep::Fields(&[
    ("apiVersion", &Keep::All),
    ("kind", &Keep::All),
    ("metadata", &METADATA),
    ("spec", &Keep::Fields(&[("template", &POD_TEMPLATE)])),
]);

/// A CronJob: its template is `spec.jobTemplate.spec.template`.
pub const CRON_JOB: Keep = Keep::Fields(&[
    ("apiVersion", &Keep::All),
    ("kind", &Keep::All),
    ("metadata", &METADATA),
    (
        "spec",
        &Keep::Fields(&[(
            "jobTemplate",
            &Keep::Fields(&[("spec", &Keep::Fields(&[("template", &POD_TEMPLATE)]))]),
        )]),
    ),
]);

/// Kinds read whole but for their metadata's bookkeeping (NetworkPolicy:
/// every field of the spec matters; Namespace: `status.phase` does).
pub const WHOLE_BUT_METADATA: Keep = Keep::Fields(&[
    ("apiVersion", &Keep::All),
    ("kind", &Keep::All),
    ("metadata", &METADATA),
    ("spec", &Keep::All),
    ("status", &Keep::All),
]);

/// Reads `T` from the JSON text `json`, only as far as `keep` says; the
/// whole text must still be one well-formed JSON value.
pub fn from_str<T: DeserializeOwned>(json: &str, keep: &'static Keep) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = deserialize(&mut de, keep)?;
    de.end()?;
    Ok(value)
}

/// Reads `T` from the value `de` is at, only as far as `keep` says: the
/// same reading as [`from_str`], for a value inside a larger document.
pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
    de: D,
    keep: &'static Keep,
) -> Result<T, D::Error> {
    T::deserialize(Pruned::new(de, keep))
}

/// A deserializer that hides the members `keep` does not name.
struct Pruned<D> {
    de: D,
    keep: &'static Keep,
}

impl<D> Pruned<D> {
    fn new(de: D, keep: &'static Keep) -> Self {
        Pruned { de, keep }
    }
}

macro_rules! forward {
    ($($method:ident ( $($arg:ident : $ty:ty),* );)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                match self.keep {
                    Keep::All => self.de.$method($($arg,)* visitor),
                    keep => self.de.$method($($arg,)* Wrap { inner: visitor, keep }),
                }
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Pruned<D> {
    type Error = D::Error;

    forward! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// The caller's visitor, handed pruned maps and sequences.
struct Wrap<V> {
    inner: V,
    keep: &'static Keep,
}

macro_rules! pass {
    ($($method:ident ( $ty:ty );)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    pass! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Pruned::new(d, self.keep))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Pruned::new(d, self.keep))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        match self.keep {
            Keep::Items(item) => self.inner.visit_seq(PrunedSeq { seq, item }),
            // An array where an object belongs: the type's own visitor
            // says what it thinks of that.
            _ => self.inner.visit_seq(seq),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        match self.keep {
            Keep::Fields(fields) => self.inner.visit_map(PrunedMap {
                map,
                fields,
                next: &Keep::All,
            }),
            _ => self.inner.visit_map(map),
        }
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// A value's deserializer, pruned by `keep`.
struct PrunedSeed<S> {
    seed: S,
    keep: &'static Keep,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for PrunedSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Pruned::new(d, self.keep))
    }
}

struct PrunedSeq<A> {
    seq: A,
    item: &'static Keep,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for PrunedSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.seq.next_element_seed(PrunedSeed {
            seed,
            keep: self.item,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

struct PrunedMap<A> {
    map: A,
    fields: &'static [(&'static str, &'static Keep)],
    /// What to keep of the value of the key last handed out.
    next: &'static Keep,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for PrunedMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(key) = self.map.next_key_seed(KeySeed)? {
            let Some((_, keep)) = self.fields.iter().find(|(name, _)| *name == key) else {
                self.map.next_value::<IgnoredAny>()?;
                continue;
            };
            self.next = keep;
            return match key {
                Cow::Borrowed(k) => seed.deserialize(BorrowedStrDeserializer::new(k)),
                Cow::Owned(k) => seed.deserialize(StringDeserializer::new(k)),
            }
            .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.map.next_value_seed(PrunedSeed {
            seed,
            keep: self.next,
        })
    }
}

/// A member name, borrowed from the input unless it had escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "1234",
                "labels": {"app": "web"},
                "annotations": {"a": "b"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "9"}],
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {
                "serviceAccountName": "web",
                "hostNetwork": false,
                "containers": [{
                    "name": "app", "image": "nginx:1.27",
                    "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}],
                    "resources": {"limits": {"cpu": "1"}},
                }],
                "initContainers": [{"name": "log", "image": "busybox", "restartPolicy": "Always"}],
                "volumes": [{"name": "data", "emptyDir": {}}],
                "nodeName": "n1",
            },
            "status": {"phase": "Pending"},
        })
    }

    #[test]
    fn kept_fields_read_as_a_full_parse_reads_them_and_the_rest_is_left_out() {
        let text = pod().to_string();
        let pruned: Pod = from_str(&text, &POD).unwrap();
        let full: Pod = serde_json::from_str(&text).unwrap();
        let (m, s) = (&pruned.metadata, pruned.spec.as_ref().unwrap());
        let fs = full.spec.as_ref().unwrap();
        assert_eq!(m.name, full.metadata.name);
        assert_eq!(m.namespace, full.metadata.namespace);
        assert_eq!(m.labels, full.metadata.labels);
        assert_eq!(m.annotations, full.metadata.annotations);
        assert_eq!((m.uid.as_ref(), m.owner_references.as_ref()), (None, None));
        assert_eq!(m.managed_fields, None);
        assert_eq!(s.service_account_name, fs.service_account_name);
        assert_eq!(s.host_network, fs.host_network);
        assert_eq!(s.containers[0].name, "app");
        assert_eq!(s.containers[0].image, fs.containers[0].image);
        assert_eq!(s.containers[0].ports, fs.containers[0].ports);
        assert_eq!(
            (s.containers[0].env.as_ref(), s.node_name.as_ref()),
            (None, None)
        );
        assert_eq!(s.init_containers, fs.init_containers);
        assert_eq!(s.volumes.as_ref().unwrap()[0].name, "data");
        assert_eq!(s.volumes.as_ref().unwrap()[0].empty_dir, None);
        assert_eq!(pruned.status, None);
    }

    #[test]
    fn what_is_read_is_judged_as_a_full_parse_judges_it() {
        let bad = [
            json!({"apiVersion": "v2", "kind": "Pod"}),
            json!({"kind": "Service"}),
            json!({"spec": 3}),
            json!({"spec": {"containers": {"name": "x"}}}),
            json!({"spec": {"containers": [{"name": 3}]}}),
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": "80"}]}]}}),
            json!({"spec": {"hostNetwork": "yes"}}),
            json!({"metadata": {"labels": {"a": 1}}}),
            json!({"metadata": []}),
            json!([]),
        ];
        for b in bad {
            let text = b.to_string();
            assert!(serde_json::from_str::<Pod>(&text).is_err(), "{text}");
            assert!(from_str::<Pod>(&text, &POD).is_err(), "{text}");
        }
        // What is skipped is only checked for being JSON.
        let skipped =
            json!({"status": 3, "spec": {"nodeName": [], "containers": [{"name": "a", "env": 1}]}});
        assert!(from_str::<Pod>(&skipped.to_string(), &POD).is_ok());
        for broken in [r#"{"status": [}"#, r#"{"spec": {}} x"#, r#"{"status": 1"#] {
            assert!(from_str::<Pod>(broken, &POD).is_err(), "{broken}");
        }
    }

    #[test]
    fn escaped_member_names_are_read() {
        let text = r#"{"sp\u0065c": {"containers": [{"n\u0061me": "a", "image": "x"}]}}"#;
        let pod: Pod = from_str(text, &POD).unwrap();
        assert_eq!(pod.spec.unwrap().containers[0].name, "a");
    }

    #[test]
    fn a_workload_keeps_its_template() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
            "status": {"replicas": 2},
        });
        let d: Deployment = from_str(&d.to_string(), &WORKLOAD).unwrap();
        let spec = d.spec;
        assert_eq!(spec.replicas, None);
        let t = spec.template;
        assert_eq!(t.metadata.unwrap().labels.unwrap()["app"], "web");
        assert_eq!(
            t.spec.unwrap().containers[0].image.as_deref(),
            Some("nginx")
        );
    }
}
