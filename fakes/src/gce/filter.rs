//! The `filter` query parameter of Compute list calls.
//!
//! Supported, as documented for the v1 API: `field = value`, `!=`, `:` (has;
//! `labels.k:*` tests presence), `<`, `>`, `<=`, `>=`, quoted or bare values
//! with `*` wildcards, nested fields (`labels.owner`, `scheduling.preemptible`),
//! parenthesised expressions joined by whitespace (AND), `AND`, `OR`, `NOT`,
//! and the regular-expression form `field eq regex` / `field ne regex` (the
//! expression must match the whole field).

use serde_json::Value;

use super::errors::ApiError;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    All,
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Cmp {
        field: String,
        op: Op,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Has,
    Lt,
    Gt,
    Le,
    Ge,
    ReEq,
    ReNe,
}

struct Parser<'a> {
    s: &'a [u8],
    src: &'a str,
    i: usize,
}

fn invalid(src: &str) -> ApiError {
    ApiError::invalid(&format!("Invalid list filter expression '{src}'."))
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn keyword(&mut self, kw: &str) -> bool {
        let end = self.i + kw.len();
        // `get` (not indexing): the filter is user text and may hold
        // multi-byte characters where a keyword would end.
        if self.src.get(self.i..end) == Some(kw)
            && self
                .s
                .get(end)
                .is_none_or(|c| c.is_ascii_whitespace() || *c == b'(')
        {
            self.i = end;
            true
        } else {
            false
        }
    }

    fn or_expr(&mut self) -> Result<Filter, ApiError> {
        let mut parts = vec![self.and_expr()?];
        loop {
            self.ws();
            if self.keyword("OR") {
                parts.push(self.and_expr()?);
            } else {
                break;
            }
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Filter, ApiError> {
        let mut parts = vec![self.unary()?];
        loop {
            self.ws();
            match self.peek() {
                None | Some(b')') => break,
                _ => {}
            }
            let save = self.i;
            if self.keyword("OR") {
                self.i = save;
                break;
            }
            self.keyword("AND");
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Filter::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Filter, ApiError> {
        self.ws();
        if self.keyword("NOT") {
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(b'-') {
            self.i += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(b'(') {
            self.i += 1;
            let inner = self.or_expr()?;
            self.ws();
            if self.peek() != Some(b')') {
                return Err(invalid(self.src));
            }
            self.i += 1;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Filter, ApiError> {
        self.ws();
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'/') {
                self.i += 1;
            } else {
                break;
            }
        }
        let field = self.src[start..self.i].to_string();
        if field.is_empty() {
            return Err(invalid(self.src));
        }
        self.ws();
        let op = if self.src[self.i..].starts_with("!=") {
            self.i += 2;
            Op::Ne
        } else if self.src[self.i..].starts_with("<=") {
            self.i += 2;
            Op::Le
        } else if self.src[self.i..].starts_with(">=") {
            self.i += 2;
            Op::Ge
        } else if self.keyword("eq") {
            Op::ReEq
        } else if self.keyword("ne") {
            Op::ReNe
        } else {
            let op = match self.peek() {
                Some(b'=') => Op::Eq,
                Some(b':') => Op::Has,
                Some(b'<') => Op::Lt,
                Some(b'>') => Op::Gt,
                _ => return Err(invalid(self.src)),
            };
            self.i += 1;
            op
        };
        self.ws();
        let value = self.value()?;
        Ok(Filter::Cmp { field, op, value })
    }

    fn value(&mut self) -> Result<String, ApiError> {
        if self.peek() == Some(b'"') || self.peek() == Some(b'\'') {
            let q = self.s[self.i];
            self.i += 1;
            let mut out = String::new();
            let mut chars = self.src[self.i..].char_indices();
            while let Some((off, c)) = chars.next() {
                if c as u32 == u32::from(q) {
                    self.i += off + 1;
                    return Ok(out);
                }
                if c == '\\' {
                    if let Some((_, n)) = chars.next() {
                        out.push(n);
                        continue;
                    }
                }
                out.push(c);
            }
            return Err(invalid(self.src));
        }
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || c == b')' {
                break;
            }
            self.i += 1;
        }
        if start == self.i {
            return Err(invalid(self.src));
        }
        Ok(self.src[start..self.i].to_string())
    }
}

pub fn parse(src: &str) -> Result<Filter, ApiError> {
    if src.trim().is_empty() {
        return Ok(Filter::All);
    }
    let mut p = Parser {
        s: src.as_bytes(),
        src,
        i: 0,
    };
    let f = p.or_expr()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(invalid(src));
    }
    Ok(f)
}

fn lookup<'v>(v: &'v Value, field: &str) -> Option<&'v Value> {
    let mut cur = v;
    // Label keys may contain dots-free dashes; walk segment by segment.
    for seg in field.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Resource links compare by their last segment as well, so `zone = us-central1-a`
/// matches a zone URL.
fn text_eq(pattern: &str, text: &str) -> bool {
    if glob(pattern, text) {
        return true;
    }
    if text.starts_with("https://") && !pattern.contains('/') {
        if let Some(last) = text.rsplit('/').next() {
            return glob(pattern, last);
        }
    }
    false
}

fn cmp_scalar(op: Op, value: &str, text: &str) -> bool {
    match op {
        Op::Eq | Op::Has => text_eq(value, text),
        Op::Ne => !text_eq(value, text),
        Op::ReEq | Op::ReNe => {
            let hit = regex_lite::Regex::new(&format!("^(?:{value})$"))
                .map(|re| re.is_match(text))
                .unwrap_or(false);
            (op == Op::ReEq) == hit
        }
        Op::Lt | Op::Gt | Op::Le | Op::Ge => {
            let ord = match (text.parse::<f64>(), value.parse::<f64>()) {
                (Ok(a), Ok(b)) => a.partial_cmp(&b),
                _ => Some(text.cmp(value)),
            };
            match (op, ord) {
                (Op::Lt, Some(o)) => o.is_lt(),
                (Op::Gt, Some(o)) => o.is_gt(),
                (Op::Le, Some(o)) => o.is_le(),
                (Op::Ge, Some(o)) => o.is_ge(),
                _ => false,
            }
        }
    }
}

impl Filter {
    pub fn matches(&self, v: &Value) -> bool {
        match self {
            Filter::All => true,
            Filter::And(fs) => fs.iter().all(|f| f.matches(v)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(v)),
            Filter::Not(f) => !f.matches(v),
            Filter::Cmp { field, op, value } => {
                let found = lookup(v, field);
                let negative = matches!(op, Op::Ne | Op::ReNe);
                match found {
                    None | Some(Value::Null) => negative,
                    Some(x) if *op == Op::Has && value == "*" => !x.is_null(),
                    Some(Value::Array(items)) => {
                        let any = items.iter().any(|it| {
                            scalar_text(it).is_some_and(|t| {
                                let positive = match op {
                                    Op::Ne => Op::Eq,
                                    Op::ReNe => Op::ReEq,
                                    o => *o,
                                };
                                cmp_scalar(positive, value, &t)
                            })
                        });
                        if negative {
                            !any
                        } else {
                            any
                        }
                    }
                    Some(x) => match scalar_text(x) {
                        Some(t) => cmp_scalar(*op, value, &t),
                        None => negative,
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inst() -> Value {
        json!({
            "name": "ws-alpha",
            "status": "RUNNING",
            "zone": "https://www.googleapis.com/compute/v1/projects/p/zones/us-central1-a",
            "labels": {"aienv-id": "abc123", "owner": "me"},
            "scheduling": {"preemptible": false},
            "tags": {"items": ["aienv-ws", "ssh"]},
            "id": "1234"
        })
    }

    #[test]
    fn the_forms_a_backend_sends() {
        let v = inst();
        for (f, want) in [
            ("labels.aienv-id = abc123", true),
            ("labels.aienv-id=\"abc123\"", true),
            ("labels.aienv-id = \"nope\"", false),
            ("name = ws-alpha", true),
            ("name = \"ws-*\"", true),
            ("name eq ws-.*", true),
            ("name eq ws", false),
            ("name ne ws", true),
            ("(labels.owner = me) (status = RUNNING)", true),
            ("labels.owner = me AND status = TERMINATED", false),
            ("labels.owner = you OR status = RUNNING", true),
            ("labels.aienv-id:*", true),
            ("labels.missing:*", false),
            ("labels.missing != x", true),
            ("NOT status = RUNNING", false),
            ("zone = us-central1-a", true),
            ("scheduling.preemptible = false", true),
            ("tags.items = ssh", true),
            ("id = 1234", true),
            ("id > 1000", true),
            ("", true),
        ] {
            let parsed = parse(f).unwrap_or_else(|e| panic!("{f}: {e:?}"));
            assert_eq!(parsed.matches(&v), want, "{f}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics() {
        let v = inst();
        for f in [
            "é",
            "NOTé",
            "name = é",
            "(é",
            "labels.k = \"日本\" OR é",
            "ORé = x",
            "name eq (",
            "a\u{0}b",
            "-",
            "((((",
            "name = \"\\",
        ] {
            if let Ok(parsed) = parse(f) {
                let _ = parsed.matches(&v);
            }
        }
    }

    #[test]
    fn malformed_filters_are_400() {
        for f in [
            "(name = a",
            "= a",
            "name",
            "name ~ a",
            "name = \"unterminated",
        ] {
            let e = parse(f).unwrap_err();
            assert_eq!(e.code, 400, "{f}");
        }
    }
}
