//! The JSON form of cty values (`RawState.json`, tfplugin6 `DynamicValue.json`),
//! as written and read by go-cty's `cty/json`.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{
    mismatch, set_wire_order, DecodeError, EncodeError, Number, PathStep, Type, Value, MAX_DEPTH,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonDecodeOptions {
    /// Drop object attributes the type does not declare instead of failing,
    /// as terraform-plugin-go offers for upgrading state written by an older
    /// schema.
    pub ignore_undefined_attributes: bool,
}

/// Decodes JSON written by cty (or by Terraform for state). JSON has no
/// unknowns. Like cty, this converts loosely: strings are accepted for
/// numbers and bools (`"1"`, `"true"`), and numbers and bools for strings.
pub fn decode_json(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    decode_json_with(bytes, ty, JsonDecodeOptions::default())
}

pub fn decode_json_with(
    bytes: &[u8],
    ty: &Type,
    opts: JsonDecodeOptions,
) -> Result<Value, DecodeError> {
    let json: Json = serde_json::from_slice(bytes).map_err(|e| DecodeError {
        path: Vec::new(),
        message: format!("invalid JSON: {e}"),
    })?;
    let mut d = Decoder {
        path: Vec::new(),
        opts,
    };
    d.value(&json, ty, 0)
}

pub fn encode_json(v: &Value, ty: &Type) -> Result<Vec<u8>, EncodeError> {
    let mut e = Encoder {
        out: Vec::new(),
        path: Vec::new(),
    };
    e.value(v, ty, 0)?;
    Ok(e.out)
}

/// A JSON string exactly as Go's `encoding/json` writes it (Go >= 1.22):
/// HTML-sensitive `<`, `>`, `&` and U+2028/U+2029 are `\u` escaped, and
/// control characters use the short escapes where JSON has them.
pub(super) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out.push(b'"');
}

struct Decoder {
    path: Vec<PathStep>,
    opts: JsonDecodeOptions,
}

