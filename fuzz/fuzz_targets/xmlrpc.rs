//! The XML-RPC codec (`nsvisor_proto::xmlrpc`): `<methodCall>` as the daemon
//! reads it at `/RPC2` (multicall included), `<methodResponse>` as
//! `nsvisorctl` reads it. What parses must survive a round trip through the
//! writer, up to what the writer documents: ints saturate to 32 bits and
//! characters XML 1.0 cannot carry become U+FFFD.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsvisor_proto::xmlrpc::{self, Call, FaultAnswer, Value};

fuzz_target!(|data: &[u8]| {
    if let Ok(call) = xmlrpc::parse_call(data) {
        let written = xmlrpc::call(&call.method, &call.params);
        match xmlrpc::parse_call(written.as_bytes()) {
            Ok(again) => assert_eq!(
                normal_call(again),
                normal_call(call.clone()),
                "written as:\n{written}"
            ),
            Err(e) => panic!("the writer's call does not parse: {e}\n{written}"),
        }
        for p in &call.params {
            round_trip_response(p);
        }
    }
    match xmlrpc::parse_response(data) {
        Ok(Ok(v)) => round_trip_response(&v),
        Ok(Err(fault)) => {
            let code = fault.code.clamp(i32::MIN.into(), i32::MAX.into()) as i32;
            let written = xmlrpc::fault(code, &fault.text);
            let again = xmlrpc::parse_response(written.as_bytes());
            let expected = FaultAnswer {
                code: code.into(),
                text: xml_chars(&fault.text),
            };
            assert_eq!(again, Ok(Err(expected)), "written as:\n{written}");
        }
        Err(_) => {}
    }
});

fn round_trip_response(v: &Value) {
    let written = xmlrpc::response(v);
    match xmlrpc::parse_response(written.as_bytes()) {
        Ok(Ok(again)) => assert_eq!(normal(again), normal(v.clone()), "written as:\n{written}"),
        other => panic!("the writer's response reads as {other:?}:\n{written}"),
    }
}

fn normal_call(call: Call) -> Call {
    Call {
        method: xml_chars(&call.method).trim().to_string(),
        params: call.params.into_iter().map(normal).collect(),
    }
}

/// `v` as the writer promises to carry it.
fn normal(v: Value) -> Value {
    match v {
        Value::Int(n) => Value::Int(n.clamp(i32::MIN.into(), i32::MAX.into())),
        Value::Str(s) => Value::Str(xml_chars(&s)),
        Value::DateTime(s) => Value::DateTime(xml_chars(&s).trim().to_string()),
        // NaN equals nothing, not even itself.
        Value::Double(d) if d.is_nan() => Value::Str("NaN".into()),
        Value::Array(items) => Value::Array(items.into_iter().map(normal).collect()),
        Value::Struct(members) => Value::Struct(
            members
                .into_iter()
                .map(|(k, v)| (xml_chars(&k), normal(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The characters XML 1.0 cannot carry replaced by U+FFFD, as the writer does.
fn xml_chars(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}
