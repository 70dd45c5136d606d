//! staticd's own HTTP/2 server (src/serve/h2), driven by a real HTTP/2 client (the `h2`
//! crate, the one hyper and reqwest use) over h2c: the limits and timeouts HTTP/1 has, a
//! reset stream, many streams at once, HEAD and 304 heads.

use crate::common::fixture::StaticRoot;
use crate::common::staticd::{Staticd, WAIT};
use crate::common::upstream::{bytes, Answer, Gate, Upstream};
use bytes::Bytes;
use h2::client::SendRequest;
use std::future::Future;
use std::net::SocketAddr;

/// Runs `f` on a current-thread runtime, bounded by the suite's wait.
fn run<F: Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(WAIT, f)
            .await
            .expect("the HTTP/2 exchange did not finish in time");
    });
}

/// An h2c connection (prior knowledge) to `addr`; the connection is driven on a task, whose
/// handle ends when the server closes it.
async fn connect(addr: SocketAddr) -> (SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (send, driver)
}

fn request(method: &str, addr: SocketAddr, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
}

/// A request without a body, and its response head.
async fn exchange(
    send: &mut SendRequest<Bytes>,
    req: http::request::Builder,
) -> http::Response<h2::RecvStream> {
    let (res, _) = send.send_request(req.body(()).unwrap(), true).unwrap();
    res.await.unwrap()
}

/// Reads a whole response body, giving the window back as it goes.
async fn body_of(mut body: h2::RecvStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        out.extend_from_slice(&chunk);
    }
    out
}

fn upstream() -> Upstream {
    Upstream::start(vec![
        (
            "POST /upload",
            bytes("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"),
        ),
        (
            "/page",
            bytes("HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: keep-alive\r\n\r\npage"),
        ),
    ])
}

#[test]
fn request_bodies_are_bounded_in_size_and_in_pauses() {
    let up = upstream();
    let upstream = up.addr.to_string();
    let s = Staticd::proxy(&[
        "--upstream",
        &upstream,
        "--max-body",
        "1000",
        "--body-timeout",
        "1s",
    ]);
    let addr = s.addr;
    run(async move {
        let (send, _driver) = connect(addr).await;
        let mut send = send.ready().await.unwrap();
        // Within the limit: forwarded whole.
        let req = request("POST", addr, "/upload").body(()).unwrap();
        let (res, mut tx) = send.send_request(req, false).unwrap();
        tx.send_data(Bytes::from(vec![b'x'; 600]), true).unwrap();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(body_of(res.into_body()).await, b"ok");
        // Declared over the limit: 413 before any byte of it.
        let req = request("POST", addr, "/upload")
            .header("content-length", "5000")
            .body(())
            .unwrap();
        let (res, _tx) = send.send_request(req, false).unwrap();
        assert_eq!(res.await.unwrap().status(), 413);
        // Undeclared, and over the limit as it arrives: 413.
        let req = request("POST", addr, "/upload").body(()).unwrap();
        let (res, mut tx) = send.send_request(req, false).unwrap();
        tx.send_data(Bytes::from(vec![b'x'; 800]), false).unwrap();
        tx.send_data(Bytes::from(vec![b'x'; 800]), true).unwrap();
        assert_eq!(res.await.unwrap().status(), 413);
        // A body that stops coming: 408 after --body-timeout, the stream still open.
        let req = request("POST", addr, "/upload").body(()).unwrap();
        let (res, mut tx) = send.send_request(req, false).unwrap();
        tx.send_data(Bytes::from_static(b"partial"), false).unwrap();
        assert_eq!(res.await.unwrap().status(), 408);
    });
    // Only the body within the limit reached the upstream.
    let posts: usize = up
        .seen()
        .iter()
        .map(|c| c.requests.iter().filter(|r| *r == "POST /upload").count())
        .sum();
    assert_eq!(posts, 1, "{:?}", up.seen());
}

/// A body over 64 KiB goes through a temporary file (as over HTTP/1, `h1_edge`) and
/// reaches the upstream whole, with its length.
#[test]
fn a_large_body_reaches_the_upstream_whole() {
    let up = crate::common::echo::Upstream::start();
    let s = Staticd::proxy(&["--upstream", &up.addr]);
    let addr = s.addr;
    let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let sent = Bytes::from(body.clone());
    run(async move {
        let (send, _driver) = connect(addr).await;
        let mut send = send.ready().await.unwrap();
        let req = request("POST", addr, "/large").body(()).unwrap();
        let (res, mut tx) = send.send_request(req, false).unwrap();
        tx.send_data(sent, true).unwrap();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(body_of(res.into_body()).await, b"POST /large 200000");
    });
    let seen = up.wait_for("/large");
    assert!(seen[0].body == body, "the body changed on the way");
    assert_eq!(seen[0].header("content-length"), Some("200000"));
}

/// A reader that opens no window does not hold the upstream (as over HTTP/1, `h1_edge`):
/// a 32 MiB answer is taken from the upstream whole while the client reads nothing, then
/// reaches it whole and in order.
#[test]
fn a_slow_reader_does_not_hold_the_upstream() {
    use std::sync::atomic::Ordering;
    const LEN: usize = 32 << 20;
    let (upstream, done) = crate::common::upstream::large_answer(LEN);
    let s = Staticd::proxy(&["--upstream", &upstream]);
    let addr = s.addr;
    run(async move {
        let (send, _driver) = connect(addr).await;
        let mut send = send.ready().await.unwrap();
        let res = exchange(&mut send, request("GET", addr, "/big")).await;
        assert_eq!(res.status(), 200);
        // Nothing read (no window given back) until the upstream is done.
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done.load(Ordering::SeqCst) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the upstream is held"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let body = body_of(res.into_body()).await;
        assert!(
            body == crate::common::upstream::pattern(LEN),
            "bytes lost or out of order"
        );
    });
}

