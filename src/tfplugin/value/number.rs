//! Arbitrary-precision decimal numbers for cty `number` values.
//!
//! cty itself stores numbers as 512-bit binary floats, but every number that
//! reaches us on the wire is either an int, an IEEE double (always an exact
//! finite decimal) or a decimal string, so an exact decimal loses nothing and
//! makes equality and printing unambiguous.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Largest decimal exponent (of either the most or the least significant
/// digit) that we accept. cty allows far more, but a 12-byte string such as
/// `1e999999999` would otherwise expand to a gigabyte when printed; 10^±10000
/// still covers every f64 exactly with a wide margin.
const MAX_DECIMAL_EXPONENT: i64 = 10_000;

/// Longest exact decimal expansion of any finite f64 is 767 significant
/// digits; anything longer cannot be a double, which lets the exactness check
/// skip the expensive expansion.
const MAX_F64_DIGITS: usize = 767;

/// An exact decimal number: `(-1)^neg * digits * 10^exp`.
///
/// Kept normalised (no leading or trailing zero digits, zero is
/// `digits == []` with `neg == false`), so the derived `Eq`/`Hash` compare by
/// value.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Number {
    neg: bool,
    /// ASCII digits, most significant first.
    digits: Vec<u8>,
    exp: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseNumberError {
    #[error("not a decimal number")]
    Syntax,
    #[error("number is outside the supported range (10^-10000 to 10^10000)")]
    OutOfRange,
}

impl Number {
    pub fn zero() -> Number {
        Number::default()
    }

    pub fn from_i64(v: i64) -> Number {
        let mut n = Number::from_u64(v.unsigned_abs());
        n.neg = v < 0;
        n
    }

    pub fn from_u64(v: u64) -> Number {
        Number::normalized(false, v.to_string().into_bytes(), 0)
    }

    /// The exact value of `v` (every finite double is a finite decimal), or
    /// `None` for NaN and infinities, which cty numbers on the wire never
    /// carry except as infinity, which we do not support.
    pub fn from_f64_exact(v: f64) -> Option<Number> {
        if !v.is_finite() {
            return None;
        }
        if v == 0.0 {
            return Some(Number::zero());
        }
        let bits = v.to_bits();
        let neg = bits >> 63 == 1;
        let biased = ((bits >> 52) & 0x7ff) as i32;
        let fraction = bits & ((1u64 << 52) - 1);
        let (mantissa, exp2) = if biased == 0 {
            (fraction, -1074)
        } else {
            (fraction | (1u64 << 52), biased - 1075)
        };
        let n = if exp2 >= 0 {
            Number::normalized(neg, scaled_digits(mantissa, exp2.unsigned_abs(), 0), 0)
        } else {
            // m * 2^-k == m * 5^k / 10^k, which keeps everything integral.
            let k = exp2.unsigned_abs();
            Number::normalized(neg, scaled_digits(mantissa, 0, k), -i64::from(k))
        };
        Some(n)
    }

