//! XML-RPC on the wire (supervisord's interface at `/RPC2`): the daemon reads
//! a `<methodCall>` and writes a `<methodResponse>`; `nsvisorctl` (invoked as
//! `supervisorctl`) writes the call and reads the response.
//!
//! [`Value`] is the XML-RPC data model. [`parse_call`] reads a request body
//! with quick-xml (which does the tokenizing and entity unescaping) and is as
//! lenient as supervisord's reader: a `<value>` without a type element is a
//! string, `<params>` may be missing, `<i8>` and `<nil/>` are accepted;
//! values nest at most [`MAX_DEPTH`] levels.
//! [`response`] and [`fault`] write the answer the way Python's
//! `xmlrpc.client` does. Characters XML 1.0 cannot carry (most control
//! characters, e.g. the escape of colour codes in program output) are written
//! as U+FFFD, so a client's XML parser never chokes on an answer. Pure: no I/O.

use std::fmt::Write as _;

mod base64;

pub use self::base64::{decode as base64_decode, encode as base64_encode};
use quick_xml::events::Event;
use quick_xml::Reader;

/// One XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>`, `<i4>` (and `<i8>` when reading).
    Int(i64),
    /// `<boolean>`.
    Bool(bool),
    /// `<string>`, or a `<value>` with bare text.
    Str(String),
    /// `<double>`.
    Double(f64),
    /// `<dateTime.iso8601>`, as written.
    DateTime(String),
    /// `<base64>`, decoded.
    Base64(Vec<u8>),
    /// `<array>`.
    Array(Vec<Value>),
    /// `<struct>`, members in order.
    Struct(Vec<(String, Value)>),
    /// `<nil/>` (an extension; read only).
    Nil,
}