/// An upstream that closes before its declared length is in: the bytes that came are
/// relayed, then the stream is reset, so the client cannot take a cut body for a whole one
/// (over HTTP/1 the connection closes: `upstream_strict`).
#[test]
fn an_answer_cut_short_by_the_upstream_resets_the_stream() {
    const SENT: usize = 100_000; // more than is awaited whole: the answer is streamed
    let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n".to_vec();
    answer.extend(crate::common::upstream::pattern(SENT));
    let upstream = crate::common::upstream::answer_and_close(answer.leak());
    let s = Staticd::proxy(&["--upstream", &upstream]);
    let addr = s.addr;
    run(async move {
        let (send, _driver) = connect(addr).await;
        let mut send = send.ready().await.unwrap();
        let res = exchange(&mut send, request("GET", addr, "/cut")).await;
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        let mut got = 0;
        let end = loop {
            match body.data().await {
                Some(Ok(chunk)) => {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    got += chunk.len();
                }
                Some(Err(e)) => break Some(e),
                None => break None,
            }
        };
        let e = end.expect("the cut body ended as if whole");
        assert_eq!(e.reason(), Some(h2::Reason::INTERNAL_ERROR), "{e}");
        assert!(got <= SENT, "{got} bytes relayed, {SENT} sent");
    });
}

#[test]
fn a_stream_reset_while_the_upstream_works_is_logged_499() {
    let gate = Gate::default();
    let up = Upstream::start(vec![(
        "/slow",
        Answer::Gated(
            Vec::new(),
            gate.clone(),
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow".to_vec(),
        ),
    )]);
    let upstream = up.addr.to_string();
    let s = Staticd::proxy(&["--upstream", &upstream]);
    let addr = s.addr;
    run(async move {
        let (send, _driver) = connect(addr).await;
        let mut send = send.ready().await.unwrap();
        let req = request("GET", addr, "/slow").body(()).unwrap();
        let (res, _) = send.send_request(req, true).unwrap();
        // Held by the gate: the head never comes. Dropping the response future resets the
        // stream (RST_STREAM CANCEL), as a browser does when the user navigates away.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(300), res).await;
        assert!(waited.is_err(), "the gated upstream answered");
        // A second stream on the same connection still works.
        assert_eq!(
            exchange(&mut send, request("GET", addr, "/static/app.css"))
                .await
                .status(),
            200
        );
    });
    s.wait_status("/slow", 499);
    gate.open();
}

#[test]
fn many_streams_at_once_are_all_answered() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"hello");
    let s = Staticd::serve(&fx.root, &[]);
    let addr = s.addr;
    run(async move {
        let (send, _driver) = connect(addr).await;
        let mut send = send.ready().await.unwrap();
        // One exchange first, so the server's SETTINGS (128 streams at most) have arrived:
        // a stream over the limit before that is refused (REFUSED_STREAM, RFC 9113 §5.1.2).
        assert_eq!(
            exchange(&mut send, request("GET", addr, "/static/a.txt"))
                .await
                .status(),
            200
        );
        // More streams than the server allows at once: the client queues the rest.
        let mut all = Vec::new();
        for _ in 0..300 {
            let mut send = send.clone();
            all.push(tokio::spawn(async move {
                send = send.ready().await.unwrap();
                let res = exchange(&mut send, request("GET", addr, "/static/a.txt")).await;
                assert_eq!(res.status(), 200);
                body_of(res.into_body()).await
            }));
        }
        for t in all {
            assert_eq!(t.await.unwrap(), b"hello");
        }
    });
}

#[test]
fn heads_declare_lengths_and_not_modified_has_none() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"hello world");
    let s = Staticd::serve(&fx.root, &[]);
    let addr = s.addr;
    run(async move {
        let (send, _driver) = connect(addr).await;
        let mut send = send.ready().await.unwrap();
        let res = exchange(&mut send, request("GET", addr, "/static/a.txt")).await;
        let etag = res.headers()["etag"].clone();
        assert_eq!(res.headers()["content-length"], "11");
        assert_eq!(res.headers().get_all("date").iter().count(), 1);
        assert_eq!(body_of(res.into_body()).await, b"hello world");
        let res = exchange(&mut send, request("HEAD", addr, "/static/a.txt")).await;
        assert_eq!(res.headers()["content-length"], "11");
        assert!(res.body().is_end_stream());
        let res = exchange(
            &mut send,
            request("GET", addr, "/static/a.txt").header("if-none-match", etag),
        )
        .await;
        assert_eq!(res.status(), 304);
        assert!(res.headers().get("content-length").is_none());
        assert!(res.body().is_end_stream());
        // No route for TRACE, over HTTP/2 as over HTTP/1.
        let res = exchange(&mut send, request("TRACE", addr, "/static/a.txt")).await;
        assert_eq!(res.status(), 405);
        assert!(res.headers().contains_key("allow"));
    });
}

#[test]
fn an_idle_connection_is_closed_after_keep_alive() {
    let fx = StaticRoot::new();
    fx.write("a.txt", b"hello");
    let s = Staticd::serve(&fx.root, &["--keep-alive", "1s"]);
    let addr = s.addr;
    run(async move {
        let (send, driver) = connect(addr).await;
        let mut send = send.ready().await.unwrap();
        assert_eq!(
            exchange(&mut send, request("GET", addr, "/static/a.txt"))
                .await
                .status(),
            200
        );
        // GOAWAY, then the close: the client's connection future ends (bounded by `run`).
        driver.await.unwrap();
    });
}
