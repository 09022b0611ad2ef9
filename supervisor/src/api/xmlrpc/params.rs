//! A method's positional parameters, checked the way supervisord's Python
//! methods take them: a wrong count is `INCORRECT_PARAMETERS`; numbers may
//! come as ints or numeric strings (`int(offset)`); `wait` is any truth value.

use super::codec::Value;
use super::fault::{Code, Fault};

/// The parameters of one call.
#[derive(Debug)]
pub struct Params(Vec<Value>);

fn incorrect(what: &str) -> Fault {
    Fault::new(Code::IncorrectParameters, what)
}

fn string(v: Value) -> Result<String, Fault> {
    match v {
        Value::Str(s) => Ok(s),
        Value::Base64(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Value::Int(n) => Ok(n.to_string()),
        other => Err(incorrect(&format!(
            "expected a string, got {}",
            other.type_name()
        ))),
    }
}

fn int(v: Value) -> Result<i64, Fault> {
    match v {
        Value::Int(n) => Ok(n),
        Value::Bool(b) => Ok(i64::from(b)),
        Value::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| Fault::new(Code::BadArguments, format!("not a number: {s:?}"))),
        other => Err(incorrect(&format!(
            "expected an int, got {}",
            other.type_name()
        ))),
    }
}

/// Python's truth value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Int(n) => *n != 0,
        Value::Double(d) => *d != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Struct(m) => !m.is_empty(),
        Value::Base64(b) => !b.is_empty(),
        Value::DateTime(_) => true,
        Value::Nil => false,
    }
}

impl Params {
    /// Wraps the decoded parameters.
    pub fn new(values: Vec<Value>) -> Params {
        Params(values)
    }

    fn count(&self, min: usize, max: usize) -> Result<(), Fault> {
        let n = self.0.len();
        if n < min || n > max {
            let want = if min == max {
                format!("{min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(incorrect(&format!("takes {want} parameters, {n} given")));
        }
        Ok(())
    }

    /// No parameters.
    pub fn none(self) -> Result<(), Fault> {
        self.count(0, 0)
    }

    /// One string.
    pub fn one_str(self) -> Result<String, Fault> {
        self.count(1, 1)?;
        self.0
            .into_iter()
            .next()
            .map_or_else(|| Err(incorrect("missing")), string)
    }

    /// Two strings.
    pub fn two_str(self) -> Result<(String, String), Fault> {
        self.count(2, 2)?;
        let mut it = self.0.into_iter();
        match (it.next(), it.next()) {
            (Some(a), Some(b)) => Ok((string(a)?, string(b)?)),
            _ => Err(incorrect("missing")),
        }
    }

    /// Two parameters of any type.
    pub fn two_any(self) -> Result<(Value, Value), Fault> {
        self.count(2, 2)?;
        let mut it = self.0.into_iter();
        match (it.next(), it.next()) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(incorrect("missing")),
        }
    }

    /// Two numbers.
    pub fn two_int(self) -> Result<(i64, i64), Fault> {
        self.count(2, 2)?;
        let mut it = self.0.into_iter();
        match (it.next(), it.next()) {
            (Some(a), Some(b)) => Ok((int(a)?, int(b)?)),
            _ => Err(incorrect("missing")),
        }
    }

    /// A name and two numbers.
    pub fn str_and_two_int(self) -> Result<(String, i64, i64), Fault> {
        self.count(3, 3)?;
        let mut it = self.0.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => Ok((string(a)?, int(b)?, int(c)?)),
            _ => Err(incorrect("missing")),
        }
    }

    /// A name and an optional `wait` (default true).
    pub fn str_and_wait(self) -> Result<(String, bool), Fault> {
        self.count(1, 2)?;
        let mut it = self.0.into_iter();
        let name = it
            .next()
            .map_or_else(|| Err(incorrect("missing")), string)?;
        Ok((name, it.next().is_none_or(|w| truthy(&w))))
    }

    /// An optional `wait` (default true).
    pub fn wait_only(self) -> Result<bool, Fault> {
        self.count(0, 1)?;
        Ok(self.0.first().is_none_or(truthy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_types() {
        let p = |v: Vec<Value>| Params::new(v);
        assert!(p(vec![]).none().is_ok());
        let e = p(vec![Value::Int(1)]).none().err();
        assert_eq!(e.map(|f| f.code), Some(Code::IncorrectParameters));
        assert_eq!(
            p(vec![Value::str("web")]).str_and_wait().ok(),
            Some(("web".into(), true))
        );
        assert_eq!(
            p(vec![Value::str("web"), Value::Bool(false)])
                .str_and_wait()
                .ok(),
            Some(("web".into(), false))
        );
        assert_eq!(
            p(vec![Value::str("web"), Value::str("-100"), Value::Int(0)])
                .str_and_two_int()
                .ok(),
            Some(("web".into(), -100, 0))
        );
        let e = p(vec![Value::str("x"), Value::str("y")]).two_int().err();
        assert_eq!(e.map(|f| f.code), Some(Code::BadArguments));
        let e = p(vec![Value::Array(vec![])]).one_str().err();
        assert_eq!(e.map(|f| f.code), Some(Code::IncorrectParameters));
        assert_eq!(p(vec![Value::Int(0)]).wait_only().ok(), Some(false));
    }
}