impl Decoder {
    fn err(&self, message: impl Into<String>) -> DecodeError {
        DecodeError {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn value(&mut self, json: &Json, ty: &Type, depth: usize) -> Result<Value, DecodeError> {
        if json.is_null() {
            return Ok(Value::Null);
        }
        if !ty.is_primitive() && depth >= MAX_DEPTH {
            return Err(self.err(format!("value nested more than {MAX_DEPTH} levels")));
        }
        match ty {
            Type::Bool => match json {
                Json::Bool(b) => Ok(Value::Bool(*b)),
                Json::String(s) if s == "true" || s == "1" => Ok(Value::Bool(true)),
                Json::String(s) if s == "false" || s == "0" => Ok(Value::Bool(false)),
                _ => Err(self.err("a bool is required")),
            },
            Type::Number => {
                let text = match json {
                    Json::Number(n) => n.as_str(),
                    Json::String(s) => s.as_str(),
                    _ => return Err(self.err("a number is required")),
                };
                text.parse::<Number>()
                    .map(Value::Number)
                    .map_err(|e| self.err(format!("a number is required: {e}")))
            }
            Type::String => match json {
                Json::String(s) => Ok(Value::String(s.clone())),
                // cty keeps the literal text of the number, e.g. "1.50".
                Json::Number(n) => Ok(Value::String(n.as_str().to_owned())),
                Json::Bool(b) => Ok(Value::String(b.to_string())),
                _ => Err(self.err("a string is required")),
            },
            Type::List(ety) | Type::Set(ety) => {
                let Json::Array(items) = json else {
                    return Err(self.err(if matches!(ty, Type::Set(_)) {
                        "a set is required"
                    } else {
                        "a list is required"
                    }));
                };
                let items = self.elements(items, |_| Some(&**ety), depth)?;
                Ok(match ty {
                    Type::Set(_) => Value::Set(items),
                    _ => Value::List(items),
                })
            }
            Type::Tuple(etys) => match json {
                Json::Array(items) if items.len() == etys.len() => self
                    .elements(items, |i| etys.get(i), depth)
                    .map(Value::Tuple),
                Json::Array(items) => Err(self.err(format!(
                    "a tuple of length {} is required, got {} elements",
                    etys.len(),
                    items.len()
                ))),
                _ => Err(self.err("a tuple is required")),
            },
            Type::Map(ety) => {
                let Json::Object(entries) = json else {
                    return Err(self.err("a map is required"));
                };
                let mut out = BTreeMap::new();
                for (k, item) in entries {
                    self.path.push(PathStep::Key(k.clone()));
                    out.insert(k.clone(), self.value(item, ety, depth + 1)?);
                    self.path.pop();
                }
                Ok(Value::Map(out))
            }
            Type::Object(atys) => {
                let Json::Object(attrs) = json else {
                    return Err(self.err("an object is required"));
                };
                let mut out = BTreeMap::new();
                for (k, item) in attrs {
                    self.path.push(PathStep::Attr(k.clone()));
                    match atys.get(k) {
                        Some(aty) => {
                            out.insert(k.clone(), self.value(item, aty, depth + 1)?);
                        }
                        None if self.opts.ignore_undefined_attributes => {}
                        None => return Err(self.err("unsupported attribute")),
                    }
                    self.path.pop();
                }
                for name in atys.keys() {
                    out.entry(name.clone()).or_insert(Value::Null);
                }
                Ok(Value::Object(out))
            }
            Type::Dynamic => {
                let Json::Object(wrapper) = json else {
                    return Err(self.err(
                        "a dynamically-typed value must be an object with \"value\" and \"type\"",
                    ));
                };
                if let Some(k) = wrapper.keys().find(|k| *k != "value" && *k != "type") {
                    return Err(self.err(format!("invalid key {k:?} in dynamically-typed value")));
                }
                let ty_json = wrapper
                    .get("type")
                    .ok_or_else(|| self.err("missing type in dynamically-typed value"))?;
                let inner = Type::from_json_value(ty_json).map_err(|e| self.err(e.to_string()))?;
                let v = wrapper
                    .get("value")
                    .ok_or_else(|| self.err("missing value in dynamically-typed value"))?;
                self.value(v, &inner, depth + 1)
            }
        }
    }

    fn elements<'t>(
        &mut self,
        items: &[Json],
        ety: impl Fn(usize) -> Option<&'t Type>,
        depth: usize,
    ) -> Result<Vec<Value>, DecodeError> {
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            self.path.push(PathStep::Index(i as i64));
            let ty = ety(i).ok_or_else(|| self.err("too many elements"))?;
            out.push(self.value(item, ty, depth + 1)?);
            self.path.pop();
        }
        Ok(out)
    }
}

struct Encoder {
    out: Vec<u8>,
    path: Vec<PathStep>,
}

