//! cty types and their JSON form (`"string"`, `["list","string"]`, ...), which
//! is what tfplugin6 `Schema.Attribute.type` carries and what dynamic values
//! embed on the wire.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value as Json;

use super::json::write_json_string;
use super::MAX_DEPTH;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    Bool,
    Number,
    String,
    /// cty's `DynamicPseudoType`: the value carries its own type on the wire.
    Dynamic,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
    Tuple(Vec<Type>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid type description: {0}")]
pub struct TypeError(pub String);

impl Type {
    pub fn list(element: Type) -> Type {
        Type::List(Box::new(element))
    }

    pub fn set(element: Type) -> Type {
        Type::Set(Box::new(element))
    }

    pub fn map(element: Type) -> Type {
        Type::Map(Box::new(element))
    }

    pub fn object<K: Into<String>>(attrs: impl IntoIterator<Item = (K, Type)>) -> Type {
        Type::Object(attrs.into_iter().map(|(k, t)| (k.into(), t)).collect())
    }

    pub fn tuple(elements: impl IntoIterator<Item = Type>) -> Type {
        Type::Tuple(elements.into_iter().collect())
    }

    pub fn is_primitive(&self) -> bool {
        matches!(self, Type::Bool | Type::Number | Type::String)
    }

    /// Element type of a list, set or map.
    pub fn element_type(&self) -> Option<&Type> {
        match self {
            Type::List(t) | Type::Set(t) | Type::Map(t) => Some(t),
            _ => None,
        }
    }

    pub fn attribute_types(&self) -> Option<&BTreeMap<String, Type>> {
        match self {
            Type::Object(attrs) => Some(attrs),
            _ => None,
        }
    }

    /// Parses cty's type JSON. The optional-attributes list that Terraform
    /// may append to object types only matters for type conversion in
    /// Terraform itself, so it is validated and then dropped.
    pub fn from_json(bytes: &[u8]) -> Result<Type, TypeError> {
        let json: Json =
            serde_json::from_slice(bytes).map_err(|e| TypeError(format!("not JSON: {e}")))?;
        Type::from_json_value(&json)
    }

    pub fn from_json_value(json: &Json) -> Result<Type, TypeError> {
        parse(json, 0)
    }

    /// Byte-for-byte what cty's `Type.MarshalJSON` produces: no whitespace,
    /// object attributes sorted, Go's string escaping.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out);
        out
    }

    pub(super) fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Type::Bool => out.extend_from_slice(b"\"bool\""),
            Type::Number => out.extend_from_slice(b"\"number\""),
            Type::String => out.extend_from_slice(b"\"string\""),
            Type::Dynamic => out.extend_from_slice(b"\"dynamic\""),
            Type::List(t) | Type::Set(t) | Type::Map(t) => {
                out.extend_from_slice(match self {
                    Type::List(_) => b"[\"list\",",
                    Type::Set(_) => b"[\"set\",",
                    _ => b"[\"map\",",
                });
                t.write_json(out);
                out.push(b']');
            }
            Type::Object(attrs) => {
                out.extend_from_slice(b"[\"object\",{");
                for (i, (name, t)) in attrs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_json_string(out, name);
                    out.push(b':');
                    t.write_json(out);
                }
                out.extend_from_slice(b"}]");
            }
            Type::Tuple(elems) => {
                out.extend_from_slice(b"[\"tuple\",[");
                for (i, t) in elems.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    t.write_json(out);
                }
                out.extend_from_slice(b"]]");
            }
        }
    }

    /// Short human-readable description, as cty's `FriendlyName`.
    pub fn friendly_name(&self) -> String {
        match self {
            Type::Bool => "bool".into(),
            Type::Number => "number".into(),
            Type::String => "string".into(),
            Type::Dynamic => "dynamic".into(),
            Type::List(t) => format!("list of {}", t.friendly_name()),
            Type::Set(t) => format!("set of {}", t.friendly_name()),
            Type::Map(t) => format!("map of {}", t.friendly_name()),
            Type::Object(_) => "object".into(),
            Type::Tuple(_) => "tuple".into(),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.friendly_name())
    }
}

