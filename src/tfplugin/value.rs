//! Schema-driven codec for Terraform's cty values, wire-compatible with
//! go-cty's `cty/msgpack` and `cty/json` packages.
//!
//! Layout: `number` (exact decimals), `types` (cty types and their JSON
//! form), `msgpack` and `json` (the two wire codecs). Everything public is
//! re-exported here.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

mod json;
mod msgpack;
mod number;
mod types;

pub use json::{decode_json, decode_json_with, encode_json, JsonDecodeOptions};
pub use msgpack::{decode_msgpack, decode_msgpack_dynamic, encode_msgpack};
pub use number::{Number, ParseNumberError};
pub use types::{Type, TypeError};

/// Deepest nesting of collections/structures (and dynamic wrappers) the
/// decoders accept; keeps recursion bounded on hostile input.
pub const MAX_DEPTH: usize = 64;

/// A cty value without its type; the schema supplies the type when encoding.
///
/// Equality is by value: numbers compare numerically and sets ignore element
/// order (they are compared as multisets).
#[derive(Clone, Debug, Default)]
pub enum Value {
    #[default]
    Null,
    Unknown,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
    Tuple(Vec<Value>),
}

static NULL: Value = Value::Null;

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) | (Value::Unknown, Value::Unknown) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => a == b,
            (Value::Map(a), Value::Map(b)) | (Value::Object(a), Value::Object(b)) => a == b,
            (Value::Set(a), Value::Set(b)) => same_elements(a, b),
            _ => false,
        }
    }
}

impl Eq for Value {}

fn same_elements(a: &[Value], b: &[Value]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true;
    }
    let mut used = vec![false; b.len()];
    a.iter().all(|x| {
        let found = b.iter().enumerate().position(|(i, y)| !used[i] && x == y);
        if let Some(i) = found {
            used[i] = true;
        }
        found.is_some()
    })
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::mem::discriminant(self).hash(state);
        match self {
            Value::Null | Value::Unknown => {}
            Value::Bool(b) => b.hash(state),
            Value::Number(n) => n.hash(state),
            Value::String(s) => s.hash(state),
            Value::List(items) | Value::Tuple(items) => items.hash(state),
            Value::Map(entries) | Value::Object(entries) => entries.hash(state),
            Value::Set(items) => {
                // Order-independent, to agree with the multiset equality.
                let mut sum = 0u64;
                for item in items {
                    let mut h = DefaultHasher::new();
                    item.hash(&mut h);
                    sum = sum.wrapping_add(h.finish());
                }
                items.len().hash(state);
                sum.hash(state);
            }
        }
    }
}