    /// The decimal rendering of the shortest f64 literal that round-trips,
    /// e.g. `0.1` for `0.1f64`. Use this for values that came from a float
    /// computation and should look like what a user would type; use
    /// [`Number::from_f64_exact`] to preserve the double bit-for-bit.
    pub fn from_f64_shortest(v: f64) -> Option<Number> {
        if !v.is_finite() {
            return None;
        }
        format!("{v:e}").parse().ok()
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    pub fn is_negative(&self) -> bool {
        self.neg
    }

    pub fn is_integer(&self) -> bool {
        self.exp >= 0
    }

    pub fn to_i64(&self) -> Option<i64> {
        self.to_small_integer().and_then(|v| i64::try_from(v).ok())
    }

    pub fn to_u64(&self) -> Option<u64> {
        self.to_small_integer().and_then(|v| u64::try_from(v).ok())
    }

    pub fn to_u32(&self) -> Option<u32> {
        self.to_small_integer().and_then(|v| u32::try_from(v).ok())
    }

    /// Nearest double (ties to even); ±infinity when out of range.
    pub fn to_f64(&self) -> f64 {
        if self.is_zero() {
            return 0.0;
        }
        // Rust's float parser is correctly rounded for any number of digits,
        // so scientific notation is the cheapest exact route.
        let sign = if self.neg { "-" } else { "" };
        let digits = String::from_utf8_lossy(&self.digits);
        format!("{sign}{digits}e{}", self.exp)
            .parse()
            .unwrap_or(f64::NAN)
    }

    /// The double with exactly this value, if there is one.
    pub fn to_f64_exact(&self) -> Option<f64> {
        if self.digits.len() > MAX_F64_DIGITS {
            return None;
        }
        let f = self.to_f64();
        let back = Number::from_f64_exact(f)?;
        (back == *self).then_some(f)
    }

    /// Integers of up to 20 digits, which covers every i64 and u64.
    fn to_small_integer(&self) -> Option<i128> {
        if !self.is_integer() {
            return None;
        }
        let exp = usize::try_from(self.exp).ok()?;
        if self.digits.len() + exp > 20 {
            return None;
        }
        let mut acc: i128 = 0;
        for d in &self.digits {
            acc = acc * 10 + i128::from(d - b'0');
        }
        for _ in 0..exp {
            acc *= 10;
        }
        Some(if self.neg { -acc } else { acc })
    }

    /// For inputs whose exponent range is known to be small (ints, doubles).
    fn normalized(neg: bool, digits: Vec<u8>, exp: i64) -> Number {
        Number::normalized_checked(neg, digits, exp).unwrap_or_default()
    }

    fn normalized_checked(
        neg: bool,
        mut digits: Vec<u8>,
        mut exp: i64,
    ) -> Result<Number, ParseNumberError> {
        let leading = digits.iter().take_while(|d| **d == b'0').count();
        digits.drain(..leading);
        let trailing = digits.iter().rev().take_while(|d| **d == b'0').count();
        digits.truncate(digits.len() - trailing);
        if digits.is_empty() {
            return Ok(Number::zero());
        }
        exp = exp.saturating_add(trailing as i64);
        let top = exp.saturating_add(digits.len() as i64 - 1);
        if exp < -MAX_DECIMAL_EXPONENT || top > MAX_DECIMAL_EXPONENT {
            return Err(ParseNumberError::OutOfRange);
        }
        let exp = i32::try_from(exp).map_err(|_| ParseNumberError::OutOfRange)?;
        Ok(Number { neg, digits, exp })
    }

    fn cmp_magnitude(&self, other: &Number) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        let top_a = i64::from(self.exp) + self.digits.len() as i64;
        let top_b = i64::from(other.exp) + other.digits.len() as i64;
        // With equal leading positions, plain slice order is value order
        // because neither side has trailing zeros.
        top_a
            .cmp(&top_b)
            .then_with(|| self.digits.cmp(&other.digits))
    }
}

