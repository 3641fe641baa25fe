//! A deliberately small HTTP/1.1 server side for the hub: read a request
//! (head at most 8 KiB and 32 headers, body only with Content-Length and at
//! most the given cap, everything before a deadline), write its response.
//! Bytes read past a request's body are kept for the next one of the same
//! connection (`carry`), so a persistent connection (server.rs decides how
//! long one is kept) never loses or misreads a request. No chunked bodies.
//!
//! Must not allocate without a bound, block without a deadline, or panic on
//! any input; it knows nothing of the protocol or the database.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 32;

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Bytes read from the client (head and body).
    pub bytes_in: usize,
    /// The client allows the connection to stay open after the answer:
    /// HTTP/1.1 without `Connection: close` (HTTP/1.0 always closes).
    pub persistent: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request could be read; each but `Gone` gets an HTTP answer.
#[derive(Debug, PartialEq, Eq)]
pub enum HttpError {
    /// 400 with this reason.
    Bad(&'static str),
    /// 408: the deadline passed.
    Timeout,
    /// 411: a body without Content-Length.
    LengthRequired,
    /// 413: Content-Length over the cap; carries the body bytes the client
    /// declared and has not sent yet (so the server can drain them and
    /// close without a reset that would hide the answer).
    TooLarge(usize),
    /// 431: head over [`MAX_HEAD`] or [`MAX_HEADERS`].
    HeadTooLarge,
    /// 501: Transfer-Encoding (chunked) or an unknown method.
    NotImplemented,
    /// 505: not HTTP/1.0 or HTTP/1.1.
    Version,
    /// The client closed or the connection broke: nothing to answer.
    Gone,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Bad(_) => 400,
            HttpError::Timeout => 408,
            HttpError::LengthRequired => 411,
            HttpError::TooLarge(_) => 413,
            HttpError::HeadTooLarge => 431,
            HttpError::NotImplemented => 501,
            HttpError::Version => 505,
            HttpError::Gone => 0,
        }
    }

    pub fn message(&self) -> String {
        match self {
            HttpError::Bad(why) => format!("malformed HTTP request: {why}"),
            HttpError::Timeout => "request not received in time".into(),
            HttpError::LengthRequired => "a request body needs Content-Length".into(),
            HttpError::TooLarge(_) => "request body too large".into(),
            HttpError::HeadTooLarge => "request head too large".into(),
            HttpError::NotImplemented => "Transfer-Encoding is not supported".into(),
            HttpError::Version => "HTTP version not supported".into(),
            HttpError::Gone => "connection closed".into(),
        }
    }
}

/// The parsed head: method, path, headers, Content-Length.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub content_length: usize,
    /// See [`Request::persistent`].
    pub persistent: bool,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parse a request head (the bytes before the blank line, without it).
pub fn parse_head(head: &[u8], max_body: usize) -> Result<Head, HttpError> {
    let text = std::str::from_utf8(head).map_err(|_| HttpError::Bad("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Bad("request line"));
    };
    if !is_token(method) {
        return Err(HttpError::Bad("method"));
    }
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(HttpError::Bad("request target"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(if version.starts_with("HTTP/") {
            HttpError::Version
        } else {
            HttpError::Bad("request line")
        });
    }
    let mut headers = Vec::new();
    let mut content_length: Option<usize> = None;
    for l in lines {
        if headers.len() >= MAX_HEADERS {
            return Err(HttpError::HeadTooLarge);
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(HttpError::Bad("header line without colon"));
        };
        if !is_token(name) {
            return Err(HttpError::Bad("header name"));
        }
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(HttpError::Bad("control character in header value"));
        }
        let name = name.to_ascii_lowercase();
        if name == "transfer-encoding" {
            return Err(HttpError::NotImplemented);
        }
        if name == "content-length" {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Bad("Content-Length"));
            }
            // Over 20 digits cannot fit; anything over the cap is 413.
            let n = if value.len() > 19 {
                usize::MAX
            } else {
                value.parse::<usize>().unwrap_or(usize::MAX)
            };
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::Bad("conflicting Content-Length"));
            }
            content_length = Some(n);
        }
        headers.push((name, value.to_string()));
    }
    let content_length = content_length.unwrap_or(0);
    // `Connection` is a comma-separated list of tokens (RFC 9110 7.6.1).
    let close = headers
        .iter()
        .filter(|(k, _)| k == "connection")
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("close"));
    let persistent = version == "HTTP/1.1" && !close;
    if content_length > max_body {
        return Err(HttpError::TooLarge(content_length));
    }
    if method == "POST" && !headers.iter().any(|(k, _)| k == "content-length") {
        return Err(HttpError::LengthRequired);
    }
    Ok(Head {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        content_length,
        persistent,
    })
}