impl Value {
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn number(n: impl Into<Number>) -> Value {
        Value::Number(n.into())
    }

    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The attribute `name` of an object; `Null` when absent or when `self`
    /// is not an object (including null and unknown objects).
    pub fn attr(&self, name: &str) -> &Value {
        match self {
            Value::Object(attrs) => attrs.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// Element `i` of a list, set (wire order) or tuple; `Null` otherwise.
    pub fn element(&self, i: usize) -> &Value {
        self.as_list()
            .and_then(|items| items.get(i))
            .unwrap_or(&NULL)
    }

    /// Element `key` of a map; `Null` otherwise.
    pub fn key(&self, key: &str) -> &Value {
        match self {
            Value::Map(entries) => entries.get(key).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_number().and_then(Number::to_i64)
    }

    /// Elements of a list, set or tuple.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// Entries of a map or attributes of an object.
    pub fn as_map(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Map(entries) | Value::Object(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// Known at the top level (it may still contain unknowns).
    pub fn is_known(&self) -> bool {
        !self.is_unknown()
    }

    /// No `Unknown` anywhere inside.
    pub fn is_known_fully(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => true,
            Value::List(items) | Value::Set(items) | Value::Tuple(items) => {
                items.iter().all(Value::is_known_fully)
            }
            Value::Map(entries) | Value::Object(entries) => {
                entries.values().all(Value::is_known_fully)
            }
        }
    }

    pub fn contains_unknown(&self) -> bool {
        !self.is_known_fully()
    }

    /// A copy with every `Unknown` replaced by `Null`, e.g. for computed
    /// attributes a provider could not fill in after apply.
    pub fn unknowns_to_null(&self) -> Value {
        match self {
            Value::Unknown => Value::Null,
            Value::List(items) => Value::List(items.iter().map(Value::unknowns_to_null).collect()),
            Value::Set(items) => Value::Set(items.iter().map(Value::unknowns_to_null).collect()),
            Value::Tuple(items) => {
                Value::Tuple(items.iter().map(Value::unknowns_to_null).collect())
            }
            Value::Map(e) => Value::Map(map_values(e, Value::unknowns_to_null)),
            Value::Object(e) => Value::Object(map_values(e, Value::unknowns_to_null)),
            other => other.clone(),
        }
    }

    /// Short name of the value's kind for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Unknown => "unknown",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
            Value::Tuple(_) => "tuple",
        }
    }

    /// The type cty would give this value, used to write `Dynamic` values.
    /// Nulls and unknowns have no type of their own (`Dynamic`), and element
    /// types of collections are unified across elements, so an empty
    /// collection comes out as a collection of `Dynamic`.
    pub fn implied_type(&self) -> Result<Type, String> {
        self.implied_type_at(0)
    }

    fn implied_type_at(&self, depth: usize) -> Result<Type, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("value nested more than {MAX_DEPTH} levels"));
        }
        let elements = |items: &mut dyn Iterator<Item = &Value>| -> Result<Type, String> {
            let mut acc = Type::Dynamic;
            for item in items {
                acc = unify(acc, item.implied_type_at(depth + 1)?)?;
            }
            Ok(acc)
        };
        Ok(match self {
            Value::Null | Value::Unknown => Type::Dynamic,
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::String(_) => Type::String,
            Value::List(items) => Type::list(elements(&mut items.iter())?),
            Value::Set(items) => Type::set(elements(&mut items.iter())?),
            Value::Map(entries) => Type::map(elements(&mut entries.values())?),
            Value::Object(attrs) => Type::Object(
                attrs
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.implied_type_at(depth + 1)?)))
                    .collect::<Result<_, String>>()?,
            ),
            Value::Tuple(items) => Type::Tuple(
                items
                    .iter()
                    .map(|v| v.implied_type_at(depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

fn map_values(
    entries: &BTreeMap<String, Value>,
    f: impl Fn(&Value) -> Value,
) -> BTreeMap<String, Value> {
    entries.iter().map(|(k, v)| (k.clone(), f(v))).collect()
}

/// Merges two implied types where `Dynamic` (from a null or unknown) yields
/// to anything more specific.
fn unify(a: Type, b: Type) -> Result<Type, String> {
    Ok(match (a, b) {
        (Type::Dynamic, t) | (t, Type::Dynamic) => t,
        (Type::List(a), Type::List(b)) => Type::list(unify(*a, *b)?),
        (Type::Set(a), Type::Set(b)) => Type::set(unify(*a, *b)?),
        (Type::Map(a), Type::Map(b)) => Type::map(unify(*a, *b)?),
        (Type::Object(a), Type::Object(b)) if a.len() == b.len() && a.keys().eq(b.keys()) => {
            let mut out = BTreeMap::new();
            for ((k, ta), (_, tb)) in a.into_iter().zip(b) {
                out.insert(k, unify(ta, tb)?);
            }
            Type::Object(out)
        }
        (Type::Tuple(a), Type::Tuple(b)) if a.len() == b.len() => Type::Tuple(
            a.into_iter()
                .zip(b)
                .map(|(x, y)| unify(x, y))
                .collect::<Result<_, _>>()?,
        ),
        (a, b) if a == b => a,
        (a, b) => return Err(format!("elements have inconsistent types ({a} and {b})")),
    })
}

/// The order cty writes set elements in: duplicates (of wholly known
/// elements) dropped, and for primitive element types known values sorted
/// (strings bytewise, numbers and bools by value), then unknowns, then nulls.
/// cty orders sets of structural types by an internal hash string that is
/// explicitly not part of its contract; those keep the caller's order.
fn set_wire_order<'a>(items: &'a [Value], ety: &Type) -> Vec<&'a Value> {
    let mut seen = HashSet::new();
    let mut out: Vec<&Value> = items
        .iter()
        .filter(|v| !v.is_known_fully() || seen.insert(*v))
        .collect();
    if ety.is_primitive() {
        let rank = |v: &Value| match v {
            Value::Unknown => 1,
            Value::Null => 2,
            _ => 0,
        };
        out.sort_by(|a, b| {
            rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
                (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
                (Value::Number(x), Value::Number(y)) => x.cmp(y),
                (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
                _ => std::cmp::Ordering::Equal,
            })
        });
    }
    out
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Number(v.into())
    }
}

impl From<Number> for Value {
    fn from(v: Number) -> Value {
        Value::Number(v)
    }
}

/// One step of an attribute path, mirroring tfplugin6 `AttributePath.Step`
/// (`attribute_name`, `element_key_string`, `element_key_int`). Set elements
/// are addressed by their position in wire order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathStep {
    Attr(String),
    Key(String),
    Index(i64),
}

/// Renders a path the way Terraform shows one: `tags["a"]`, `ports[2].from`.
pub fn format_path(path: &[PathStep]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            PathStep::Attr(name) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(name);
            }
            PathStep::Key(key) => s.push_str(&format!("[{key:?}]")),
            PathStep::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn fmt_with_path(f: &mut fmt::Formatter<'_>, path: &[PathStep], message: &str) -> fmt::Result {
    if path.is_empty() {
        f.write_str(message)
    } else {
        write!(f, "{}: {message}", format_path(path))
    }
}