/// Decimal digits of `m * 2^pow2 * 5^pow5`, using base-10^9 limbs.
fn scaled_digits(m: u64, mut pow2: u32, mut pow5: u32) -> Vec<u8> {
    const BASE: u64 = 1_000_000_000;
    let mut limbs: Vec<u64> = vec![m % BASE, (m / BASE) % BASE, m / BASE / BASE];
    let mul = |limbs: &mut Vec<u64>, factor: u64| {
        let mut carry = 0u64;
        for limb in limbs.iter_mut() {
            // limb < 10^9 and factor <= 2^32, so this stays below 2^63.
            let v = *limb * factor + carry;
            *limb = v % BASE;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
    };
    while pow2 > 0 {
        let step = pow2.min(32);
        mul(&mut limbs, 1u64 << step);
        pow2 -= step;
    }
    while pow5 > 0 {
        let step = pow5.min(13);
        mul(&mut limbs, 5u64.pow(step));
        pow5 -= step;
    }
    let mut out = String::with_capacity(limbs.len() * 9);
    for limb in limbs.iter().rev() {
        out.push_str(&format!("{limb:09}"));
    }
    out.into_bytes()
}

impl FromStr for Number {
    type Err = ParseNumberError;

    /// `[+-]? (digits ['.' digits?] | '.' digits) ([eE] [+-]? digits)?`, the
    /// decimal subset of Go's `big.ParseFloat` that cty uses (no `Inf`, no
    /// binary `p` exponents).
    fn from_str(s: &str) -> Result<Number, ParseNumberError> {
        let b = s.as_bytes();
        let mut i = 0;
        let mut neg = false;
        if let Some(&c @ (b'+' | b'-')) = b.first() {
            neg = c == b'-';
            i = 1;
        }
        let mut digits = Vec::with_capacity(b.len());
        let int_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            digits.push(b[i]);
            i += 1;
        }
        let int_len = i - int_start;
        let mut frac_len = 0usize;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                digits.push(b[i]);
                i += 1;
                frac_len += 1;
            }
        }
        if int_len + frac_len == 0 {
            return Err(ParseNumberError::Syntax);
        }
        let mut exp: i64 = 0;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            let mut exp_neg = false;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                exp_neg = b[i] == b'-';
                i += 1;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                // Saturate instead of overflowing: anything this large is
                // rejected by the range check below (unless the mantissa is 0).
                exp = (exp * 10 + i64::from(b[i] - b'0')).min(1 << 40);
                i += 1;
            }
            if i == start {
                return Err(ParseNumberError::Syntax);
            }
            if exp_neg {
                exp = -exp;
            }
        }
        if i != b.len() {
            return Err(ParseNumberError::Syntax);
        }
        let frac_len = i64::try_from(frac_len).map_err(|_| ParseNumberError::OutOfRange)?;
        Number::normalized_checked(neg, digits, exp - frac_len)
    }
}

