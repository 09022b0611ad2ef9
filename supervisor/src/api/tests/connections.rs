//! The API's connections under bad and many clients: malformed requests,
//! idle clients, a hundred at once, and who makes room when every slot is
//! taken. Same fake supervisor as the parent module.

use super::*;

#[tokio::test]
async fn bad_clients_get_answers_and_never_block_others() {
    let limits = Limits {
        header_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = setup(limits).await;
    // A client that connects and sends nothing.
    let mut idle = UnixStream::connect(&s.path).await.expect("connect");
    let (status, _) = call(&s.path, "GET", "/v1/programs", "").await;
    assert_eq!(status, 200, "an idle client does not block others");
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(_))),
        "the idle client is dropped after the header timeout"
    );

    let answer = raw(&s.path, b"NONSENSE\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw(
        &s.path,
        b"GET /v1/programs HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let long = format!(
        "GET /v1/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = raw(&s.path, long.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    let big = format!(
        "POST /v1/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024
    );
    let answer = raw(&s.path, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let (status, _) = call(&s.path, "GET", "/v1/health", "").await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test]
async fn a_hundred_concurrent_clients() {
    let s = setup(Limits::default()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let path = s.path.clone();
        tasks.spawn(async move {
            let uri = if i % 2 == 0 {
                "/v1/programs"
            } else {
                "/v1/programs/web"
            };
            call(&path, "GET", uri, "").await.0
        });
    }
    let mut ok = 0;
    while let Some(status) = tasks.join_next().await {
        ok += usize::from(status.expect("task") == 200);
    }
    assert_eq!(ok, 100);
}

#[tokio::test]
async fn idle_connections_make_room_and_streams_keep_theirs() {
    let limits = Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let s = setup(limits).await;
    let stream = send(&s.path, "GET", "/v1/events", "").await;
    let mut idle = UnixStream::connect(&s.path).await.expect("connect");
    // Both slots are taken: the new client gets the idle one's, at once.
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(5),
        call(&s.path, "GET", "/v1/programs", ""),
    )
    .await
    .expect("served without waiting for the header timeout");
    assert_eq!(status, 200);
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0))), "the idle client was closed");
    let event = StateEvent {
        ready: None,
        detail: None,
        name: "web".into(),
        from: State::Running,
        to: State::Exited,
        pid: None,
        exit_status: None,
        time_ms: 1,
    };
    s.fake.events.send(event).expect("subscribers");
    let frame = tokio::time::timeout(Duration::from_secs(5), stream.into_body().frame()).await;
    assert!(
        matches!(frame, Ok(Some(Ok(_)))),
        "the stream kept its connection"
    );
}