fn io_to_http(e: &io::Error) -> HttpError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => HttpError::Timeout,
        _ => HttpError::Gone,
    }
}

/// Read one request from `r` (which enforces its own deadline, see
/// [`Timed`]): head up to [`MAX_HEAD`], then exactly Content-Length bytes.
/// `carry` holds bytes already read from this connection (the start of this
/// request) and, on return, any read past this request's body (the start of
/// the next one); it never holds more than one read's worth beyond a
/// request.
pub fn read_request<R: Read>(
    r: &mut R,
    max_body: usize,
    carry: &mut Vec<u8>,
) -> Result<Request, HttpError> {
    let mut buf: Vec<u8> = std::mem::take(carry);
    buf.reserve(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = find_blank_line(&buf) {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::HeadTooLarge);
        }
        let n = match r.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(HttpError::Gone),
            Ok(0) => return Err(HttpError::Bad("connection closed inside the head")),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_to_http(&e)),
        };
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let head = match parse_head(&buf[..head_end], max_body) {
        Ok(h) => h,
        Err(HttpError::TooLarge(n)) => {
            let sent = buf.len() - (head_end + 4);
            return Err(HttpError::TooLarge(n.saturating_sub(sent)));
        }
        Err(e) => return Err(e),
    };
    let mut body = buf.split_off(head_end + 4);
    if body.len() > head.content_length {
        *carry = body.split_off(head.content_length);
    }
    let mut bytes_in = head_end + 4 + body.len();
    body.reserve_exact(head.content_length - body.len());
    while body.len() < head.content_length {
        let want = (head.content_length - body.len()).min(chunk.len());
        match r.read(&mut chunk[..want]) {
            Ok(0) => return Err(HttpError::Bad("body shorter than Content-Length")),
            Ok(n) => {
                body.extend_from_slice(&chunk[..n]);
                bytes_in += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_to_http(&e)),
        }
    }
    Ok(Request {
        method: head.method,
        path: head.path,
        headers: head.headers,
        body,
        bytes_in,
        persistent: head.persistent,
    })
}

/// Read and discard up to `n` bytes (at most [`MAX_DRAIN`]) after an
/// early answer, so closing does not reset the connection before the client
/// has read that answer. Bounded by the stream's own deadline.
pub fn drain<R: Read>(r: &mut R, n: usize) {
    let mut left = n.min(MAX_DRAIN);
    let mut chunk = [0u8; 4096];
    while left > 0 {
        let want = left.min(chunk.len());
        match r.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => return,
            Ok(k) => left -= k,
        }
    }
}

/// Most bytes [`drain`] reads.
pub const MAX_DRAIN: usize = 1 << 20;

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The `Date` header value now (IMF-fixdate, RFC 9110 5.6.7): every answer
/// carries one, so an agent can compare its clock (`check --network`).
pub fn date_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    outpost::timefmt::http_date(now)
}

/// What an answer says about its connection: closed after it, or kept
/// for at most `idle_s` seconds and `max` more requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    Close,
    Keep { idle_s: u64, max: u32 },
}

impl Persist {
    /// The `Connection` header line (and `Keep-Alive` when kept), each
    /// ending in CRLF.
    pub fn header_lines(&self) -> String {
        match self {
            Persist::Close => "Connection: close\r\n".to_string(),
            Persist::Keep { idle_s, max } => {
                format!("Connection: keep-alive\r\nKeep-Alive: timeout={idle_s}, max={max}\r\n")
            }
        }
    }
}

