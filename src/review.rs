//! The AdmissionReview wire format (`admission.k8s.io/v1`): bytes in, a
//! [`Request`] out; a [`Verdict`] in, response bytes out.
//!
//! Written against the captured requests in `../shared/fixtures` rather
//! than kube-core's types for three reasons: the object is decoded
//! straight into its typed form, with no intermediate tree (as it streams
//! by when its kind came first, as the API server writes it; else from its
//! text captured as a `RawValue`), and only as far as the rules read it
//! ([`crate::prune`]); the patch goes out base64-encoded as the API server expects (kube-core sends
//! an array of numbers, kube-rs#1781); and the response carries exactly the
//! fields the API server reads, `status.reason` included.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use base64::Engine;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::decide::{Gvk, Object, Operation, Request, User, Verdict};

/// `apiVersion` of the reviews palisade speaks.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// `kind` of the reviews.
pub const KIND: &str = "AdmissionReview";

/// Why a body is not an AdmissionReview palisade can decide; answered
/// with HTTP 400 and this text.
#[derive(Debug, Error)]
pub enum ReviewError {
    /// Not JSON, or not of the AdmissionReview shape.
    #[error("body is not an AdmissionReview: {0}")]
    Malformed(String),
    /// Another apiVersion or kind.
    #[error(
        "expected apiVersion {API_VERSION} kind {KIND}, got apiVersion {api_version:?} kind {kind:?}"
    )]
    WrongKind {
        /// The body's apiVersion.
        api_version: String,
        /// The body's kind.
        kind: String,
    },
    /// No `request`.
    #[error("AdmissionReview has no request")]
    MissingRequest,
    /// No `request.uid`.
    #[error("AdmissionReview request has no uid")]
    MissingUid,
    /// The object does not parse as its declared kind.
    #[error("request.{field} is not a valid {kind}: {message}")]
    BadObject {
        /// `object` or `oldObject`.
        field: &'static str,
        /// The declared kind.
        kind: String,
        /// The parser's message.
        message: String,
    },
}

/// The review around a request `R`: [`Streamed`] or [`Captured`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "R: Deserialize<'de>"))]
struct WireReview<R> {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default, deserialize_with = "object_or_null")]
    request: Option<R>,
}

/// A request whose objects are `O`: decoded ([`Streamed`]), or captured as
/// text to be decoded once the kind is known ([`Captured`]).
#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "O: Deserialize<'de> + Default")
)]
struct WireRequest<O> {
    #[serde(default)]
    uid: String,
    #[serde(deserialize_with = "object_only")]
    kind: Gvk,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(deserialize_with = "operation")]
    operation: Operation,
    #[serde(default, deserialize_with = "object_only")]
    user_info: User,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    object: O,
    #[serde(default)]
    old_object: O,
}

/// The request as the fallback reading takes it: each object's text,
/// decoded once the whole request has been read and its kind is known.
type Captured<'a> = WireRequest<Option<&'a RawValue>>;

/// The request read in one pass, each object decoded as it streams by.
/// That needs the kind before the objects, which is how the API server
/// writes a review; a body that has them the other way round, or that this
/// reading rejects for any reason, is read again as [`Captured`], whose
/// answer is the one given, so the two readings never disagree.
struct Streamed(WireRequest<Option<Object>>);

/// The members of a request, as [`Streamed`] meets them.
enum Field {
    Uid,
    Kind,
    SubResource,
    Name,
    Namespace,
    Operation,
    UserInfo,
    DryRun,
    Object,
    OldObject,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "uid" => Field::Uid,
                    "kind" => Field::Kind,
                    "subResource" => Field::SubResource,
                    "name" => Field::Name,
                    "namespace" => Field::Namespace,
                    "operation" => Field::Operation,
                    "userInfo" => Field::UserInfo,
                    "dryRun" => Field::DryRun,
                    "object" => Field::Object,
                    "oldObject" => Field::OldObject,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(FieldVisitor)
    }
}

/// Stores a member's value, refusing a second one as serde's derived
/// structs do.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
}

/// A member read through one of the `deserialize_with` functions above.
struct With<T>(T);

macro_rules! with {
    ($t:ty, $f:path) => {
        impl<'de> Deserialize<'de> for With<$t> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $f(d).map(With)
            }
        }
    };
}
with!(Gvk, object_only);
with!(User, object_only);
with!(Operation, operation);