fn parse(json: &Json, depth: usize) -> Result<Type, TypeError> {
    if depth >= MAX_DEPTH {
        return Err(TypeError(format!("nested more than {MAX_DEPTH} levels")));
    }
    match json {
        Json::String(name) => match name.as_str() {
            "bool" => Ok(Type::Bool),
            "number" => Ok(Type::Number),
            "string" => Ok(Type::String),
            "dynamic" => Ok(Type::Dynamic),
            other => Err(TypeError(format!("invalid primitive type name {other:?}"))),
        },
        Json::Array(items) => {
            let Some(Json::String(kind)) = items.first() else {
                return Err(TypeError("invalid complex type kind name".into()));
            };
            let arg = items.get(1);
            let want_len = if kind == "object" && items.len() == 3 {
                3
            } else {
                2
            };
            if items.len() != want_len {
                return Err(TypeError(format!("{kind} type needs exactly one argument")));
            }
            match (kind.as_str(), arg) {
                ("list", Some(t)) => Ok(Type::list(parse(t, depth + 1)?)),
                ("set", Some(t)) => Ok(Type::set(parse(t, depth + 1)?)),
                ("map", Some(t)) => Ok(Type::map(parse(t, depth + 1)?)),
                ("object", Some(Json::Object(attrs))) => {
                    if let Some(optional) = items.get(2) {
                        let ok = optional
                            .as_array()
                            .is_some_and(|names| names.iter().all(Json::is_string));
                        if !ok {
                            return Err(TypeError(
                                "optional attributes must be a list of names".into(),
                            ));
                        }
                    }
                    let mut out = BTreeMap::new();
                    for (name, t) in attrs {
                        out.insert(name.clone(), parse(t, depth + 1)?);
                    }
                    Ok(Type::Object(out))
                }
                ("tuple", Some(Json::Array(elems))) => Ok(Type::Tuple(
                    elems
                        .iter()
                        .map(|t| parse(t, depth + 1))
                        .collect::<Result<_, _>>()?,
                )),
                ("object", _) => Err(TypeError("object attributes must be a JSON object".into())),
                ("tuple", _) => Err(TypeError("tuple elements must be a JSON array".into())),
                (other, _) => Err(TypeError(format!("invalid complex type kind {other:?}"))),
            }
        }
        _ => Err(TypeError(
            "expected a type name or [kind, ...] array".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(json: &str) -> Type {
        let t = Type::from_json(json.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(t.to_json()).unwrap(), json);
        t
    }

    #[test]
    fn json_round_trip_exact_bytes() {
        assert_eq!(rt("\"string\""), Type::String);
        assert_eq!(rt("\"number\""), Type::Number);
        assert_eq!(rt("\"bool\""), Type::Bool);
        assert_eq!(rt("\"dynamic\""), Type::Dynamic);
        assert_eq!(rt("[\"list\",\"string\"]"), Type::list(Type::String));
        assert_eq!(rt("[\"set\",\"number\"]"), Type::set(Type::Number));
        assert_eq!(rt("[\"map\",\"bool\"]"), Type::map(Type::Bool));
        assert_eq!(
            rt("[\"object\",{\"a\":\"string\",\"b\":[\"list\",\"number\"]}]"),
            Type::object([("b", Type::list(Type::Number)), ("a", Type::String)])
        );
        assert_eq!(rt("[\"object\",{}]"), Type::Object(BTreeMap::new()));
        assert_eq!(
            rt("[\"tuple\",[\"string\",\"dynamic\"]]"),
            Type::tuple([Type::String, Type::Dynamic])
        );
        assert_eq!(rt("[\"tuple\",[]]"), Type::Tuple(vec![]));
    }

    #[test]
    fn optional_attrs_and_whitespace_accepted() {
        let t = Type::from_json(br#" [ "object" , {"z":"string","a":"number"}, ["z"] ] "#).unwrap();
        assert_eq!(t, Type::object([("a", Type::Number), ("z", Type::String)]));
        assert_eq!(t.to_json(), br#"["object",{"a":"number","z":"string"}]"#);
    }

    #[test]
    fn go_escaping_of_attribute_names() {
        let t = Type::object([("a<b>&\"\n\u{2028}", Type::String)]);
        assert_eq!(
            String::from_utf8(t.to_json()).unwrap(),
            r#"["object",{"a\u003cb\u003e\u0026\"\n\u2028":"string"}]"#
        );
        assert_eq!(Type::from_json(&t.to_json()).unwrap(), t);
    }

    #[test]
    fn rejects_bad_types() {
        for bad in [
            "",
            "\"str\"",
            "[]",
            "[\"list\"]",
            "[\"list\",\"string\",\"x\"]",
            "[\"object\",[]]",
            "[\"object\",{},[1]]",
            "[\"tuple\",{}]",
            "[\"frob\",\"string\"]",
            "42",
            "null",
            "[\"map\",\"nope\"]",
        ] {
            assert!(Type::from_json(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn depth_limit() {
        let mut json = String::from("\"string\"");
        for _ in 0..MAX_DEPTH {
            json = format!("[\"list\",{json}]");
        }
        let err = Type::from_json(json.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
        let mut ok = String::from("\"string\"");
        for _ in 0..MAX_DEPTH - 1 {
            ok = format!("[\"list\",{ok}]");
        }
        assert!(Type::from_json(ok.as_bytes()).is_ok());
    }
}