/// Why some bytes could not be read as a value of the schema type, and
/// where inside the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub path: Vec<PathStep>,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_with_path(f, &self.path, &self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Why a value does not fit the schema type (or cannot be written at all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError {
    pub path: Vec<PathStep>,
    pub message: String,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_with_path(f, &self.path, &self.message)
    }
}

impl std::error::Error for EncodeError {}

/// The type-mismatch message both encoders use.
fn mismatch(ty: &Type, v: &Value) -> String {
    let article = match ty {
        Type::Object(_) => "an",
        _ => "a",
    };
    format!(
        "{article} {} is required, got {}",
        ty.friendly_name(),
        v.kind_name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors() {
        let v = Value::object([
            ("name", Value::from("gpu")),
            ("count", Value::from(3)),
            ("on", Value::from(true)),
            ("tags", Value::map([("a", Value::from("b"))])),
            ("ports", Value::List(vec![Value::from(22), Value::Unknown])),
        ]);
        assert_eq!(v.attr("name").as_str(), Some("gpu"));
        assert_eq!(v.attr("count").as_i64(), Some(3));
        assert_eq!(v.attr("on").as_bool(), Some(true));
        assert!(v.attr("missing").is_null());
        assert!(v.attr("name").attr("x").is_null());
        assert_eq!(v.attr("tags").key("a").as_str(), Some("b"));
        assert_eq!(v.attr("ports").element(0).as_i64(), Some(22));
        assert!(v.attr("ports").element(1).is_unknown());
        assert!(v.attr("ports").element(9).is_null());
        assert_eq!(v.attr("ports").as_list().map(<[Value]>::len), Some(2));
        assert!(v.contains_unknown());
        assert!(!v.is_known_fully());
        assert!(v.is_known());
        assert!(v.unknowns_to_null().is_known_fully());
        assert!(v.attr("ports").unknowns_to_null().element(1).is_null());
        assert!(Value::Null.is_known_fully());
    }

    #[test]
    fn set_equality_ignores_order() {
        let a = Value::Set(vec![Value::from("a"), Value::from("b"), Value::from("b")]);
        let b = Value::Set(vec![Value::from("b"), Value::from("a"), Value::from("b")]);
        let c = Value::Set(vec![Value::from("a"), Value::from("a"), Value::from("b")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            a,
            Value::List(vec![Value::from("a"), Value::from("b"), Value::from("b")])
        );
        let hash = |v: &Value| {
            let mut h = DefaultHasher::new();
            v.hash(&mut h);
            h.finish()
        };
        assert_eq!(hash(&a), hash(&b));
        assert_eq!(Value::from(1), Value::Number("1.0".parse().unwrap()));
    }

    #[test]
    fn path_display() {
        let e = DecodeError {
            path: vec![PathStep::Attr("tags".into()), PathStep::Key("k".into())],
            message: "a number is required".into(),
        };
        assert_eq!(e.to_string(), "tags[\"k\"]: a number is required");
        let p = [
            PathStep::Attr("ports".into()),
            PathStep::Index(2),
            PathStep::Attr("from".into()),
        ];
        assert_eq!(format_path(&p), "ports[2].from");
        let root = EncodeError {
            path: vec![],
            message: "boom".into(),
        };
        assert_eq!(root.to_string(), "boom");
    }

    #[test]
    fn implied_types() {
        let v = Value::object([
            ("l", Value::List(vec![Value::Null, Value::from("x")])),
            ("e", Value::Set(vec![])),
            (
                "o",
                Value::List(vec![
                    Value::object([("a", Value::Null)]),
                    Value::object([("a", Value::from(1))]),
                ]),
            ),
            ("t", Value::Tuple(vec![Value::from(true), Value::from("s")])),
        ]);
        assert_eq!(
            v.implied_type().unwrap(),
            Type::object([
                ("l", Type::list(Type::String)),
                ("e", Type::set(Type::Dynamic)),
                ("o", Type::list(Type::object([("a", Type::Number)]))),
                ("t", Type::tuple([Type::Bool, Type::String])),
            ])
        );
        let bad = Value::List(vec![Value::from("x"), Value::from(1)]);
        assert!(bad.implied_type().is_err());
    }

    #[test]
    fn set_order_matches_cty() {
        let items = vec![
            Value::Null,
            Value::from("b"),
            Value::Unknown,
            Value::from("a"),
            Value::from("b"),
            Value::Unknown,
        ];
        let ordered: Vec<&Value> = set_wire_order(&items, &Type::String);
        assert_eq!(
            ordered,
            vec![
                &Value::from("a"),
                &Value::from("b"),
                &Value::Unknown,
                &Value::Unknown,
                &Value::Null
            ]
        );
        let nums = vec![Value::from(10), Value::from(-1), Value::from(2)];
        let ordered: Vec<i64> = set_wire_order(&nums, &Type::Number)
            .into_iter()
            .filter_map(Value::as_i64)
            .collect();
        assert_eq!(ordered, vec![-1, 2, 10]);
    }
}