impl fmt::Display for Number {
    /// Plain positional notation, matching Go's `big.Float.Text('f', -1)`
    /// which cty uses for JSON and for msgpack number strings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let mut s = String::with_capacity(self.digits.len() + 8);
        if self.neg {
            s.push('-');
        }
        let digits = std::str::from_utf8(&self.digits).map_err(|_| fmt::Error)?;
        let exp = self.exp as isize;
        if exp >= 0 {
            s.push_str(digits);
            s.extend(std::iter::repeat_n('0', exp as usize));
        } else {
            let point = digits.len() as isize + exp;
            if point > 0 {
                let (int, frac) = digits.split_at(point as usize);
                s.push_str(int);
                s.push('.');
                s.push_str(frac);
            } else {
                s.push_str("0.");
                s.extend(std::iter::repeat_n('0', (-point) as usize));
                s.push_str(digits);
            }
        }
        f.write_str(&s)
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number({self})")
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        match (self.neg, other.neg) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl From<i64> for Number {
    fn from(v: i64) -> Number {
        Number::from_i64(v)
    }
}

impl From<u64> for Number {
    fn from(v: u64) -> Number {
        Number::from_u64(v)
    }
}

impl From<i32> for Number {
    fn from(v: i32) -> Number {
        Number::from_i64(v.into())
    }
}

impl From<u32> for Number {
    fn from(v: u32) -> Number {
        Number::from_u64(v.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display_canonical() {
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("+0.000e5", "0"),
            ("1.5", "1.5"),
            ("1.50", "1.5"),
            ("001.500", "1.5"),
            ("-0.001", "-0.001"),
            ("-1e-3", "-0.001"),
            (".5", "0.5"),
            ("5.", "5"),
            ("1E3", "1000"),
            ("1e+3", "1000"),
            ("12345678901234567890123.25", "12345678901234567890123.25"),
            ("1180591620717411303424", "1180591620717411303424"),
            ("123.456e2", "12345.6"),
            ("123.456e-5", "0.00123456"),
            ("0e999999999999999999999", "0"),
        ] {
            assert_eq!(n(input).to_string(), want, "input {input}");
        }
    }

    #[test]
    fn parse_rejects() {
        for bad in [
            "", "-", "+", ".", "e5", "1e", "1e+", "1.2.3", " 1", "1 ", "0x10", "Inf", "inf", "NaN",
            "1p4", "1_000", "--1", "1e5x",
        ] {
            assert_eq!(
                bad.parse::<Number>(),
                Err(ParseNumberError::Syntax),
                "{bad:?}"
            );
        }
        for big in ["1e10001", "1e-10001", "1e99999999999999999999999"] {
            assert_eq!(big.parse::<Number>(), Err(ParseNumberError::OutOfRange));
        }
        assert!("1e10000".parse::<Number>().is_ok());
        assert!("1e-10000".parse::<Number>().is_ok());
    }

    #[test]
    fn equality_and_order_by_value() {
        assert_eq!(n("1.50"), n("1.5"));
        assert_eq!(n("100"), Number::from_i64(100));
        let sorted = [
            "-1000", "-999.5", "-1", "-0.5", "-0.001", "0", "0.001", "0.01", "0.5", "1", "1.5",
            "2", "10", "99.99", "100",
        ];
        for (i, a) in sorted.iter().enumerate() {
            for (j, b) in sorted.iter().enumerate() {
                assert_eq!(n(a).cmp(&n(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn integers() {
        for v in [0, 1, -1, 10, -100, i64::MAX, i64::MIN, 1_000_000] {
            let x = Number::from_i64(v);
            assert_eq!(x.to_string(), v.to_string());
            assert_eq!(x.to_i64(), Some(v));
            assert!(x.is_integer());
        }
        assert_eq!(Number::from_u64(u64::MAX).to_u64(), Some(u64::MAX));
        assert_eq!(Number::from_u64(u64::MAX).to_i64(), None);
        assert_eq!(n("18446744073709551616").to_u64(), None);
        assert_eq!(n("1.5").to_i64(), None);
        assert!(!n("1.5").is_integer());
        assert_eq!(n("4294967295").to_u32(), Some(u32::MAX));
        assert_eq!(n("4294967296").to_u32(), None);
        assert_eq!(n("-1").to_u32(), None);
        assert_eq!(n("1e19").to_u64(), Some(10_000_000_000_000_000_000));
        assert_eq!(n("1e25").to_u64(), None);
        assert_eq!(n("9.2233720368547758070e18").to_i64(), Some(i64::MAX));
    }

    #[test]
    fn exact_f64_expansion() {
        let two70 = Number::from_f64_exact(2f64.powi(70)).unwrap();
        assert_eq!(two70.to_string(), "1180591620717411303424");
        assert_eq!(
            Number::from_f64_exact(0.1).unwrap().to_string(),
            "0.1000000000000000055511151231257827021181583404541015625"
        );
        assert_eq!(Number::from_f64_exact(-1.5).unwrap().to_string(), "-1.5");
        assert_eq!(Number::from_f64_exact(0.0).unwrap(), Number::zero());
        assert_eq!(Number::from_f64_exact(-0.0).unwrap(), Number::zero());
        assert!(Number::from_f64_exact(f64::NAN).is_none());
        assert!(Number::from_f64_exact(f64::INFINITY).is_none());
        let tiny = Number::from_f64_exact(f64::from_bits(1)).unwrap();
        assert!(tiny.to_string().starts_with("0.000000000"));
        assert_eq!(tiny.to_f64(), f64::from_bits(1));
        let max = Number::from_f64_exact(f64::MAX).unwrap();
        assert_eq!(max.to_string().len(), 309);
        assert_eq!(max.to_f64(), f64::MAX);
    }

    #[test]
    fn f64_round_trips_and_exactness() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            let num = Number::from_f64_exact(f).unwrap();
            assert_eq!(num.to_f64().to_bits(), (f + 0.0).to_bits());
            assert_eq!(num.to_f64_exact(), Some(f + 0.0));
            let short = Number::from_f64_shortest(f).unwrap();
            assert_eq!(short.to_f64().to_bits(), (f + 0.0).to_bits());
        }
        assert_eq!(n("1.5").to_f64_exact(), Some(1.5));
        assert_eq!(n("0.1").to_f64_exact(), None);
        assert_eq!(n("0.1").to_f64(), 0.1);
        assert_eq!(n("12345678901234567890123.25").to_f64_exact(), None);
        assert_eq!(n("1e400").to_f64(), f64::INFINITY);
        assert_eq!(Number::from_f64_shortest(0.1).unwrap(), n("0.1"));
    }
}
