//! Tests of the whole API over a real unix socket, against a fake supervisor
//! (a task answering `Command`s from a fixed program list), so the HTTP side
//! is checked without spawning anything. End-to-end tests against the real
//! daemon are in `tests/tests/api.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::test_util::wait_until;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use nsvisor_proto::{ActionResult, ErrorBody, ErrorKind, ProgramInfo, State, StateEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::fake::{fake, Fake};
use super::{serve_with, ApiServer, Limits};
use crate::config::SupervisorConfig;

struct Setup {
    _dir: tempfile::TempDir,
    path: PathBuf,
    server: ApiServer,
    fake: Fake,
}

async fn setup(limits: Limits) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("api.sock");
    let cfg = SupervisorConfig {
        socket: Some(path.clone()),
        ..SupervisorConfig::default()
    };
    let fake = fake();
    let server = serve_with(fake.handle.clone(), &cfg, limits, Default::default())
        .await
        .expect("serve");
    Setup {
        _dir: dir,
        path,
        server,
        fake,
    }
}

async fn send(path: &Path, method: &str, uri: &str, body: &str) -> Response<Incoming> {
    let stream = UnixStream::connect(path).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    sender.send_request(req).await.expect("response")
}

async fn call(path: &Path, method: &str, uri: &str, body: &str) -> (u16, serde_json::Value) {
    let res = send(path, method, uri, body).await;
    let status = res.status().as_u16();
    let data = res.into_body().collect().await.expect("body").to_bytes();
    let value =
        serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {data:?}"));
    (status, value)
}

fn error_kind(v: &serde_json::Value) -> ErrorKind {
    serde_json::from_value::<ErrorBody>(v.clone())
        .expect("an error body")
        .error
        .kind
}

