//! The msgpack form of cty values (tfplugin6 `DynamicValue.msgpack`), as
//! written by go-cty's `cty/msgpack` on top of vmihailenco/msgpack v5 with
//! compact ints and non-compact floats.

use std::collections::BTreeMap;

use super::{
    mismatch, set_wire_order, DecodeError, EncodeError, Number, PathStep, Type, Value, MAX_DEPTH,
};

/// cty's "totally unknown" value: fixext1, extension type 0, one zero byte.
const UNKNOWN: [u8; 3] = [0xd4, 0x00, 0x00];
/// Extension type of unknowns carrying refinements (Terraform >= 1.6).
const EXT_REFINED_UNKNOWN: i8 = 0x0c;

/// Decodes `bytes` as a value of type `ty`. Trailing bytes are an error.
pub fn decode_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let mut d = Decoder::new(bytes);
    let v = d.value(ty, 0)?;
    d.finish()?;
    Ok(v)
}

/// Decodes a value written against `Type::Dynamic`, also returning the type
/// named on the wire (`Type::Dynamic` for null and unknown).
pub fn decode_msgpack_dynamic(bytes: &[u8]) -> Result<(Type, Value), DecodeError> {
    let mut d = Decoder::new(bytes);
    let out = d.dynamic(0)?;
    d.finish()?;
    Ok(out)
}

pub fn encode_msgpack(v: &Value, ty: &Type) -> Result<Vec<u8>, EncodeError> {
    let mut e = Encoder {
        out: Vec::new(),
        path: Vec::new(),
    };
    e.value(v, ty, 0)?;
    Ok(e.out)
}

/// One msgpack item header; string-like payloads are borrowed, containers
/// report only their element count.
enum Head<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(usize),
    Map(usize),
    Ext(i8, &'a [u8]),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| {
                format!(
                    "truncated msgpack: need {n} bytes at offset {}, have {}",
                    self.pos,
                    self.buf.len() - self.pos
                )
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn len16(&mut self) -> Result<usize, String> {
        Ok(usize::from(u16::from_be_bytes(self.array()?)))
    }

    fn len32(&mut self) -> Result<usize, String> {
        usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|e| e.to_string())
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Every element takes at least one byte, so a count larger than what is
    /// left is a lie; checking here keeps `Vec::with_capacity` honest.
    fn count(&self, n: usize, bytes_each: usize) -> Result<usize, String> {
        if n.saturating_mul(bytes_each) > self.remaining() {
            return Err(format!(
                "msgpack length {n} exceeds the {} bytes left",
                self.remaining()
            ));
        }
        Ok(n)
    }

    fn head(&mut self) -> Result<Head<'a>, String> {
        let code = self.u8()?;
        Ok(match code {
            0x00..=0x7f => Head::Uint(u64::from(code)),
            0x80..=0x8f => Head::Map(self.count(usize::from(code & 0x0f), 2)?),
            0x90..=0x9f => Head::Array(self.count(usize::from(code & 0x0f), 1)?),
            0xa0..=0xbf => Head::Str(self.take(usize::from(code & 0x1f))?),
            0xc0 => Head::Nil,
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => {
                let n = self.u8()?;
                Head::Bin(self.take(n.into())?)
            }
            0xc5 => {
                let n = self.len16()?;
                Head::Bin(self.take(n)?)
            }
            0xc6 => {
                let n = self.len32()?;
                Head::Bin(self.take(n)?)
            }
            0xc7..=0xc9 => {
                let n = match code {
                    0xc7 => usize::from(self.u8()?),
                    0xc8 => self.len16()?,
                    _ => self.len32()?,
                };
                let ext = self.u8()? as i8;
                Head::Ext(ext, self.take(n)?)
            }
            0xca => Head::Float(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Head::Float(f64::from_be_bytes(self.array()?)),
            0xcc => Head::Uint(self.u8()?.into()),
            0xcd => Head::Uint(u16::from_be_bytes(self.array()?).into()),
            0xce => Head::Uint(u32::from_be_bytes(self.array()?).into()),
            0xcf => Head::Uint(u64::from_be_bytes(self.array()?)),
            0xd0 => Head::Int(i8::from_be_bytes(self.array()?).into()),
            0xd1 => Head::Int(i16::from_be_bytes(self.array()?).into()),
            0xd2 => Head::Int(i32::from_be_bytes(self.array()?).into()),
            0xd3 => Head::Int(i64::from_be_bytes(self.array()?)),
            0xd4..=0xd8 => {
                let ext = self.u8()? as i8;
                Head::Ext(ext, self.take(1 << (code - 0xd4))?)
            }
            0xd9 => {
                let n = self.u8()?;
                Head::Str(self.take(n.into())?)
            }
            0xda => {
                let n = self.len16()?;
                Head::Str(self.take(n)?)
            }
            0xdb => {
                let n = self.len32()?;
                Head::Str(self.take(n)?)
            }
            0xdc => {
                let n = self.len16()?;
                Head::Array(self.count(n, 1)?)
            }
            0xdd => {
                let n = self.len32()?;
                Head::Array(self.count(n, 1)?)
            }
            0xde => {
                let n = self.len16()?;
                Head::Map(self.count(n, 2)?)
            }
            0xdf => {
                let n = self.len32()?;
                Head::Map(self.count(n, 2)?)
            }
            0xe0..=0xff => Head::Int(i64::from(code as i8)),
            0xc1 => return Err("invalid msgpack code 0xc1".into()),
        })
    }
}