impl Encoder {
    fn err(&self, message: impl Into<String>) -> EncodeError {
        EncodeError {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn value(&mut self, v: &Value, ty: &Type, depth: usize) -> Result<(), EncodeError> {
        let container = !ty.is_primitive() && !matches!(v, Value::Null | Value::Unknown);
        if container && depth >= MAX_DEPTH {
            return Err(self.err(format!("value nested more than {MAX_DEPTH} levels")));
        }
        match (ty, v) {
            (_, Value::Unknown) => return Err(self.err("value is not known")),
            (_, Value::Null) => self.out.extend_from_slice(b"null"),
            (Type::Dynamic, v) => {
                let concrete = v.implied_type().map_err(|m| self.err(m))?;
                self.out.extend_from_slice(b"{\"value\":");
                self.value(v, &concrete, depth + 1)?;
                self.out.extend_from_slice(b",\"type\":");
                concrete.write_json(&mut self.out);
                self.out.push(b'}');
            }
            (Type::Bool, Value::Bool(b)) => {
                self.out
                    .extend_from_slice(if *b { b"true" } else { b"false" })
            }
            (Type::Number, Value::Number(n)) => {
                self.out.extend_from_slice(n.to_string().as_bytes())
            }
            (Type::String, Value::String(s)) => write_json_string(&mut self.out, s),
            (Type::List(ety), Value::List(items)) => {
                self.array(items.iter(), |_| Some(&**ety), depth)?
            }
            (Type::Set(ety), Value::Set(items)) => self.array(
                set_wire_order(items, ety).into_iter(),
                |_| Some(&**ety),
                depth,
            )?,
            (Type::Tuple(etys), Value::Tuple(items)) => {
                if items.len() != etys.len() {
                    return Err(self.err(format!(
                        "a tuple of length {} is required, got {} elements",
                        etys.len(),
                        items.len()
                    )));
                }
                self.array(items.iter(), |i| etys.get(i), depth)?
            }
            (Type::Map(ety), Value::Map(entries)) => {
                self.out.push(b'{');
                for (i, (k, item)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.path.push(PathStep::Key(k.clone()));
                    write_json_string(&mut self.out, k);
                    self.out.push(b':');
                    self.value(item, ety, depth + 1)?;
                    self.path.pop();
                }
                self.out.push(b'}');
            }
            (Type::Object(atys), Value::Object(attrs)) => {
                if let Some(extra) = attrs.keys().find(|k| !atys.contains_key(*k)) {
                    self.path.push(PathStep::Attr(extra.clone()));
                    return Err(self.err("unsupported attribute"));
                }
                self.out.push(b'{');
                for (i, (name, aty)) in atys.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.path.push(PathStep::Attr(name.clone()));
                    write_json_string(&mut self.out, name);
                    self.out.push(b':');
                    self.value(v.attr(name), aty, depth + 1)?;
                    self.path.pop();
                }
                self.out.push(b'}');
            }
            (ty, v) => return Err(self.err(mismatch(ty, v))),
        }
        Ok(())
    }

    fn array<'v, 't>(
        &mut self,
        items: impl Iterator<Item = &'v Value>,
        ety: impl Fn(usize) -> Option<&'t Type>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.path.push(PathStep::Index(i as i64));
            let ty = ety(i).ok_or_else(|| self.err("too many elements"))?;
            self.value(item, ty, depth + 1)?;
            self.path.pop();
        }
        self.out.push(b']');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Value {
        Value::Number(s.parse().unwrap())
    }

    fn enc(v: &Value, ty: &Type) -> String {
        String::from_utf8(encode_json(v, ty).unwrap()).unwrap()
    }

    fn wire(v: &Value, ty: &Type, want: &str) {
        assert_eq!(enc(v, ty), want);
        assert_eq!(
            &decode_json(want.as_bytes(), ty).unwrap(),
            v,
            "decoding {want}"
        );
    }

    fn err(json: &str, ty: &Type) -> String {
        decode_json(json.as_bytes(), ty).unwrap_err().to_string()
    }

    #[test]
    fn cty_reference_text() {
        let ty = Type::object([("a", Type::String), ("n", Type::Number)]);
        wire(
            &Value::object([("a", Value::from("x")), ("n", Value::from(1))]),
            &ty,
            r#"{"a":"x","n":1}"#,
        );
        wire(
            &Value::object([("a", Value::from("x")), ("n", Value::Null)]),
            &ty,
            r#"{"a":"x","n":null}"#,
        );
        wire(&Value::Null, &ty, "null");
        for n in [
            "1.5",
            "-1",
            "1180591620717411303424",
            "12345678901234567890123.25",
            "18446744073709551616",
            "-0.001",
        ] {
            wire(&num(n), &Type::Number, n);
        }
        wire(
            &Value::from("x"),
            &Type::Dynamic,
            r#"{"value":"x","type":"string"}"#,
        );
        wire(
            &Value::object([("l", Value::List(vec![Value::from(true)]))]),
            &Type::Dynamic,
            r#"{"value":{"l":[true]},"type":["object",{"l":["list","bool"]}]}"#,
        );
        wire(&Value::Null, &Type::Dynamic, "null");
        wire(
            &Value::Set(vec![Value::from("b"), Value::from("a")]),
            &Type::set(Type::String),
            r#"["a","b"]"#,
        );
        wire(
            &Value::Tuple(vec![Value::from("a"), Value::from(2)]),
            &Type::tuple([Type::String, Type::Number]),
            r#"["a",2]"#,
        );
        wire(
            &Value::map([("z", Value::from(1)), ("a", Value::Null)]),
            &Type::map(Type::Number),
            r#"{"a":null,"z":1}"#,
        );
        wire(
            &Value::from("<a&b>\"\\\n\t\u{1}\u{8}\u{c}\u{7f}é\u{2028}"),
            &Type::String,
            r#""\u003ca\u0026b\u003e\"\\\n\t\u0001\b\f\u007fé\u2028""#
                .replace("\\u007f", "\u{7f}")
                .as_str(),
        );
    }

    #[test]
    fn round_trip_nested() {
        let ty = Type::object([
            (
                "disks",
                Type::list(Type::object([
                    ("size", Type::Number),
                    ("tags", Type::map(Type::String)),
                ])),
            ),
            (
                "rules",
                Type::set(Type::object([("cidrs", Type::set(Type::String))])),
            ),
            ("by_name", Type::map(Type::object([("id", Type::String)]))),
            ("pair", Type::tuple([Type::Bool, Type::Dynamic])),
        ]);
        let v = Value::object([
            (
                "disks",
                Value::List(vec![Value::object([
                    ("size", num("1.5")),
                    ("tags", Value::map([("k", Value::from("v"))])),
                ])]),
            ),
            (
                "rules",
                Value::Set(vec![Value::object([(
                    "cidrs",
                    Value::Set(vec![Value::from("10.0.0.0/8")]),
                )])]),
            ),
            (
                "by_name",
                Value::map([("x", Value::object([("id", Value::from("i-1"))]))]),
            ),
            (
                "pair",
                Value::Tuple(vec![Value::from(false), Value::List(vec![num("2")])]),
            ),
        ]);
        let bytes = encode_json(&v, &ty).unwrap();
        assert_eq!(decode_json(&bytes, &ty).unwrap(), v);
        // Same value through msgpack lands on the same Value.
        let mp = super::super::encode_msgpack(&v, &ty).unwrap();
        assert_eq!(super::super::decode_msgpack(&mp, &ty).unwrap(), v);
    }

    #[test]
    fn loose_conversions_like_cty() {
        assert_eq!(
            decode_json(br#""12.50""#, &Type::Number).unwrap(),
            num("12.5")
        );
        assert_eq!(
            decode_json(b"1.50", &Type::String).unwrap(),
            Value::from("1.50")
        );
        assert_eq!(
            decode_json(b"true", &Type::String).unwrap(),
            Value::from("true")
        );
        assert_eq!(
            decode_json(br#""1""#, &Type::Bool).unwrap(),
            Value::from(true)
        );
        assert_eq!(
            decode_json(br#""false""#, &Type::Bool).unwrap(),
            Value::from(false)
        );
        assert!(decode_json(br#""TRUE""#, &Type::Bool).is_err());
        assert_eq!(decode_json(b"1e400", &Type::Number).unwrap(), num("1e400"));
        let ty = Type::object([("a", Type::String), ("b", Type::Number)]);
        assert_eq!(
            decode_json(b"{}", &ty).unwrap(),
            Value::object([("a", Value::Null), ("b", Value::Null)])
        );
    }

    #[test]
    fn unknown_attributes() {
        let ty = Type::object([("a", Type::String)]);
        assert_eq!(
            err(r#"{"a":"x","old":1}"#, &ty),
            "old: unsupported attribute"
        );
        let opts = JsonDecodeOptions {
            ignore_undefined_attributes: true,
        };
        assert_eq!(
            decode_json_with(br#"{"a":"x","old":{"deep":[1]}}"#, &ty, opts).unwrap(),
            Value::object([("a", Value::from("x"))])
        );
    }

    #[test]
    fn error_paths() {
        let ty = Type::object([
            ("tags", Type::map(Type::Number)),
            ("ports", Type::list(Type::Number)),
            ("pair", Type::tuple([Type::String])),
            ("dyn", Type::Dynamic),
        ]);
        assert_eq!(
            err(r#"{"tags":{"k":"x"}}"#, &ty),
            "tags[\"k\"]: a number is required: not a decimal number"
        );
        assert_eq!(
            err(r#"{"ports":[1,true]}"#, &ty),
            "ports[1]: a number is required"
        );
        assert!(err(r#"{"pair":[]}"#, &ty).starts_with("pair: a tuple of length 1"));
        assert!(err(r#"{"dyn":{"value":1}}"#, &ty).starts_with("dyn: missing type"));
        assert!(err(r#"{"dyn":{"type":"number"}}"#, &ty).starts_with("dyn: missing value"));
        assert!(err(r#"{"dyn":{"type":"number","value":1,"x":2}}"#, &ty).contains("invalid key"));
        assert!(err(r#"{"dyn":{"type":"nope","value":1}}"#, &ty).contains("invalid"));
        assert!(err(r#"{"dyn":5}"#, &ty).starts_with("dyn: a dynamically-typed value"));
        assert_eq!(err(r#"[]"#, &ty), "an object is required");
        assert!(err(r#"{"tags":"#, &ty).starts_with("invalid JSON"));
        assert!(err(r#"{} x"#, &ty).starts_with("invalid JSON"));
        assert!(err(r#""\ud800""#, &Type::String).starts_with("invalid JSON"));
        let v = Value::object([("ports", Value::List(vec![Value::from(1), Value::Unknown]))]);
        assert_eq!(
            encode_json(&v, &ty).unwrap_err().to_string(),
            "ports[1]: value is not known"
        );
    }

    #[test]
    fn nesting_limit() {
        let mut ty = Type::Bool;
        for _ in 0..70 {
            ty = Type::list(ty);
        }
        let json = format!("{}true{}", "[".repeat(70), "]".repeat(70));
        let e = decode_json(json.as_bytes(), &ty).unwrap_err();
        assert!(e.message.contains("nested"), "{e}");
        let dynamic = format!(
            "{}true{}",
            r#"{"type":["list","dynamic"],"value":["#.repeat(100),
            "]}".repeat(100)
        );
        let e = decode_json(dynamic.as_bytes(), &Type::Dynamic).unwrap_err();
        assert!(
            e.message.contains("nested") || e.message.contains("recursion"),
            "{e}"
        );
    }

    #[test]
    fn fuzz_never_panics() {
        let ty = Type::object([
            ("a", Type::String),
            ("n", Type::list(Type::Number)),
            ("m", Type::map(Type::Bool)),
            ("d", Type::Dynamic),
            ("t", Type::tuple([Type::Number, Type::set(Type::String)])),
        ]);
        let seed = br#"{"a":"x\u00e9","n":[1,2.5,-3e2],"m":{"k":true},"d":{"value":[1],"type":["list","number"]},"t":[1,["s"]]}"#;
        assert!(decode_json(seed, &ty).is_ok());
        let alphabet = br#"{}[]":,0123456789.eE-+truefalsnl\u "#;
        let mut x = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        };
        for round in 0..4000u32 {
            let bytes: Vec<u8> = if round.is_multiple_of(2) {
                (0..next() % 40)
                    .map(|_| alphabet[next() % alphabet.len()])
                    .collect()
            } else {
                let mut b = seed.to_vec();
                for _ in 0..1 + next() % 3 {
                    let i = next() % b.len();
                    b[i] = alphabet[next() % alphabet.len()];
                }
                if next().is_multiple_of(2) {
                    b.truncate(next() % (b.len() + 1));
                }
                b
            };
            for t in [
                &ty,
                &Type::Dynamic,
                &Type::list(Type::Number),
                &Type::String,
            ] {
                if let Ok(v) = decode_json(&bytes, t) {
                    let _ = encode_json(&v, t);
                }
            }
        }
    }
}