async fn raw(path: &Path, request: &[u8]) -> String {
    let mut s = UnixStream::connect(path).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn programs_and_errors() {
    let s = setup(Limits::default()).await;
    let (status, list) = call(&s.path, "GET", "/v1/programs", "").await;
    assert_eq!(status, 200);
    let list: Vec<ProgramInfo> = serde_json::from_value(list).expect("programs");
    assert_eq!(list.len(), 4);
    let (status, web) = call(&s.path, "GET", "/v1/programs/web", "").await;
    assert_eq!(
        (status, web["description"].as_str()),
        (200, Some("pid 42, uptime 0:01:02"))
    );
    let (status, err) = call(&s.path, "GET", "/v1/programs/nope", "").await;
    assert_eq!((status, error_kind(&err)), (404, ErrorKind::NotFound));
    assert_eq!(err["error"]["message"], "no such program: \"nope\"");
    let (status, err) = call(&s.path, "GET", "/v1/nothing/here", "").await;
    assert_eq!((status, error_kind(&err)), (404, ErrorKind::NotFound));
    let res = send(&s.path, "DELETE", "/v1/programs", "").await;
    assert_eq!(
        (
            res.status().as_u16(),
            res.headers().get("allow").map(|v| v.as_bytes())
        ),
        (405, Some(&b"GET"[..]))
    );
    let (status, err) = call(&s.path, "GET", "/v1/programs?bogus=1", "").await;
    assert_eq!((status, error_kind(&err)), (400, ErrorKind::BadRequest));
}

#[tokio::test]
async fn exec_checks_its_body_and_names() {
    let s = setup(Limits::default()).await;
    let (status, err) = call(&s.path, "POST", "/v1/programs/web/exec", "{\"cmd\": 1}").await;
    assert_eq!((status, error_kind(&err)), (400, ErrorKind::BadRequest));
    let body = r#"{"command": ["true"], "env": ["A=1"], "timeout_secs": 2}"#;
    let (status, err) = call(&s.path, "POST", "/v1/programs/nope/exec", body).await;
    assert_eq!((status, error_kind(&err)), (404, ErrorKind::NotFound));
    let (status, err) = call(
        &s.path,
        "POST",
        "/v1/exec/9/signal",
        "{\"signal\": \"INT\"}",
    )
    .await;
    assert_eq!((status, error_kind(&err)), (404, ErrorKind::NotFound));
    let (status, err) = call(
        &s.path,
        "POST",
        "/v1/exec/9/signal",
        "{\"signal\": \"NOPE\"}",
    )
    .await;
    assert_eq!((status, error_kind(&err)), (400, ErrorKind::BadRequest));
    let (status, _) = call(&s.path, "GET", "/v1/programs/web/exec", "").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn actions_signals_reload_shutdown() {
    let s = setup(Limits::default()).await;
    let (status, res) = call(&s.path, "POST", "/v1/programs/worker%3A%2A/restart", "").await;
    assert_eq!(status, 200);
    let res: Vec<ActionResult> = serde_json::from_value(res).expect("results");
    assert_eq!(
        res.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["worker:0", "worker:1"]
    );
    let (_, res) = call(&s.path, "POST", "/v1/programs/broken/start?wait=true", "").await;
    assert_eq!(
        (res[0]["ok"].as_bool(), res[0]["message"].as_str()),
        (Some(false), Some("went FATAL: spawn error"))
    );
    let (status, err) = call(&s.path, "POST", "/v1/programs/ghost/stop", "").await;
    assert_eq!((status, error_kind(&err)), (404, ErrorKind::NotFound));
    let (status, err) = call(&s.path, "POST", "/v1/programs/web/start?wait=perhaps", "").await;
    assert_eq!((status, error_kind(&err)), (400, ErrorKind::BadRequest));

    let (status, res) = call(
        &s.path,
        "POST",
        "/v1/programs/web/signal",
        r#"{"signal":"HUP"}"#,
    )
    .await;
    assert_eq!(
        (status, res[0]["message"].as_str()),
        (200, Some("sent SIGHUP"))
    );
    let (status, err) = call(
        &s.path,
        "POST",
        "/v1/programs/web/signal",
        r#"{"signal":"NOPE"}"#,
    )
    .await;
    assert_eq!((status, error_kind(&err)), (400, ErrorKind::BadRequest));
    let (status, err) = call(&s.path, "POST", "/v1/programs/web/signal", "{").await;
    assert_eq!((status, error_kind(&err)), (400, ErrorKind::BadRequest));
    let huge = format!(r#"{{"signal":"{}"}}"#, "H".repeat(super::routes::MAX_BODY));
    let (status, err) = call(&s.path, "POST", "/v1/programs/web/signal", &huge).await;
    assert_eq!(
        (status, error_kind(&err)),
        (413, ErrorKind::PayloadTooLarge)
    );

    let (status, res) = call(&s.path, "POST", "/v1/reload", "").await;
    assert_eq!(
        (status, res["added"][0].as_str(), res["removed"][0].as_str()),
        (200, Some("new"), Some("old"))
    );
    let (status, res) = call(&s.path, "POST", "/v1/shutdown", "").await;
    assert_eq!((status, res), (202, serde_json::json!({})));
}

#[tokio::test]
async fn health_and_metrics() {
    let s = setup(Limits::default()).await;
    let (status, h) = call(&s.path, "GET", "/v1/health", "").await;
    assert_eq!((status, h["healthy"].as_bool()), (200, Some(true)));
    *s.fake.healthy.lock().expect("healthy") = false;
    let (status, h) = call(&s.path, "GET", "/v1/health", "").await;
    assert_eq!((status, h["not_running"][0].as_str()), (503, Some("web")));

    let res = send(&s.path, "GET", "/metrics", "").await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .as_bytes()
        .starts_with(b"application/openmetrics-text"));
    let text = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains(r#"nsvisor_program_state{name="broken",group="broken",state="FATAL"} 1"#),
        "{text}"
    );
    assert!(text.contains("nsvisor_orphans_reaped_total 2"), "{text}");
}

#[tokio::test]
async fn logs_tail_and_follow() {
    let s = setup(Limits::default()).await;
    let ring = s.fake.rings.lock().expect("rings")["web"].clone();
    ring.push(b"one\ntwo\nthree\n");
    let res = send(&s.path, "GET", "/v1/programs/web/logs/stdout?lines=2", "").await;
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"two\nthree\n");
    let res = send(&s.path, "GET", "/v1/programs/web/logs/stdout?bytes=3", "").await;
    assert_eq!(
        &res.into_body().collect().await.expect("body").to_bytes()[..],
        b"ee\n"
    );
    let (status, err) = call(
        &s.path,
        "GET",
        "/v1/programs/web/logs/stdout?lines=1&bytes=1",
        "",
    )
    .await;
    assert_eq!((status, error_kind(&err)), (400, ErrorKind::BadRequest));
    let (status, _) = call(&s.path, "GET", "/v1/programs/ghost/logs/stdout", "").await;
    assert_eq!(status, 404);

    // Follow: the kept tail, then new output, then the end when the ring goes.
    let res = send(
        &s.path,
        "GET",
        "/v1/programs/web/logs/stdout?lines=1&follow=true",
        "",
    )
    .await;
    let mut body = res.into_body();
    let first = body
        .frame()
        .await
        .expect("a frame")
        .expect("ok")
        .into_data()
        .expect("data");
    assert_eq!(&first[..], b"three\n");
    ring.push(b"four\n");
    let next = body
        .frame()
        .await
        .expect("a frame")
        .expect("ok")
        .into_data()
        .expect("data");
    assert_eq!(&next[..], b"four\n");
    s.fake.rings.lock().expect("rings").remove("web");
    drop(ring);
    assert!(
        body.frame().await.is_none(),
        "the stream ends with the ring"
    );
}

#[tokio::test]
async fn a_follower_that_leaves_is_let_go() {
    let s = setup(Limits::default()).await;
    let ring = s.fake.rings.lock().expect("rings")["web"].clone();
    let res = send(
        &s.path,
        "GET",
        "/v1/programs/web/logs/stdout?follow=true",
        "",
    )
    .await;
    wait_until("the follower to subscribe", Duration::from_secs(5), || {
        (ring.follower_count() == 1).then_some(())
    })
    .await;
    drop(res);
    wait_until("the follower to be dropped", Duration::from_secs(5), || {
        (ring.follower_count() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn events_are_streamed_as_ndjson() {
    let s = setup(Limits::default()).await;
    let res = send(&s.path, "GET", "/v1/events", "").await;
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let event = StateEvent {
        ready: None,
        detail: None,
        name: "web".into(),
        from: State::Running,
        to: State::Exited,
        pid: None,
        exit_status: Some(nsvisor_proto::ExitStatus::Code(3)),
        time_ms: 5,
    };
    wait_until(
        "the events client to subscribe",
        Duration::from_secs(5),
        || (s.fake.events.receiver_count() == 1).then_some(()),
    )
    .await;
    s.fake.events.send(event.clone()).expect("subscribers");
    let mut body = res.into_body();
    let line = body
        .frame()
        .await
        .expect("a frame")
        .expect("ok")
        .into_data()
        .expect("data");
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(
        serde_json::from_slice::<StateEvent>(&line).expect("a StateEvent"),
        event
    );
    // Closing the API ends the stream and removes the socket.
    let path = s.path.clone();
    s.server.close().await;
    assert!(body.frame().await.is_none());
    assert!(!path.exists());
}

mod connections;