struct Decoder<'a> {
    r: Reader<'a>,
    path: Vec<PathStep>,
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder {
            r: Reader { buf: bytes, pos: 0 },
            path: Vec::new(),
        }
    }

    fn err(&self, message: impl Into<String>) -> DecodeError {
        DecodeError {
            path: self.path.clone(),
            message: message.into(),
        }
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.r.remaining() {
            0 => Ok(()),
            n => Err(self.err(format!("{n} unexpected trailing bytes after the value"))),
        }
    }

    fn head(&mut self) -> Result<Head<'a>, DecodeError> {
        self.r.head().map_err(|m| self.err(m))
    }

    fn value(&mut self, ty: &Type, depth: usize) -> Result<Value, DecodeError> {
        if matches!(ty, Type::Dynamic) {
            return Ok(self.dynamic(depth)?.1);
        }
        let head = self.head()?;
        match head {
            Head::Ext(code, payload) => return self.unknown(code, payload),
            Head::Nil => return Ok(Value::Null),
            _ => {}
        }
        if !ty.is_primitive() && depth >= MAX_DEPTH {
            return Err(self.err(format!("value nested more than {MAX_DEPTH} levels")));
        }
        match ty {
            Type::Bool => match head {
                Head::Bool(b) => Ok(Value::Bool(b)),
                _ => Err(self.err("a bool is required")),
            },
            Type::Number => self.number(head).map(Value::Number),
            Type::String => match head {
                Head::Str(b) | Head::Bin(b) => self.utf8(b).map(Value::String),
                _ => Err(self.err("a string is required")),
            },
            Type::List(ety) | Type::Set(ety) => {
                let Head::Array(n) = head else {
                    return Err(self.err(if matches!(ty, Type::Set(_)) {
                        "a set is required"
                    } else {
                        "a list is required"
                    }));
                };
                let items = self.elements(n, |_| Some(&**ety), depth)?;
                Ok(match ty {
                    Type::Set(_) => Value::Set(items),
                    _ => Value::List(items),
                })
            }
            Type::Tuple(etys) => match head {
                Head::Array(n) if n == etys.len() => {
                    self.elements(n, |i| etys.get(i), depth).map(Value::Tuple)
                }
                Head::Array(n) => Err(self.err(format!(
                    "a tuple of length {} is required, got {n} elements",
                    etys.len()
                ))),
                _ => Err(self.err("a tuple is required")),
            },
            Type::Map(ety) => {
                let Head::Map(n) = head else {
                    return Err(self.err("a map is required"));
                };
                let mut out = BTreeMap::new();
                for _ in 0..n {
                    let key = self.key()?;
                    self.path.push(PathStep::Key(key.clone()));
                    let v = self.value(ety, depth + 1)?;
                    self.path.pop();
                    out.insert(key, v);
                }
                Ok(Value::Map(out))
            }
            Type::Object(atys) => {
                let Head::Map(n) = head else {
                    return Err(self.err("an object is required"));
                };
                let mut out = BTreeMap::new();
                for _ in 0..n {
                    let key = self.key()?;
                    self.path.push(PathStep::Attr(key.clone()));
                    let Some(aty) = atys.get(&key) else {
                        return Err(self.err("unsupported attribute"));
                    };
                    let v = self.value(aty, depth + 1)?;
                    self.path.pop();
                    out.insert(key, v);
                }
                for name in atys.keys() {
                    out.entry(name.clone()).or_insert(Value::Null);
                }
                Ok(Value::Object(out))
            }
            // Handled before the header was read.
            Type::Dynamic => Err(self.err("unsupported type")),
        }
    }

    fn elements<'t>(
        &mut self,
        n: usize,
        ety: impl Fn(usize) -> Option<&'t Type>,
        depth: usize,
    ) -> Result<Vec<Value>, DecodeError> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            self.path.push(PathStep::Index(i as i64));
            let ty = ety(i).ok_or_else(|| self.err("too many elements"))?;
            out.push(self.value(ty, depth + 1)?);
            self.path.pop();
        }
        Ok(out)
    }

    /// `[type JSON, value]`, or nil / an unknown with no type attached.
    fn dynamic(&mut self, depth: usize) -> Result<(Type, Value), DecodeError> {
        match self.head()? {
            Head::Ext(code, payload) => Ok((Type::Dynamic, self.unknown(code, payload)?)),
            Head::Nil => Ok((Type::Dynamic, Value::Null)),
            _ if depth >= MAX_DEPTH => {
                Err(self.err(format!("value nested more than {MAX_DEPTH} levels")))
            }
            Head::Array(2) => {
                let ty_json = match self.head()? {
                    Head::Str(b) | Head::Bin(b) => b,
                    _ => return Err(self.err("dynamic value type must be JSON bytes")),
                };
                let ty = Type::from_json(ty_json).map_err(|e| self.err(e.to_string()))?;
                let v = self.value(&ty, depth + 1)?;
                Ok((ty, v))
            }
            _ => Err(self.err("dynamic value array must have exactly two elements")),
        }
    }

    /// cty treats every extension as an unknown; only a non-trivial payload
    /// under a foreign extension type is rejected. Refinements (type 12) are
    /// dropped: `Value::Unknown` has nowhere to keep them.
    fn unknown(&self, code: i8, payload: &[u8]) -> Result<Value, DecodeError> {
        if payload.len() <= 1 || code == 0 || code == EXT_REFINED_UNKNOWN {
            Ok(Value::Unknown)
        } else {
            Err(self.err(format!(
                "unsupported msgpack extension type {code} with length {}",
                payload.len()
            )))
        }
    }

    fn number(&self, head: Head<'_>) -> Result<Number, DecodeError> {
        match head {
            Head::Int(i) => Ok(Number::from_i64(i)),
            Head::Uint(u) => Ok(Number::from_u64(u)),
            Head::Float(f) => Number::from_f64_exact(f).ok_or_else(|| {
                self.err("a number is required; infinity and NaN are not supported")
            }),
            Head::Str(b) | Head::Bin(b) => {
                let s = std::str::from_utf8(b).map_err(|_| self.err("a number is required"))?;
                s.parse()
                    .map_err(|e| self.err(format!("a number is required: {e}")))
            }
            _ => Err(self.err("a number is required")),
        }
    }

    fn key(&mut self) -> Result<String, DecodeError> {
        match self.head()? {
            Head::Str(b) | Head::Bin(b) => self.utf8(b),
            _ => Err(self.err("all keys must be strings")),
        }
    }

    fn utf8(&self, b: &[u8]) -> Result<String, DecodeError> {
        String::from_utf8(b.to_vec()).map_err(|_| self.err("string is not valid UTF-8"))
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
            (_, Value::Unknown) => self.out.extend_from_slice(&UNKNOWN),
            (_, Value::Null) => self.out.push(0xc0),
            (Type::Dynamic, v) => {
                let concrete = v.implied_type().map_err(|m| self.err(m))?;
                self.out.push(0x92);
                self.bin(&concrete.to_json())?;
                self.value(v, &concrete, depth + 1)?;
            }
            (Type::Bool, Value::Bool(b)) => self.out.push(if *b { 0xc3 } else { 0xc2 }),
            (Type::Number, Value::Number(n)) => self.number(n)?,
            (Type::String, Value::String(s)) => self.str(s)?,
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
                self.map_len(entries.len())?;
                for (k, item) in entries {
                    self.path.push(PathStep::Key(k.clone()));
                    self.str(k)?;
                    self.value(item, ety, depth + 1)?;
                    self.path.pop();
                }
            }
            (Type::Object(atys), Value::Object(attrs)) => {
                if let Some(extra) = attrs.keys().find(|k| !atys.contains_key(*k)) {
                    self.path.push(PathStep::Attr(extra.clone()));
                    return Err(self.err("unsupported attribute"));
                }
                self.map_len(atys.len())?;
                for (name, aty) in atys {
                    self.path.push(PathStep::Attr(name.clone()));
                    self.str(name)?;
                    self.value(v.attr(name), aty, depth + 1)?;
                    self.path.pop();
                }
            }
            (ty, v) => return Err(self.err(mismatch(ty, v))),
        }
        Ok(())
    }

    fn array<'v, 't>(
        &mut self,
        items: impl ExactSizeIterator<Item = &'v Value>,
        ety: impl Fn(usize) -> Option<&'t Type>,
        depth: usize,
    ) -> Result<(), EncodeError> {
        self.array_len(items.len())?;
        for (i, item) in items.enumerate() {
            self.path.push(PathStep::Index(i as i64));
            let ty = ety(i).ok_or_else(|| self.err("too many elements"))?;
            self.value(item, ty, depth + 1)?;
            self.path.pop();
        }
        Ok(())
    }

    /// fixarray/fixmap below 16, then the 16- and 32-bit forms.
    fn container_len(&mut self, n: usize, fix: u8, code16: u8) -> Result<(), EncodeError> {
        if n < 16 {
            self.out.push(fix | n as u8);
        } else if n <= 0xffff {
            self.out.push(code16);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            let n = u32::try_from(n).map_err(|_| self.err("too many elements for msgpack"))?;
            self.out.push(code16 + 1);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
        Ok(())
    }

    fn array_len(&mut self, n: usize) -> Result<(), EncodeError> {
        self.container_len(n, 0x90, 0xdc)
    }

    fn map_len(&mut self, n: usize) -> Result<(), EncodeError> {
        self.container_len(n, 0x80, 0xde)
    }

    fn bin(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        let n = b.len();
        if n <= 0xff {
            self.out.extend_from_slice(&[0xc4, n as u8]);
        } else if n <= 0xffff {
            self.out.push(0xc5);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            let n = u32::try_from(n).map_err(|_| self.err("type too long for msgpack"))?;
            self.out.push(0xc6);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn str(&mut self, s: &str) -> Result<(), EncodeError> {
        let n = s.len();
        if n < 32 {
            self.out.push(0xa0 | n as u8);
        } else if n <= 0xff {
            self.out.extend_from_slice(&[0xd9, n as u8]);
        } else if n <= 0xffff {
            self.out.push(0xda);
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            let n = u32::try_from(n).map_err(|_| self.err("string too long for msgpack"))?;
            self.out.push(0xdb);
            self.out.extend_from_slice(&n.to_be_bytes());
        }
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// cty's rule: an int if it fits i64, else a float64 if exact and not
    /// integral (since go-cty 1.14.4 integers never become floats), else the
    /// decimal string.
    fn number(&mut self, n: &Number) -> Result<(), EncodeError> {
        if let Some(i) = n.to_i64() {
            self.int(i);
        } else if let Some(f) = n.to_f64_exact().filter(|_| !n.is_integer()) {
            self.out.push(0xcb);
            self.out.extend_from_slice(&f.to_bits().to_be_bytes());
        } else {
            self.str(&n.to_string())?;
        }
        Ok(())
    }

    /// vmihailenco's `EncodeInt` with compact ints: non-negative values take
    /// the unsigned forms, negative ones the smallest signed form.
    fn int(&mut self, i: i64) {
        if i >= 0 {
            let u = i as u64;
            if u <= 0x7f {
                self.out.push(u as u8);
            } else if u <= 0xff {
                self.out.extend_from_slice(&[0xcc, u as u8]);
            } else if u <= 0xffff {
                self.out.push(0xcd);
                self.out.extend_from_slice(&(u as u16).to_be_bytes());
            } else if u <= 0xffff_ffff {
                self.out.push(0xce);
                self.out.extend_from_slice(&(u as u32).to_be_bytes());
            } else {
                self.out.push(0xcf);
                self.out.extend_from_slice(&u.to_be_bytes());
            }
        } else if i >= -32 {
            self.out.push(i as u8);
        } else if i >= i64::from(i8::MIN) {
            self.out.extend_from_slice(&[0xd0, i as u8]);
        } else if i >= i64::from(i16::MIN) {
            self.out.push(0xd1);
            self.out.extend_from_slice(&(i as i16).to_be_bytes());
        } else if i >= i64::from(i32::MIN) {
            self.out.push(0xd2);
            self.out.extend_from_slice(&(i as i32).to_be_bytes());
        } else {
            self.out.push(0xd3);
            self.out.extend_from_slice(&i.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Value {
        Value::Number(s.parse().unwrap())
    }

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn unhex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn enc(v: &Value, ty: &Type) -> String {
        hex(&encode_msgpack(v, ty).unwrap())
    }

    /// Encodes, checks the bytes, and checks that they decode back to `v`.
    fn wire(v: &Value, ty: &Type, want: &str) {
        assert_eq!(enc(v, ty), want, "encoding {v:?}");
        assert_eq!(
            &decode_msgpack(&unhex(want), ty).unwrap(),
            v,
            "decoding {want}"
        );
    }

    fn with_str(prefix: &str, s: &str) -> String {
        format!("{prefix} {}", hex(s.as_bytes()))
    }

    fn schema() -> Type {
        Type::object([
            ("name", Type::String),
            ("count", Type::Number),
            ("enabled", Type::Bool),
            ("tags", Type::map(Type::String)),
            ("ports", Type::list(Type::Number)),
            (
                "disks",
                Type::list(Type::object([
                    ("size", Type::Number),
                    ("labels", Type::map(Type::String)),
                ])),
            ),
            ("zones", Type::set(Type::String)),
            (
                "rules",
                Type::set(Type::object([
                    ("from", Type::Number),
                    ("cidrs", Type::list(Type::String)),
                ])),
            ),
            ("by_name", Type::map(Type::object([("id", Type::String)]))),
            ("pair", Type::tuple([Type::String, Type::Number])),
            ("extra", Type::Dynamic),
        ])
    }

    fn sample() -> Value {
        Value::object([
            ("name", Value::from("ws-1")),
            ("count", num("12345678901234567890123.25")),
            ("enabled", Value::from(true)),
            (
                "tags",
                Value::map([("team", Value::from("ml")), ("cost", Value::Unknown)]),
            ),
            (
                "ports",
                Value::List(vec![Value::from(22), Value::Unknown, num("1.5")]),
            ),
            (
                "disks",
                Value::List(vec![
                    Value::object([
                        ("size", Value::from(100)),
                        ("labels", Value::map([("k", Value::Unknown)])),
                    ]),
                    Value::object([("size", Value::Unknown), ("labels", Value::Null)]),
                ]),
            ),
            (
                "zones",
                Value::Set(vec![Value::from("a"), Value::from("b"), Value::Unknown]),
            ),
            (
                "rules",
                Value::Set(vec![Value::object([
                    ("from", Value::from(-1)),
                    ("cidrs", Value::List(vec![Value::from("10.0.0.0/8")])),
                ])]),
            ),
            (
                "by_name",
                Value::map([("x", Value::object([("id", Value::Unknown)]))]),
            ),
            ("pair", Value::Tuple(vec![Value::from("p"), num("-0.001")])),
            (
                "extra",
                Value::object([
                    ("l", Value::List(vec![Value::from("x"), Value::Null])),
                    ("n", num("1180591620717411303424")),
                ]),
            ),
        ])
    }

    #[test]
    fn cty_reference_bytes() {
        let ty = Type::object([("a", Type::String), ("n", Type::Number)]);
        let v = Value::object([("a", Value::from("x")), ("n", Value::from(1))]);
        wire(&v, &ty, "82 a1 61 a1 78 a1 6e 01");
        // Attributes missing from the value are written as nil.
        assert_eq!(
            enc(&Value::object([("a", Value::from("x"))]), &ty),
            "82 a1 61 a1 78 a1 6e c0"
        );
        wire(&Value::Unknown, &ty, "d4 00 00");
        wire(&Value::Null, &ty, "c0");
        wire(
            &Value::object([("a", Value::Unknown), ("n", Value::Null)]),
            &ty,
            "82 a1 61 d4 00 00 a1 6e c0",
        );
        wire(
            &Value::map([("a", Value::from(1)), ("b", Value::from(true))]),
            &Type::map(Type::Dynamic),
            "82 a1 61 92 c4 08 22 6e 75 6d 62 65 72 22 01 a1 62 92 c4 06 22 62 6f 6f 6c 22 c3",
        );
        wire(
            &Value::Tuple(vec![Value::from(true), Value::from("s")]),
            &Type::tuple([Type::Bool, Type::String]),
            "92 c3 a1 73",
        );
        wire(
            &Value::from("x"),
            &Type::Dynamic,
            "92 c4 08 22 73 74 72 69 6e 67 22 a1 78",
        );
        wire(
            &Value::List(vec![Value::from("x")]),
            &Type::Dynamic,
            &format!("92 c4 11 {} 91 a1 78", hex(br#"["list","string"]"#)),
        );
        // Null and unknown in a dynamic slot carry no type.
        wire(&Value::Null, &Type::Dynamic, "c0");
        wire(&Value::Unknown, &Type::Dynamic, "d4 00 00");
        wire(&Value::List(vec![]), &Type::list(Type::String), "90");
        wire(
            &Value::Object(BTreeMap::new()),
            &Type::object::<&str>([]),
            "80",
        );
    }

    #[test]
    fn number_encodings() {
        let n = Type::Number;
        wire(&num("1.5"), &n, "cb 3f f8 00 00 00 00 00 00");
        wire(&num("-1"), &n, "ff");
        wire(&num("0"), &n, "00");
        wire(&num("127"), &n, "7f");
        wire(&num("128"), &n, "cc 80");
        wire(&num("200"), &n, "cc c8");
        wire(&num("65535"), &n, "cd ff ff");
        wire(&num("65536"), &n, "ce 00 01 00 00");
        wire(&num("4294967296"), &n, "cf 00 00 00 01 00 00 00 00");
        wire(&Value::from(i64::MAX), &n, "cf 7f ff ff ff ff ff ff ff");
        wire(&num("-32"), &n, "e0");
        wire(&num("-33"), &n, "d0 df");
        wire(&num("-128"), &n, "d0 80");
        wire(&num("-129"), &n, "d1 ff 7f");
        wire(&num("-32769"), &n, "d2 ff ff 7f ff");
        wire(&Value::from(i64::MIN), &n, "d3 80 00 00 00 00 00 00 00");
        // Integers beyond i64 are strings even when a double could hold them.
        wire(
            &num("1180591620717411303424"),
            &n,
            &with_str("b6", "1180591620717411303424"),
        );
        wire(
            &num("18446744073709551616"),
            &n,
            &with_str("b4", "18446744073709551616"),
        );
        wire(
            &num("18446744073709551615"),
            &n,
            &with_str("b4", "18446744073709551615"),
        );
        wire(
            &num("12345678901234567890123.25"),
            &n,
            &with_str("ba", "12345678901234567890123.25"),
        );
        wire(&num("0.1"), &n, &with_str("a3", "0.1"));
        wire(&num("-0.001"), &n, &with_str("a6", "-0.001"));
        let tenth = Value::Number(Number::from_f64_exact(0.1).unwrap());
        wire(&tenth, &n, "cb 3f b9 99 99 99 99 99 9a");
    }

    #[test]
    fn numbers_from_other_writers() {
        let n = Type::Number;
        let dec = |s: &str| decode_msgpack(&unhex(s), &n).unwrap();
        // 2^70 as a double (older cty) decodes exactly, and is re-encoded
        // the way current cty writes it.
        assert_eq!(
            dec("cb 44 50 00 00 00 00 00 00"),
            num("1180591620717411303424")
        );
        assert_eq!(
            enc(&dec("cb 44 50 00 00 00 00 00 00"), &n),
            with_str("b6", "1180591620717411303424")
        );
        assert_eq!(dec("ca 3f c0 00 00"), num("1.5"));
        assert_eq!(dec("cb 40 59 00 00 00 00 00 00"), num("100"));
        assert_eq!(enc(&dec("cb 40 59 00 00 00 00 00 00"), &n), "64");
        assert_eq!(dec("d3 ff ff ff ff ff ff ff ff"), num("-1"));
        assert_eq!(
            dec("cf ff ff ff ff ff ff ff ff"),
            num("18446744073709551615")
        );
        assert_eq!(dec(&with_str("a3", "1e3")), num("1000"));
        assert_eq!(dec(&format!("c4 03 {}", hex(b"2.5"))), num("2.5"));
        for bad in [
            "cb 7f f0 00 00 00 00 00 00",
            "cb 7f f8 00 00 00 00 00 01",
            "a1 78",
            "c3",
            "90",
        ] {
            let e = decode_msgpack(&unhex(bad), &n).unwrap_err();
            assert!(e.message.starts_with("a number is required"), "{bad}: {e}");
        }
    }

    #[test]
    fn string_and_container_length_forms() {
        let s31 = "x".repeat(31);
        let s32 = "x".repeat(32);
        let s256 = "y".repeat(256);
        let s65536 = "z".repeat(65536);
        for (s, prefix) in [
            (&s31, "bf".to_string()),
            (&s32, "d9 20".to_string()),
            (&s256, "da 01 00".to_string()),
            (&s65536, "db 00 01 00 00".to_string()),
        ] {
            let bytes = encode_msgpack(&Value::from(s.as_str()), &Type::String).unwrap();
            assert!(hex(&bytes).starts_with(&prefix), "len {}", s.len());
            assert_eq!(
                decode_msgpack(&bytes, &Type::String).unwrap(),
                Value::from(s.as_str())
            );
        }
        let list = |n: usize| Value::List((0..n).map(|i| Value::from(i as i64 % 100)).collect());
        for (n, prefix) in [(15, "9f"), (16, "dc 00 10"), (65536, "dd 00 01 00 00")] {
            let ty = Type::list(Type::Number);
            let bytes = encode_msgpack(&list(n), &ty).unwrap();
            assert!(hex(&bytes).starts_with(prefix), "len {n}");
            assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), list(n));
        }
        let map =
            |n: usize| Value::Map((0..n).map(|i| (format!("k{i:05}"), Value::Null)).collect());
        for (n, prefix) in [(15, "8f"), (16, "de 00 10"), (65536, "df 00 01 00 00")] {
            let ty = Type::map(Type::Bool);
            let bytes = encode_msgpack(&map(n), &ty).unwrap();
            assert!(hex(&bytes).starts_with(prefix), "len {n}");
            assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), map(n));
        }
        // str8/16/32 and bin are all accepted where a string is expected.
        for src in [
            "d9 02 68 69",
            "da 00 02 68 69",
            "db 00 00 00 02 68 69",
            "c4 02 68 69",
            "c5 00 02 68 69",
            "c6 00 00 00 02 68 69",
        ] {
            assert_eq!(
                decode_msgpack(&unhex(src), &Type::String).unwrap(),
                Value::from("hi")
            );
        }
        assert_eq!(
            decode_msgpack(&unhex("dc 00 01 c3"), &Type::list(Type::Bool)).unwrap(),
            Value::List(vec![Value::from(true)])
        );
        assert_eq!(
            decode_msgpack(&unhex("de 00 01 a1 61 c2"), &Type::map(Type::Bool)).unwrap(),
            Value::map([("a", Value::from(false))])
        );
    }

    #[test]
    fn sets_written_in_cty_order() {
        let ty = Type::set(Type::String);
        let v = Value::Set(vec![
            Value::from("b"),
            Value::Unknown,
            Value::from("a"),
            Value::from("b"),
        ]);
        assert_eq!(enc(&v, &ty), "93 a1 61 a1 62 d4 00 00");
        let nums = Value::Set(vec![num("10"), num("-2.5"), num("3")]);
        assert_eq!(
            enc(&nums, &Type::set(Type::Number)),
            "93 cb c0 04 00 00 00 00 00 00 03 0a"
        );
    }

    #[test]
    fn round_trip_everything() {
        let ty = schema();
        let v = sample();
        let bytes = encode_msgpack(&v, &ty).unwrap();
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), v);
        // Decoding cty's bytes and writing them again is byte-identical.
        let again = encode_msgpack(&decode_msgpack(&bytes, &ty).unwrap(), &ty).unwrap();
        assert_eq!(again, bytes);
        let (inner_ty, inner) =
            decode_msgpack_dynamic(&encode_msgpack(&v, &Type::Dynamic).unwrap()).unwrap();
        assert_eq!(inner, v);
        assert_eq!(inner_ty, v.implied_type().unwrap());
        // A decoded object always has every attribute of its type.
        let sparse = decode_msgpack(&unhex("81 a4 6e 61 6d 65 a1 78"), &ty).unwrap();
        assert_eq!(sparse.attr("name").as_str(), Some("x"));
        assert_eq!(sparse.as_map().unwrap().len(), 11);
        assert!(sparse.attr("extra").is_null());
    }

    #[test]
    fn unknowns_in_all_forms() {
        let ty = Type::list(Type::String);
        for src in [
            "d4 00 00",
            "d4 00 ff",
            "c7 00 00",
            "d4 07 00",
            "c7 03 0c 81 01 c2",
            "d5 0c 81 01",
            "c7 05 00 01 02 03 04 05",
        ] {
            assert_eq!(
                decode_msgpack(&unhex(src), &ty).unwrap(),
                Value::Unknown,
                "{src}"
            );
        }
        let e = decode_msgpack(&unhex("d6 05 01 02 03 04"), &ty).unwrap_err();
        assert!(e.message.contains("extension type 5"), "{e}");
        // An unknown of a concrete type inside a dynamic slot, as cty writes it.
        let typed_unknown = format!("92 c4 08 {} d4 00 00", hex(b"\"string\""));
        assert_eq!(
            decode_msgpack(&unhex(&typed_unknown), &Type::Dynamic).unwrap(),
            Value::Unknown
        );
        let typed_null = format!("92 c4 08 {} c0", hex(b"\"string\""));
        assert_eq!(
            decode_msgpack(&unhex(&typed_null), &Type::Dynamic).unwrap(),
            Value::Null
        );
    }

    fn err_at(bytes: &str, ty: &Type) -> String {
        decode_msgpack(&unhex(bytes), ty).unwrap_err().to_string()
    }

    #[test]
    fn error_paths() {
        let ty = Type::object([
            ("tags", Type::map(Type::Number)),
            ("ports", Type::list(Type::Number)),
            ("disks", Type::set(Type::object([("size", Type::Number)]))),
        ]);
        let tags = format!("81 {} 81 a1 6b a1 78", with_str("a4", "tags"));
        assert_eq!(
            err_at(&tags, &ty),
            "tags[\"k\"]: a number is required: not a decimal number"
        );
        let ports = format!("81 {} 92 01 a1 78", with_str("a5", "ports"));
        assert_eq!(
            err_at(&ports, &ty),
            "ports[1]: a number is required: not a decimal number"
        );
        let disks = format!(
            "81 {} 91 81 {} c3",
            with_str("a5", "disks"),
            with_str("a4", "size")
        );
        assert_eq!(err_at(&disks, &ty), "disks[0].size: a number is required");
        let extra = format!("81 {} c0", with_str("a4", "nope"));
        assert_eq!(err_at(&extra, &ty), "nope: unsupported attribute");
        assert_eq!(err_at("91 c0", &ty), "an object is required");
        assert_eq!(err_at("81 01 c0", &ty), "all keys must be strings");
        let bad_utf8 = format!("81 {} 81 a2 ff fe 01", with_str("a4", "tags"));
        assert_eq!(err_at(&bad_utf8, &ty), "tags: string is not valid UTF-8");
        assert!(err_at("c0 c0", &ty).contains("trailing"));
        assert!(err_at("", &ty).contains("truncated"));
        assert!(err_at("c1", &ty).contains("0xc1"));
        let tuple = Type::tuple([Type::String, Type::Number]);
        assert!(err_at("91 a1 61", &tuple).contains("length 2"));
        assert!(err_at("90", &tuple).contains("length 2"));
        assert_eq!(
            err_at("93 c3 c3 01", &Type::list(Type::Bool)),
            "[2]: a bool is required"
        );
        assert!(err_at("93 c3 c3 c3", &Type::Dynamic).contains("exactly two elements"));
        assert!(err_at("92 01 c0", &Type::Dynamic).contains("JSON bytes"));
        assert!(err_at("92 a3 66 6f 6f c0", &Type::Dynamic).contains("invalid type"));
    }

    #[test]
    fn hostile_lengths_fail_without_allocating() {
        let ty = Type::list(Type::String);
        for src in [
            "dd ff ff ff ff",
            "dc ff ff c0",
            "db ff ff ff ff",
            "c6 ff ff ff ff 00",
            "c9 ff ff ff ff 00",
            "c8 ff ff 00",
        ] {
            let e = decode_msgpack(&unhex(src), &ty).unwrap_err();
            assert!(
                e.message.contains("truncated") || e.message.contains("exceeds"),
                "{src}: {e}"
            );
        }
        let e = decode_msgpack(&unhex("df ff ff ff ff"), &Type::map(Type::String)).unwrap_err();
        assert!(e.message.contains("exceeds"), "{e}");
        // 3 entries need at least 6 bytes.
        let e = decode_msgpack(&unhex("83 a0 c0 a0 c0"), &Type::map(Type::String)).unwrap_err();
        assert!(e.message.contains("exceeds"), "{e}");
    }

    #[test]
    fn nesting_limit() {
        let mut ty = Type::Bool;
        for _ in 0..70 {
            ty = Type::list(ty);
        }
        let mut bytes = vec![0x91; 70];
        bytes.push(0xc3);
        let e = decode_msgpack(&bytes, &ty).unwrap_err();
        assert!(e.message.contains("nested"), "{e}");
        assert_eq!(e.path.len(), MAX_DEPTH);
        // Dynamic wrappers count as nesting too, so a hostile peer cannot
        // recurse without bound through `["list","dynamic"]` types.
        let inner = br#"["list","dynamic"]"#;
        let mut bytes = Vec::new();
        for _ in 0..200 {
            bytes.extend_from_slice(&[0x92, 0xc4, inner.len() as u8]);
            bytes.extend_from_slice(inner);
            bytes.push(0x91);
        }
        bytes.push(0xc0);
        let e = decode_msgpack(&bytes, &Type::Dynamic).unwrap_err();
        assert!(e.message.contains("nested"), "{e}");
        let mut deep = Value::from(true);
        for _ in 0..70 {
            deep = Value::List(vec![deep]);
        }
        assert!(encode_msgpack(&deep, &ty)
            .unwrap_err()
            .message
            .contains("nested"));
        assert!(encode_msgpack(&deep, &Type::Dynamic)
            .unwrap_err()
            .message
            .contains("nested"));
    }

    #[test]
    fn encode_errors_carry_paths() {
        let ty = Type::object([
            ("tags", Type::map(Type::Number)),
            ("t", Type::tuple([Type::Bool])),
        ]);
        let v = Value::object([("tags", Value::map([("k", Value::from("x"))]))]);
        assert_eq!(
            encode_msgpack(&v, &ty).unwrap_err().to_string(),
            "tags[\"k\"]: a number is required, got string"
        );
        let v = Value::object([("zzz", Value::Null)]);
        assert_eq!(
            encode_msgpack(&v, &ty).unwrap_err().to_string(),
            "zzz: unsupported attribute"
        );
        let v = Value::object([("t", Value::Tuple(vec![]))]);
        assert!(encode_msgpack(&v, &ty)
            .unwrap_err()
            .to_string()
            .starts_with("t: a tuple of length 1"));
        let v = Value::List(vec![Value::from("a"), Value::from(1)]);
        assert!(encode_msgpack(&v, &Type::Dynamic)
            .unwrap_err()
            .message
            .contains("inconsistent"));
        assert_eq!(
            encode_msgpack(&Value::from(1), &Type::String)
                .unwrap_err()
                .message,
            "a string is required, got number"
        );
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let ty = schema();
        let types = [
            ty.clone(),
            Type::Dynamic,
            Type::list(Type::Dynamic),
            Type::map(Type::Number),
            Type::tuple([Type::String, Type::set(Type::Number)]),
        ];
        // Bytes that are interesting as msgpack headers.
        let alphabet: Vec<u8> = (0u8..=0xff)
            .filter(|b| *b >= 0xc0 || b % 16 < 3 || (0x90..=0xbf).contains(b))
            .collect();
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let seeds: Vec<Vec<u8>> = vec![
            encode_msgpack(&sample(), &ty).unwrap(),
            encode_msgpack(&sample(), &Type::Dynamic).unwrap(),
        ];
        for seed in &seeds {
            // Every strict prefix of a single value is incomplete.
            for cut in 0..seed.len() {
                assert!(decode_msgpack(&seed[..cut], &ty).is_err(), "prefix {cut}");
                let _ = decode_msgpack_dynamic(&seed[..cut]);
            }
        }
        for round in 0..4000u32 {
            let bytes: Vec<u8> = if round.is_multiple_of(2) {
                let len = rng.below(48);
                (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect()
            } else {
                let mut b = seeds[rng.below(seeds.len())].clone();
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                if rng.next().is_multiple_of(2) {
                    b.truncate(rng.below(b.len() + 1));
                }
                b
            };
            for t in &types {
                if let Ok(v) = decode_msgpack(&bytes, t) {
                    // Whatever decodes must survive a re-encode and decode
                    // (dynamic parts may legitimately fail to re-encode when
                    // list elements carry different wire types).
                    if let Ok(again) = encode_msgpack(&v, t) {
                        let _ = decode_msgpack(&again, t);
                    }
                }
            }
            let _ = decode_msgpack_dynamic(&bytes);
        }
    }
}