/// A complete response with a JSON body.
pub fn response(status: u16, extra: &[(&str, String)], body: &str, persist: Persist) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}Cache-Control: no-store\r\n",
        reason(status),
        date_now(),
        body.len(),
        persist.header_lines(),
    );
    for (k, v) in extra {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

/// A TCP stream whose every read and write must finish before one overall
/// deadline (so a slow client cannot hold a worker longer than that).
pub struct Timed {
    pub tcp: TcpStream,
    pub deadline: Instant,
}

impl Timed {
    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        Ok(left)
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.tcp.set_read_timeout(Some(left))?;
        self.tcp.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.remaining()?;
        self.tcp.set_write_timeout(Some(left))?;
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Request, HttpError> {
        let mut r: &[u8] = raw;
        read_request(&mut r, 100, &mut Vec::new())
    }

    #[test]
    fn good_requests() {
        let raw = b"POST /outpost/v1/checkin HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nAuthorization: Bearer abc\r\n\r\n{}";
        let r = parse(raw).expect("post");
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/outpost/v1/checkin");
        assert_eq!(r.body, b"{}");
        assert_eq!(r.header("authorization"), Some("Bearer abc"));
        assert_eq!(r.bytes_in, raw.len(), "bytes in: the whole request");
        let r = parse(b"GET /outpost/v1/probe HTTP/1.0\r\n\r\n").expect("get");
        assert_eq!((r.method.as_str(), r.body.len()), ("GET", 0));
    }

    #[test]
    fn malformed_requests_get_the_right_status() {
        let many_headers = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(40));
        let long_head = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_HEAD + 10));
        let cases: Vec<(&str, Vec<u8>, HttpError)> = vec![
            ("empty", b"".to_vec(), HttpError::Gone),
            (
                "cut head",
                b"GET / HTTP/1.1\r\nHost".to_vec(),
                HttpError::Bad("connection closed inside the head"),
            ),
            (
                "garbage",
                b"\x00\x01\x02\r\n\r\n".to_vec(),
                HttpError::Bad("request line"),
            ),
            (
                "binary",
                b"\xff\xfe\r\n\r\n".to_vec(),
                HttpError::Bad("head is not UTF-8"),
            ),
            (
                "two spaces",
                b"GET  / HTTP/1.1\r\n\r\n".to_vec(),
                HttpError::Bad("request line"),
            ),
            (
                "no version",
                b"GET /\r\n\r\n".to_vec(),
                HttpError::Bad("request line"),
            ),
            (
                "http2",
                b"GET / HTTP/2.0\r\n\r\n".to_vec(),
                HttpError::Version,
            ),
            (
                "absolute target",
                b"GET http://x/ HTTP/1.1\r\n\r\n".to_vec(),
                HttpError::Bad("request target"),
            ),
            (
                "bad method",
                b"G(T / HTTP/1.1\r\n\r\n".to_vec(),
                HttpError::Bad("method"),
            ),
            (
                "no colon",
                b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
                HttpError::Bad("header line without colon"),
            ),
            (
                "space in name",
                b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n".to_vec(),
                HttpError::Bad("header name"),
            ),
            (
                "ctl in value",
                b"GET / HTTP/1.1\r\nA: x\x01\r\n\r\n".to_vec(),
                HttpError::Bad("control character in header value"),
            ),
            (
                "bare LF",
                b"GET / HTTP/1.1\nA: b\n\n".to_vec(),
                HttpError::Bad("connection closed inside the head"),
            ),
            (
                "chunked",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
                HttpError::NotImplemented,
            ),
            (
                "post without length",
                b"POST / HTTP/1.1\r\n\r\n".to_vec(),
                HttpError::LengthRequired,
            ),
            (
                "negative length",
                b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n".to_vec(),
                HttpError::Bad("Content-Length"),
            ),
            (
                "hex length",
                b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n".to_vec(),
                HttpError::Bad("Content-Length"),
            ),
            (
                "huge length",
                b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n".to_vec(),
                HttpError::TooLarge(usize::MAX),
            ),
            (
                "over cap",
                b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\nabc".to_vec(),
                HttpError::TooLarge(98),
            ),
            (
                "conflicting lengths",
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
                HttpError::Bad("conflicting Content-Length"),
            ),
            (
                "short body",
                b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab".to_vec(),
                HttpError::Bad("body shorter than Content-Length"),
            ),
            (
                "too many headers",
                many_headers.into_bytes(),
                HttpError::HeadTooLarge,
            ),
            ("long head", long_head.into_bytes(), HttpError::HeadTooLarge),
            (
                "endless head",
                vec![b'a'; MAX_HEAD * 3],
                HttpError::HeadTooLarge,
            ),
        ];
        for (name, raw, want) in cases {
            assert_eq!(parse(&raw).err(), Some(want), "case {name}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // Deterministic xorshift so a failure is reproducible.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let seeds: [&[u8]; 3] = [
            b"POST /outpost/v1/checkin HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789",
            b"GET /outpost/v1/probe HTTP/1.1\r\nHost: a\r\n\r\n",
            b"",
        ];
        for i in 0..20_000 {
            let mut v = seeds[i % 3].to_vec();
            for _ in 0..(i % 7) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = (x >> 24) as u8;
                let len = v.len().max(1);
                match x % 3 {
                    0 if !v.is_empty() => v[(x as usize / 3) % len] = b,
                    1 => v.insert((x as usize / 3) % len.min(v.len() + 1), b),
                    _ => v.truncate((x as usize / 3) % len),
                }
            }
            let _ = parse(&v);
        }
    }

    #[test]
    fn pipelined_requests_are_read_one_after_the_other() {
        // Two requests and the start of a third in one stream: each read
        // leaves the rest in `carry` for the next.
        let raw = b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nConnection: close\r\n\r\nGET /c HT";
        let mut r: &[u8] = raw;
        let mut carry = Vec::new();
        let a = read_request(&mut r, 100, &mut carry).expect("first");
        assert_eq!(
            (a.path.as_str(), a.body.as_slice(), a.persistent),
            ("/a", &b"abc"[..], true)
        );
        let b = read_request(&mut r, 100, &mut carry).expect("second");
        assert_eq!(
            (b.path.as_str(), b.persistent),
            ("/b", false),
            "Connection: close"
        );
        assert_eq!(
            read_request(&mut r, 100, &mut carry).err(),
            Some(HttpError::Bad("connection closed inside the head")),
            "the cut third request"
        );
    }

    #[test]
    fn persistence_follows_version_and_connection_header() {
        let cases: [(&[u8], bool); 6] = [
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false),
        ];
        for (raw, want) in cases {
            let r = parse(raw).expect("request");
            assert_eq!(r.persistent, want, "{}", String::from_utf8_lossy(raw));
        }
        let keep = String::from_utf8(response(
            200,
            &[],
            "{}",
            Persist::Keep { idle_s: 5, max: 99 },
        ))
        .expect("utf8");
        assert!(
            keep.contains("\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=99\r\n"),
            "{keep}"
        );
        let close = String::from_utf8(response(200, &[], "{}", Persist::Close)).expect("utf8");
        assert!(
            close.contains("\r\nConnection: close\r\n") && !close.contains("Keep-Alive"),
            "{close}"
        );
    }

    #[test]
    fn drain_reads_no_more_than_asked() {
        let data = vec![7u8; 10];
        for (n, left) in [(4usize, 6usize), (10, 0), (100, 0), (0, 10)] {
            let mut r: &[u8] = &data;
            drain(&mut r, n);
            assert_eq!(r.len(), left, "drain {n} of 10");
        }
    }

    #[test]
    fn response_is_well_formed() {
        let r = response(429, &[("Retry-After", "7".into())], "{}", Persist::Close);
        let s = String::from_utf8(r).expect("utf8");
        assert!(s.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{s}");
        assert!(s.contains("\r\nContent-Length: 2\r\n"), "{s}");
        assert!(s.contains("\r\nRetry-After: 7\r\n"), "{s}");
        assert!(s.ends_with("\r\n\r\n{}"), "{s}");
    }

    #[test]
    fn every_response_carries_a_date_header() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        for status in [200, 404, 503] {
            let r = String::from_utf8(response(status, &[], "{}", Persist::Close)).expect("utf8");
            let date = r
                .lines()
                .find_map(|l| l.strip_prefix("Date: "))
                .unwrap_or_else(|| panic!("no Date header: {r}"));
            let t = outpost::timefmt::parse_http_date(date).expect("IMF-fixdate");
            assert!(t.abs_diff(now) <= 5, "{date} vs {now}");
        }
    }
}