impl Value {
    /// A string value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A struct from `(name, value)` pairs.
    pub fn strukt<const N: usize>(members: [(&str, Value); N]) -> Value {
        Value::Struct(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// The member `key` of a struct.
    pub fn member(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Struct(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The XML-RPC type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Bool(_) => "boolean",
            Value::Str(_) => "string",
            Value::Double(_) => "double",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Base64(_) => "base64",
            Value::Array(_) => "array",
            Value::Struct(_) => "struct",
            Value::Nil => "nil",
        }
    }
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `supervisor.getState`, `system.multicall`, …
    pub method: String,
    /// Positional parameters.
    pub params: Vec<Value>,
}

/// Why a body is not an XML-RPC call or response.
#[derive(Debug, PartialEq)]
pub enum DecodeError {
    /// The XML itself is broken.
    Xml(String),
    /// Well-formed XML, but not a methodCall / methodResponse.
    Shape(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Xml(m) => write!(f, "malformed XML: {m}"),
            DecodeError::Shape(m) => write!(f, "not XML-RPC: {m}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn shape(what: impl Into<String>) -> DecodeError {
    DecodeError::Shape(what.into())
}

/// The structural events of a document: element starts (empty elements are a
/// start followed by an end), ends and text; comments, declarations and
/// processing instructions are skipped.
enum Tok {
    Start(String),
    End,
    Text(String),
    Eof,
}

struct Lexer<'a> {
    reader: Reader<&'a [u8]>,
    /// How many `<value>`s are open (see [`MAX_DEPTH`]).
    depth: usize,
    /// The end of an empty element, still to be returned.
    pending_end: bool,
    peeked: Option<Tok>,
}

impl<'a> Lexer<'a> {
    fn new(xml: &'a [u8]) -> Lexer<'a> {
        let mut reader = Reader::from_reader(xml);
        reader.config_mut().trim_text(false);
        Lexer {
            reader,
            depth: 0,
            pending_end: false,
            peeked: None,
        }
    }

    fn next(&mut self) -> Result<Tok, DecodeError> {
        if let Some(tok) = self.peeked.take() {
            return Ok(tok);
        }
        if self.pending_end {
            self.pending_end = false;
            return Ok(Tok::End);
        }
        loop {
            let event = self
                .reader
                .read_event()
                .map_err(|e| DecodeError::Xml(e.to_string()))?;
            let name = |raw: &[u8]| String::from_utf8_lossy(raw).into_owned();
            return Ok(match event {
                Event::Start(e) => Tok::Start(name(e.local_name().as_ref())),
                Event::Empty(e) => {
                    self.pending_end = true;
                    Tok::Start(name(e.local_name().as_ref()))
                }
                Event::End(_) => Tok::End,
                Event::Text(t) => Tok::Text(
                    t.unescape()
                        .map_err(|e| DecodeError::Xml(e.to_string()))?
                        .into_owned(),
                ),
                Event::CData(c) => Tok::Text(String::from_utf8_lossy(&c.into_inner()).into_owned()),
                Event::Eof => Tok::Eof,
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => continue,
            });
        }
    }

    fn peek(&mut self) -> Result<&Tok, DecodeError> {
        if self.peeked.is_none() {
            let tok = self.next()?;
            self.peeked = Some(tok);
        }
        Ok(self.peeked.as_ref().unwrap_or(&Tok::Eof))
    }

    /// The next start tag, skipping whitespace; `None` at an end tag (not consumed).
    fn start(&mut self) -> Result<Option<String>, DecodeError> {
        loop {
            match self.peek()? {
                Tok::Text(t) if t.trim().is_empty() => {
                    self.next()?;
                }
                Tok::Text(t) => return Err(shape(format!("unexpected text {t:?}"))),
                Tok::Start(_) => match self.next()? {
                    Tok::Start(name) => return Ok(Some(name)),
                    _ => return Err(shape("lost a start tag")),
                },
                Tok::End => return Ok(None),
                Tok::Eof => return Err(shape("unexpected end of document")),
            }
        }
    }

    /// Consumes the end tag of the current element, skipping whitespace.
    fn end(&mut self, of: &str) -> Result<(), DecodeError> {
        loop {
            match self.next()? {
                Tok::Text(t) if t.trim().is_empty() => {}
                Tok::End => return Ok(()),
                _ => return Err(shape(format!("expected </{of}>"))),
            }
        }
    }

    /// The text content of the current element, up to and including its end tag.
    fn text(&mut self, of: &str) -> Result<String, DecodeError> {
        let mut out = String::new();
        loop {
            match self.next()? {
                Tok::Text(t) => out.push_str(&t),
                Tok::End => return Ok(out),
                _ => return Err(shape(format!("<{of}> must hold text only"))),
            }
        }
    }

    /// Requires the start tag `name`.
    fn expect(&mut self, name: &str) -> Result<(), DecodeError> {
        match self.start()? {
            Some(n) if n == name => Ok(()),
            Some(n) => Err(shape(format!("expected <{name}>, found <{n}>"))),
            None => Err(shape(format!("expected <{name}>"))),
        }
    }
}

/// Reads a `<methodCall>` document.
pub fn parse_call(xml: &[u8]) -> Result<Call, DecodeError> {
    let mut lx = Lexer::new(xml);
    lx.expect("methodCall")?;
    let mut method = None;
    let mut params = Vec::new();
    while let Some(tag) = lx.start()? {
        match tag.as_str() {
            "methodName" => method = Some(lx.text("methodName")?.trim().to_string()),
            "params" => {
                while let Some(tag) = lx.start()? {
                    if tag != "param" {
                        return Err(shape(format!("expected <param>, found <{tag}>")));
                    }
                    lx.expect("value")?;
                    params.push(value(&mut lx)?);
                    lx.end("param")?;
                }
                lx.end("params")?;
            }
            other => return Err(shape(format!("unexpected <{other}> in <methodCall>"))),
        }
    }
    lx.end("methodCall")?;
    let method = method
        .filter(|m| !m.is_empty())
        .ok_or_else(|| shape("no <methodName>"))?;
    Ok(Call { method, params })
}

/// A fault answer: code and string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultAnswer {
    /// `faultCode`.
    pub code: i64,
    /// `faultString`.
    pub text: String,
}

/// Reads a `<methodResponse>`: its value, or the fault it carries.
pub fn parse_response(xml: &[u8]) -> Result<Result<Value, FaultAnswer>, DecodeError> {
    let mut lx = Lexer::new(xml);
    lx.expect("methodResponse")?;
    let answer = match lx.start()?.as_deref() {
        Some("params") => {
            lx.expect("param")?;
            lx.expect("value")?;
            let v = value(&mut lx)?;
            lx.end("param")?;
            lx.end("params")?;
            Ok(v)
        }
        Some("fault") => {
            lx.expect("value")?;
            let v = value(&mut lx)?;
            lx.end("fault")?;
            let code = match v.member("faultCode") {
                Some(Value::Int(n)) => *n,
                _ => return Err(shape("a fault needs an int faultCode")),
            };
            let text = match v.member("faultString") {
                Some(Value::Str(s)) => s.clone(),
                _ => String::new(),
            };
            Err(FaultAnswer { code, text })
        }
        Some(other) => return Err(shape(format!("unexpected <{other}> in <methodResponse>"))),
        None => return Err(shape("empty <methodResponse>")),
    };
    lx.end("methodResponse")?;
    Ok(answer)
}

/// Deepest nesting of values (in arrays and structs) read. Clients nest a few
/// levels (a multicall: 4); the reader recurses once per level, on the stack
/// of a daemon thread, which a 64 KiB body of `<array><data><value>`s
/// overflowed.
pub const MAX_DEPTH: usize = 100;

/// Reads a value whose `<value>` start tag was just consumed, through its end tag.
fn value(lx: &mut Lexer<'_>) -> Result<Value, DecodeError> {
    if lx.depth >= MAX_DEPTH {
        return Err(shape(format!(
            "values nested deeper than {MAX_DEPTH} levels"
        )));
    }
    lx.depth += 1;
    let v = value_inside(lx);
    lx.depth -= 1;
    v
}

/// [`value`], one level deeper.
fn value_inside(lx: &mut Lexer<'_>) -> Result<Value, DecodeError> {
    // Bare text (or nothing) is a string.
    let mut bare = String::new();
    loop {
        match lx.peek()? {
            Tok::Text(_) => {
                if let Tok::Text(t) = lx.next()? {
                    bare.push_str(&t);
                }
            }
            Tok::End => {
                lx.next()?;
                return Ok(Value::Str(bare));
            }
            Tok::Start(_) => break,
            Tok::Eof => return Err(shape("unexpected end of document in <value>")),
        }
    }
    if !bare.trim().is_empty() {
        return Err(shape("<value> mixes text and a type element"));
    }
    let Some(tag) = lx.start()? else {
        return Err(shape("empty <value>"));
    };
    let v = typed(lx, &tag)?;
    lx.end("value")?;
    Ok(v)
}

fn typed(lx: &mut Lexer<'_>, tag: &str) -> Result<Value, DecodeError> {
    let bad = |text: &str| shape(format!("<{tag}>{text}</{tag}> is not a valid {tag}"));
    Ok(match tag {
        "int" | "i4" | "i8" => {
            let t = lx.text(tag)?;
            Value::Int(t.trim().parse().map_err(|_| bad(&t))?)
        }
        "boolean" => match lx.text(tag)?.trim() {
            "1" => Value::Bool(true),
            "0" => Value::Bool(false),
            t => return Err(bad(t)),
        },
        "string" => Value::Str(lx.text(tag)?),
        "double" => {
            let t = lx.text(tag)?;
            Value::Double(t.trim().parse().map_err(|_| bad(&t))?)
        }
        "dateTime.iso8601" => Value::DateTime(lx.text(tag)?.trim().to_string()),
        "base64" => {
            let t = lx.text(tag)?;
            Value::Base64(base64_decode(&t).ok_or_else(|| bad(&t))?)
        }
        "nil" => {
            lx.end(tag)?;
            Value::Nil
        }
        "array" => {
            let mut items = Vec::new();
            lx.expect("data")?;
            while let Some(t) = lx.start()? {
                if t != "value" {
                    return Err(shape(format!("expected <value> in <data>, found <{t}>")));
                }
                items.push(value(lx)?);
            }
            lx.end("data")?;
            lx.end("array")?;
            Value::Array(items)
        }
        "struct" => {
            let mut members = Vec::new();
            while let Some(t) = lx.start()? {
                if t != "member" {
                    return Err(shape(format!("expected <member> in <struct>, found <{t}>")));
                }
                let mut name = None;
                let mut val = None;
                while let Some(t) = lx.start()? {
                    match t.as_str() {
                        "name" => name = Some(lx.text("name")?),
                        "value" => val = Some(value(lx)?),
                        other => return Err(shape(format!("unexpected <{other}> in <member>"))),
                    }
                }
                lx.end("member")?;
                match (name, val) {
                    (Some(n), Some(v)) => members.push((n, v)),
                    _ => return Err(shape("a <member> needs a <name> and a <value>")),
                }
            }
            lx.end("struct")?;
            Value::Struct(members)
        }
        other => return Err(shape(format!("unknown type <{other}>"))),
    })
}

/// A `<methodResponse>` carrying one value.
pub fn response(value: &Value) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n");
    write_value(&mut out, value);
    out.push_str("</param>\n</params>\n</methodResponse>\n");
    out
}

/// A `<methodResponse>` carrying a fault.
pub fn fault(code: i32, text: &str) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodResponse>\n<fault>\n");
    write_value(
        &mut out,
        &Value::strukt([
            ("faultCode", Value::Int(code.into())),
            ("faultString", Value::str(text)),
        ]),
    );
    out.push_str("</fault>\n</methodResponse>\n");
    out
}

/// A `<methodCall>` (for tests and clients).
pub fn call(method: &str, params: &[Value]) -> String {
    let mut out = String::from("<?xml version='1.0'?>\n<methodCall>\n<methodName>");
    escape_into(&mut out, method);
    out.push_str("</methodName>\n<params>\n");
    for p in params {
        out.push_str("<param>\n");
        write_value(&mut out, p);
        out.push_str("</param>\n");
    }
    out.push_str("</params>\n</methodCall>\n");
    out
}

fn write_value(out: &mut String, v: &Value) {
    out.push_str("<value>");
    match v {
        // XML-RPC's int is 32 bits: larger numbers (times after 2038) saturate,
        // as supervisord does.
        Value::Int(n) => {
            let n = (*n).clamp(i32::MIN.into(), i32::MAX.into());
            let _ = write!(out, "<int>{n}</int>");
        }
        Value::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Value::Str(s) => {
            out.push_str("<string>");
            escape_into(out, s);
            out.push_str("</string>");
        }
        Value::Double(d) => {
            let _ = write!(out, "<double>{d:?}</double>");
        }
        Value::DateTime(s) => {
            out.push_str("<dateTime.iso8601>");
            escape_into(out, s);
            out.push_str("</dateTime.iso8601>");
        }
        Value::Base64(b) => {
            out.push_str("<base64>");
            out.push_str(&base64_encode(b));
            out.push_str("</base64>");
        }
        Value::Array(items) => {
            out.push_str("<array><data>\n");
            for item in items {
                write_value(out, item);
            }
            out.push_str("</data></array>");
        }
        Value::Struct(members) => {
            out.push_str("<struct>\n");
            for (k, v) in members {
                out.push_str("<member>\n<name>");
                escape_into(out, k);
                out.push_str("</name>\n");
                write_value(out, v);
                out.push_str("</member>\n");
            }
            out.push_str("</struct>");
        }
        Value::Nil => out.push_str("<nil/>"),
    }
    out.push_str("</value>\n");
}

/// Escapes text content; characters XML 1.0 forbids become U+FFFD.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