/// `object` or `oldObject` of kind `.0`: `null`, or decoded as
/// [`Object::from_wire`] decodes its text.
struct ObjectSeed<'k>(&'k Gvk);

impl<'de> de::DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = Option<Object>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Object>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = Option<Object>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} or null", self.0)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<Object>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Object>, D::Error> {
        Object::from_stream(self.0, d).map(Some)
    }
}

impl<'de> Deserialize<'de> for Streamed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Streamed, D::Error> {
        d.deserialize_map(StreamedVisitor)
    }
}

struct StreamedVisitor;

impl<'de> Visitor<'de> for StreamedVisitor {
    type Value = Streamed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an admission request")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Streamed, A::Error> {
        let (mut uid, mut kind, mut sub_resource, mut name, mut namespace) =
            (None, None::<Gvk>, None, None, None);
        let (mut operation, mut user_info, mut dry_run, mut object, mut old_object) =
            (None, None, None, None, None);
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Uid => once(&mut uid, map.next_value()?, "uid")?,
                Field::Kind => {
                    let With(gvk) = map.next_value()?;
                    once(&mut kind, gvk, "kind")?;
                }
                Field::SubResource => once(&mut sub_resource, map.next_value()?, "subResource")?,
                Field::Name => once(&mut name, map.next_value()?, "name")?,
                Field::Namespace => once(&mut namespace, map.next_value()?, "namespace")?,
                Field::Operation => {
                    let With(op) = map.next_value()?;
                    once(&mut operation, op, "operation")?;
                }
                Field::UserInfo => {
                    let With(user) = map.next_value()?;
                    once(&mut user_info, user, "userInfo")?;
                }
                Field::DryRun => once(&mut dry_run, map.next_value()?, "dryRun")?,
                Field::Object | Field::OldObject => {
                    let (slot, member) = match field {
                        Field::Object => (&mut object, "object"),
                        _ => (&mut old_object, "oldObject"),
                    };
                    let Some(gvk) = &kind else {
                        return Err(de::Error::custom(format_args!(
                            "request.{member} comes before request.kind"
                        )));
                    };
                    once(slot, map.next_value_seed(ObjectSeed(gvk))?, member)?;
                }
                Field::Other => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(Streamed(WireRequest {
            uid: uid.unwrap_or_default(),
            kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
            sub_resource: sub_resource.flatten(),
            name: name.flatten(),
            namespace: namespace.flatten(),
            operation: operation.ok_or_else(|| de::Error::missing_field("operation"))?,
            user_info: user_info.unwrap_or_default(),
            dry_run: dry_run.flatten(),
            object: object.flatten(),
            old_object: old_object.flatten(),
        }))
    }
}

/// serde's derived structs also read a JSON array, field by field in
/// declaration order, so `["admission.k8s.io/v1","AdmissionReview",{..}]`
/// would pass for a review. The wire format has objects only; found by
/// tests/fuzz.rs.
fn object_only<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(ObjectVisitor(PhantomData))
}

/// [`object_only`], or `null`.
fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OptionVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for OptionVisitor<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Option<T>, D2::Error> {
            object_only(d).map(Some)
        }
    }
    d.deserialize_option(OptionVisitor(PhantomData))
}

/// The operation as the string the API server sends; serde's derived enum
/// would also take `{"CREATE": null}`.
fn operation<'de, D: Deserializer<'de>>(d: D) -> Result<Operation, D::Error> {
    struct OperationVisitor;
    impl Visitor<'_> for OperationVisitor {
        type Value = Operation;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("one of CREATE, UPDATE, DELETE, CONNECT")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Operation, E> {
            match v {
                "CREATE" => Ok(Operation::Create),
                "UPDATE" => Ok(Operation::Update),
                "DELETE" => Ok(Operation::Delete),
                "CONNECT" => Ok(Operation::Connect),
                other => Err(E::unknown_variant(
                    other,
                    &["CREATE", "UPDATE", "DELETE", "CONNECT"],
                )),
            }
        }
    }
    d.deserialize_str(OperationVisitor)
}

/// Reads an AdmissionReview request body.
pub fn parse(body: &[u8]) -> Result<Request, ReviewError> {
    match parse_in_one_pass(body) {
        Some(request) => Ok(request),
        None => parse_captured(body),
    }
}

