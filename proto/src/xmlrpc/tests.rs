//! The codec against what Python's xmlrpc.client sends and expects.

use super::*;

/// What Python's `xmlrpc.client.dumps((..), "supervisor.startProcess")` sends.
const PYTHON_CALL: &str = "<?xml version='1.0'?>\n<methodCall>\n<methodName>supervisor.startProcess</methodName>\n<params>\n<param>\n<value><string>web &amp; co</string></value>\n</param>\n<param>\n<value><boolean>1</boolean></value>\n</param>\n</params>\n</methodCall>\n";

#[test]
fn reads_what_python_sends() {
    let call = parse_call(PYTHON_CALL.as_bytes()).expect("parse");
    assert_eq!(call.method, "supervisor.startProcess");
    assert_eq!(call.params, vec![Value::str("web & co"), Value::Bool(true)]);
}

#[test]
fn reads_every_type_and_lenient_forms() {
    let xml = "<methodCall><methodName>m</methodName><params>\
        <param><value>bare text</value></param>\
        <param><value></value></param>\
        <param><value><i4>-3</i4></value></param>\
        <param><value><i8>5000000000</i8></value></param>\
        <param><value><double>1.5</double></value></param>\
        <param><value><base64>aGVsbG8=</base64></value></param>\
        <param><value><dateTime.iso8601>20260101T00:00:00</dateTime.iso8601></value></param>\
        <param><value><nil/></value></param>\
        <param><value><array><data><value><int>1</int></value><value>x</value></data></array></value></param>\
        <param><value><struct><member><name>methodName</name><value>a.b</value></member>\
          <member><name>params</name><value><array><data/></array></value></member></struct></value></param>\
        </params></methodCall>";
    let call = parse_call(xml.as_bytes()).expect("parse");
    assert_eq!(
        call.params,
        vec![
            Value::str("bare text"),
            Value::str(""),
            Value::Int(-3),
            Value::Int(5_000_000_000),
            Value::Double(1.5),
            Value::Base64(b"hello".to_vec()),
            Value::DateTime("20260101T00:00:00".into()),
            Value::Nil,
            Value::Array(vec![Value::Int(1), Value::str("x")]),
            Value::strukt([
                ("methodName", Value::str("a.b")),
                ("params", Value::Array(vec![])),
            ]),
        ]
    );
    let no_params =
        parse_call(b"<methodCall><methodName>system.listMethods</methodName></methodCall>")
            .expect("parse");
    assert!(no_params.params.is_empty());
}

#[test]
fn refuses_what_is_not_a_call() {
    for bad in [
        &b"<methodCall><params/></methodCall>"[..],
        b"<methodCall><methodName></methodName></methodCall>",
        b"<methodResponse/>",
        b"<methodCall><methodName>m</methodName><params><param><value><int>x</int></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName><params><param><value><what>1</what></value></param></params></methodCall>",
        b"<methodCall><methodName>m</methodName>",
        b"not xml at all",
    ] {
        assert!(parse_call(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn writes_responses_and_faults_that_round_trip() {
    let v = Value::Array(vec![
        Value::strukt([
            ("name", Value::str("a<b>&\u{1b}[0m")),
            ("pid", Value::Int(42)),
            ("start", Value::Int(i64::from(i32::MAX) + 10)),
            ("ok", Value::Bool(false)),
        ]),
        Value::Base64(vec![0, 1, 2, 250]),
    ]);
    let xml = response(&v);
    assert!(xml.starts_with("<?xml version='1.0'?>\n<methodResponse>\n<params>"));
    assert!(xml.contains("a&lt;b&gt;&amp;\u{FFFD}[0m"));
    // Read it back through the call reader (same value grammar).
    let body = xml
        .replace("methodResponse", "methodCall")
        .replace("<params>", "<methodName>r</methodName><params>");
    let back = parse_call(body.as_bytes()).expect("parse back");
    assert_eq!(
        back.params,
        vec![Value::Array(vec![
            Value::strukt([
                ("name", Value::str("a<b>&\u{FFFD}[0m")),
                ("pid", Value::Int(42)),
                ("start", Value::Int(i32::MAX.into())),
                ("ok", Value::Bool(false)),
            ]),
            Value::Base64(vec![0, 1, 2, 250]),
        ])]
    );
    assert_eq!(
        parse_response(xml.as_bytes()).ok(),
        Some(Ok(
            parse_call(body.as_bytes()).expect("call").params[0].clone()
        ))
    );
    let f = fault(10, "BAD_NAME: nope");
    assert_eq!(
        parse_response(f.as_bytes()).ok(),
        Some(Err(FaultAnswer {
            code: 10,
            text: "BAD_NAME: nope".into()
        }))
    );
    assert!(f.contains("<fault>"));
    assert!(f.contains("<name>faultCode</name>\n<value><int>10</int></value>"));
    assert!(f.contains("<value><string>BAD_NAME: nope</string></value>"));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // As deep as the daemon's 64 KiB body limit allows, read on a thread with
    // the stack of a tokio worker (2 MiB): this overflowed it.
    let open = "<array><data><value>";
    let depth = 64 * 1024 / open.len();
    let body = format!(
        "<methodCall><methodName>m</methodName><params><param><value>{}",
        open.repeat(depth)
    );
    let result = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || parse_call(body.as_bytes()))
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    let message = format!("values nested deeper than {MAX_DEPTH} levels");
    assert_eq!(result, Err(DecodeError::Shape(message)));
    // Nesting up to the limit is read.
    let nested = |depth: usize| {
        format!(
            "<methodCall><methodName>m</methodName><params><param><value>{}1{}</value></param></params></methodCall>",
            open.repeat(depth - 1),
            "</value></data></array>".repeat(depth - 1)
        )
    };
    assert!(parse_call(nested(MAX_DEPTH).as_bytes()).is_ok());
    assert!(parse_call(nested(MAX_DEPTH + 1).as_bytes()).is_err());
}