/// Reads a review body in one pass, decoding each object as it streams by;
/// `None` when this reading cannot take the body (an object before its
/// kind, or anything [`parse_captured`] might reject, which then gives the
/// answer). Most of a review is its object, so not scanning it twice is a
/// fifth of the parse; the two readings agree on every body they both take.
pub fn parse_in_one_pass(body: &[u8]) -> Option<Request> {
    // Valid UTF-8 only: the captured reading checks each object's text
    // for it, and this one must not take what that one rejects.
    let text = std::str::from_utf8(body).ok()?;
    let review = envelope::<Streamed, _>(serde_json::Deserializer::from_str(text)).ok()?;
    let Streamed(mut r) = checked(review).ok()?;
    let (object, old_object) = (r.object.take(), r.old_object.take());
    Some(request(r, object, old_object))
}

/// Reads a review body in two passes: the request with each object's text
/// set aside, then each object as the kind the request names. This is the
/// reading whose answers, and errors, [`parse`] gives.
pub fn parse_captured(body: &[u8]) -> Result<Request, ReviewError> {
    let malformed = |e: serde_json::Error| ReviewError::Malformed(e.to_string());
    let review = envelope::<Captured<'_>, _>(serde_json::Deserializer::from_slice(body))
        .map_err(malformed)?;
    let r = checked(review)?;
    let object =
        |field: &'static str, raw: Option<&RawValue>| -> Result<Option<Object>, ReviewError> {
            match raw {
                // `null` is `None` already: serde_json reads it as an
                // absent option, never as a raw value.
                None => Ok(None),
                Some(raw) => Object::from_wire(&r.kind, raw.get())
                    .map(Some)
                    .map_err(|e| ReviewError::BadObject {
                        field,
                        kind: r.kind.to_string(),
                        message: e.to_string(),
                    }),
            }
        };
    let (object, old_object) = (
        object("object", r.object)?,
        object("oldObject", r.old_object)?,
    );
    Ok(request(r, object, old_object))
}

/// The review object, and nothing after it: trailing bytes are not a
/// review either.
fn envelope<'de, R: Deserialize<'de>, Rd: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<Rd>,
) -> serde_json::Result<WireReview<R>> {
    let review = object_only(&mut de)?;
    de.end()?;
    Ok(review)
}

/// The request of a review of the version palisade speaks, with a uid.
fn checked<R: HasUid>(review: WireReview<R>) -> Result<R, ReviewError> {
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(ReviewError::WrongKind {
            api_version: review.api_version,
            kind: review.kind,
        });
    }
    let r = review.request.ok_or(ReviewError::MissingRequest)?;
    if r.uid().is_empty() {
        return Err(ReviewError::MissingUid);
    }
    Ok(r)
}

trait HasUid {
    fn uid(&self) -> &str;
}

impl<O> HasUid for WireRequest<O> {
    fn uid(&self) -> &str {
        &self.uid
    }
}

impl HasUid for Streamed {
    fn uid(&self) -> &str {
        &self.0.uid
    }
}

fn request<O>(r: WireRequest<O>, object: Option<Object>, old_object: Option<Object>) -> Request {
    Request {
        object,
        old_object,
        uid: r.uid,
        kind: r.kind,
        sub_resource: r.sub_resource.filter(|s| !s.is_empty()),
        operation: r.operation,
        namespace: r.namespace.filter(|s| !s.is_empty()),
        name: r.name.filter(|s| !s.is_empty()),
        user: r.user_info,
        dry_run: r.dry_run.unwrap_or(false),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponseReview {
    api_version: &'static str,
    kind: &'static str,
    response: WireResponse,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<WireStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    audit_annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct WireStatus {
    code: u16,
    reason: &'static str,
    message: String,
}

/// The response AdmissionReview for a verdict, as JSON bytes. A validating
/// webhook must never return a patch (the API server rejects the whole
/// response), so patches go out only when `patches_allowed`.
pub fn respond(uid: &str, verdict: &Verdict, patches_allowed: bool) -> Vec<u8> {
    let allowed = verdict.allowed();
    let patch = verdict.effective_patch();
    let patch = (patches_allowed && !patch.is_empty())
        .then(|| serde_json::to_vec(patch).ok())
        .flatten()
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes));
    let review = WireResponseReview {
        api_version: API_VERSION,
        kind: KIND,
        response: WireResponse {
            uid: uid.to_owned(),
            allowed,
            status: verdict.denial_message().map(|message| WireStatus {
                code: 403,
                reason: "Forbidden",
                message,
            }),
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            audit_annotations: verdict.audit_annotations(),
            warnings: verdict
                .client_warnings()
                .into_iter()
                .map(|w| header_safe(&w))
                .collect(),
        },
    };
    // Serializing plain strings, bools and maps of strings cannot fail; the
    // fallback is still a valid answer, never a panic.
    serde_json::to_vec(&review).unwrap_or_else(|_| {
        format!(r#"{{"apiVersion":"{API_VERSION}","kind":"{KIND}","response":{{"uid":{},"allowed":{allowed}}}}}"#, serde_json::Value::String(uid.to_owned())).into_bytes()
    })
}

/// Warnings travel as HTTP `Warning` headers: no control characters, and
/// short enough not to be cut by the API server.
fn header_safe(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.len() <= 1024 {
        return clean;
    }
    let mut end = 1021;
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &clean[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::RuleId;
    use crate::mode::Mode;

    const POD: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"ns","operation":"CREATE","userInfo":{"username":"me","groups":["g"]},"object":{"metadata":{"name":"p"},"spec":{"containers":[]}},"oldObject":null,"dryRun":true}}"#;

    #[test]
    fn reads_a_request() {
        let r = parse(POD.as_bytes()).unwrap();
        assert_eq!(r.uid, "u-1");
        assert_eq!(r.operation, Operation::Create);
        assert!(r.dry_run);
        assert!(matches!(r.object, Some(Object::Pod(_))));
        assert!(r.old_object.is_none());
        assert_eq!(r.user.groups, vec!["g"]);
    }

    #[test]
    fn rejects_what_is_not_a_review() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "not an AdmissionReview"),
            (b"{\"apiVersion\":", "not an AdmissionReview"),
            (br#"{"apiVersion":"v1","kind":"Pod"}"#, "expected apiVersion"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "no request"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod","version":"v1"},"operation":"CREATE"}}"#,
                "no uid",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"kind":"Pod","version":"v1"},"operation":"CREATE","object":{"spec":7}}}"#,
                "request.object is not a valid v1/Pod",
            ),
        ];
        for (body, needle) in cases {
            let e = parse(body).unwrap_err().to_string();
            assert!(e.contains(needle), "{}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn objects_only_in_object_positions() {
        // serde's derived structs would read these arrays field by field.
        let positional = r#"["admission.k8s.io/v1","AdmissionReview",{"uid":"u","kind":{"kind":"Pod","version":"v1"},"operation":"CREATE"}]"#;
        let gvk_array = POD.replace(
            r#"{"group":"","version":"v1","kind":"Pod"}"#,
            r#"["","v1","Pod"]"#,
        );
        let user_array = POD.replace(r#"{"username":"me","groups":["g"]}"#, r#"["me",["g"]]"#);
        let op_map = POD.replace(r#""CREATE""#, r#"{"CREATE":null}"#);
        let trailing = format!("{POD} x");
        for body in [positional, &gvk_array, &user_array, &op_map, &trailing] {
            assert!(parse(body.as_bytes()).is_err(), "{body}");
        }
        let no_request =
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}"#;
        assert!(matches!(
            parse(no_request.as_bytes()),
            Err(ReviewError::MissingRequest)
        ));
        assert!(parse(format!("{POD}\n").as_bytes()).is_ok());
    }

    #[test]
    fn managed_fields_are_not_parsed() {
        // Not even checked beyond being JSON: no rule reads them.
        let review = POD.replace(
            r#""metadata":{"name":"p"}"#,
            r#""metadata":{"name":"p","labels":{"app":"web"},"managedFields":[{"manager":7,"fieldsV1":{"f:metadata":{"f:labels":{}}}}]}"#,
        );
        let r = parse(review.as_bytes()).unwrap();
        let Some(Object::Pod(pod)) = r.object else {
            panic!("a pod")
        };
        assert!(pod.metadata.managed_fields.is_none());
        assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
    }

    /// Every captured review, as captured and compacted as the API server
    /// sends it.
    fn captured_bodies() -> Vec<(String, Vec<u8>)> {
        let dir = crate::shared_fixtures::shared_fixtures("admission-reviews");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read(&path).unwrap();
                let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                out.push((
                    format!("{name} (compact)"),
                    serde_json::to_vec(&value).unwrap(),
                ));
                out.push((name, text));
            }
        }
        assert!(out.len() > 100, "the captured reviews are there");
        out
    }

    #[test]
    fn captured_reviews_are_read_in_one_pass_as_in_two() {
        for (name, body) in captured_bodies() {
            let once =
                parse_in_one_pass(&body).unwrap_or_else(|| panic!("{name}: not read in one pass"));
            let twice = parse_captured(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(once, twice, "{name}");
        }
    }

    #[test]
    fn what_one_pass_cannot_take_is_read_in_two() {
        let object_first = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"object":{"metadata":{"name":"p","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"nginx"}]}},"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"ns","operation":"CREATE"}}"#;
        assert!(parse_in_one_pass(object_first.as_bytes()).is_none());
        let r = parse(object_first.as_bytes()).unwrap();
        let Some(Object::Pod(pod)) = &r.object else {
            panic!("a pod: {r:?}")
        };
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["app"], "web");
        assert_eq!(r, parse_captured(object_first.as_bytes()).unwrap());

        // Not UTF-8 inside a member no rule reads: the captured reading
        // rejects the object's text, so one pass must not take it either.
        let mut bad_utf8 = POD
            .replace(r#""spec":{"#, r#""spec":{"x":"?","#)
            .into_bytes();
        let at = bad_utf8.iter().position(|&b| b == b'?').unwrap();
        bad_utf8[at] = 0xff;
        assert!(parse_in_one_pass(&bad_utf8).is_none());
        let e = parse(&bad_utf8).unwrap_err();
        assert_eq!(
            e.to_string(),
            parse_captured(&bad_utf8).unwrap_err().to_string()
        );

        // Errors come from the captured reading, in its words.
        let bad_pod = POD.replace(r#""spec":{"containers":[]}"#, r#""spec":{"containers":7}"#);
        for body in [
            POD.replace(
                r#""operation":"CREATE""#,
                r#""operation":"CREATE","kind":{"kind":"Pod","version":"v1"}"#,
            ),
            bad_pod.clone(),
            POD.replace(r#""uid":"u-1""#, r#""uid":"""#),
            POD.replace(r#""dryRun":true"#, r#""dryRun":"yes""#),
        ] {
            assert!(parse_in_one_pass(body.as_bytes()).is_none(), "{body}");
            assert_eq!(
                parse(body.as_bytes()).unwrap_err().to_string(),
                parse_captured(body.as_bytes()).unwrap_err().to_string()
            );
        }
        let e = parse(bad_pod.as_bytes()).unwrap_err().to_string();
        assert!(e.starts_with("request.object is not a valid v1/Pod"), "{e}");
    }

    #[test]
    fn denial_on_the_wire() {
        let mut v = Verdict::new(Mode::Enforce);
        v.violate(
            RuleId::NoAllowAll,
            "policy x is allow-all\nwhy\nFix: narrow it",
            true,
        );
        let out: serde_json::Value = serde_json::from_slice(&respond("u-1", &v, false)).unwrap();
        assert_eq!(out["apiVersion"], API_VERSION);
        assert_eq!(out["kind"], KIND);
        let r = &out["response"];
        assert_eq!(r["uid"], "u-1");
        assert_eq!(r["allowed"], false);
        assert_eq!(r["status"]["code"], 403);
        assert_eq!(r["status"]["reason"], "Forbidden");
        assert!(
            r["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("[no-allow-all] policy x is allow-all")
        );
        assert_eq!(r["auditAnnotations"]["decision"], "deny");
        assert!(r.get("patch").is_none() && r.get("warnings").is_none());
    }

    #[test]
    fn patch_is_base64_json_and_only_where_allowed() {
        let mut v = Verdict::new(Mode::Enforce);
        v.patch.push(
            serde_json::from_value(
                serde_json::json!({"op":"add","path":"/metadata/labels","value":{"a":"b"}}),
            )
            .unwrap(),
        );
        let out: serde_json::Value = serde_json::from_slice(&respond("u", &v, true)).unwrap();
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().unwrap())
            .unwrap();
        let ops: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(ops[0]["path"], "/metadata/labels");
        let out: serde_json::Value = serde_json::from_slice(&respond("u", &v, false)).unwrap();
        assert!(
            out["response"].get("patch").is_none() && out["response"].get("patchType").is_none()
        );
    }

    #[test]
    fn warnings_are_header_safe() {
        assert_eq!(header_safe("a\nb\tc"), "a b c");
        assert!(header_safe(&"x".repeat(5000)).len() <= 1024);
    }
}
