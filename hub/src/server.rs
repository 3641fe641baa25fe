//! `outpost-hub serve`: accept connections on one thread, hand them to a
//! fixed pool of worker threads through a bounded queue; each worker does
//! the TLS handshake (rustls, ring), reads a request under a deadline and
//! answers it from the registry. A connection is kept for further requests
//! (HTTP/1.1 keep-alive) at most `keep_alive_max` requests and
//! `keep_alive_idle` between them, and never while other connections wait
//! for a worker: an idle kept connection is closed as soon as one is queued
//! and no worker is free. Every request is appended to the request log as
//! one JSON line.
//!
//! Must not spawn a thread per connection, read without a deadline, let
//! idle connections starve the pool, or put a secret (token, credential,
//! install secret) in a log line or an error.

use crate::db::{CheckinRefusal, Db, RegisterRefusal, Shed};
use crate::http::{self, HttpError, Request, Timed};
use crate::secret;
use miniserde::Serialize;
use outpost::error::{Code, Error, Result};
use outpost::proto::{self, CheckinRequest, ErrorBody, Probe, RegisterRequest, RegisterResponse};
use outpost::timefmt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct Options {
    pub listen: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub db: PathBuf,
    pub workers: usize,
    pub request_log: Option<PathBuf>,
    /// Rotate the request log to `<FILE>.1` before it grows past this many
    /// bytes (0: unbounded).
    pub request_log_max: u64,
    /// Register and check-in requests per second this hub takes; beyond
    /// it, 429 with Retry-After (0: no limit).
    pub max_rate: u32,
    /// Whole-request deadline (handshake, head and body).
    pub deadline: Duration,
    /// How long a connection is kept open for the next request after an
    /// answer (zero: one request per connection).
    pub keep_alive_idle: Duration,
    /// Most requests on one connection.
    pub keep_alive_max: u32,
}

/// Default `--keep-alive`: seconds an idle connection is kept.
pub const DEFAULT_KEEP_ALIVE_IDLE: Duration = Duration::from_secs(5);
/// Default `--keep-alive-max`: requests on one connection.
pub const DEFAULT_KEEP_ALIVE_MAX: u32 = 100;
/// How often a worker holding an idle connection looks at the queue.
const IDLE_SLICE: Duration = Duration::from_millis(20);

struct Shared {
    /// The registry: one SQLite connection, or on PostgreSQL one connection
    /// per worker (so workers do not wait for each other's queries).
    dbs: Vec<Mutex<Db>>,
    next_db: std::sync::atomic::AtomicUsize,
    log: Option<Mutex<RequestLog>>,
    rate: Option<Mutex<Bucket>>,
    tls: Option<Arc<rustls::ServerConfig>>,
    deadline: Duration,
    keep_idle: Duration,
    keep_max: u32,
    /// Connections accepted and not yet taken by a worker.
    queued: AtomicUsize,
    /// Workers waiting for a connection.
    free: AtomicUsize,
    /// Workers letting an idle kept connection go for a waiting one, not
    /// yet free again (see [`Shared::claim_release`]).
    releasing: AtomicUsize,
    /// Connections accepted so far; numbers them for the request log.
    accepted: AtomicUsize,
}

impl Shared {
    /// A free database connection (the next one in turn when all are busy).
    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        let n = self.dbs.len();
        let start = self
            .next_db
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % n;
        for i in 0..n {
            if let Ok(g) = self.dbs[(start + i) % n].try_lock() {
                return g;
            }
        }
        self.dbs[start].lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The request log file, rotated by size.
struct RequestLog {
    f: File,
    path: PathBuf,
    max: u64,
}

fn open_log(p: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(p)
        .map_err(|e| Error::io("opening request log", p, &e))
}

impl RequestLog {
    /// Append one line; first, when it would pass `max`, rename the file
    /// to `<FILE>.1` (replacing the previous one) and start a new one. The
    /// size is the file's own (so an outside `logrotate copytruncate` is
    /// seen too).
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.max > 0 {
            let len = self.f.metadata()?.len();
            if len > 0 && len + line.len() as u64 > self.max {
                let mut old = self.path.as_os_str().to_owned();
                old.push(".1");
                std::fs::rename(&self.path, &old)?;
                self.f = open_log(&self.path).map_err(|e| std::io::Error::other(e.to_string()))?;
            }
        }
        self.f.write_all(line)
    }
}

/// A token bucket: `rate` requests per second, bursts up to one second's.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Bucket {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            at: Instant::now(),
        }
    }

    /// Take one token; false when there is none.
    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// 429 beyond `--max-rate`: Retry-After a random 1 to 5 seconds, so the
/// clients turned away come back spread out rather than together.
fn rate_limited() -> Answer {
    let mut b = [0u8; 1];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    let s = 1 + u64::from(b[0]) % 5;
    let mut a = Answer::err(
        429,
        "rate_limited",
        format!("hub is over its request rate; retry after {s} s"),
    );
    a.headers.push(("Retry-After", s.to_string()));
    a
}

/// Load a PEM certificate chain and private key into a rustls config.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| pem_err("certificate", cert, &e))?;
    if certs.is_empty() {
        return Err(Error::new(
            Code::Config,
            format!(
                "reading TLS certificate {}: no PEM certificate found",
                cert.display()
            ),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err("key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| {
            Error::new(
                Code::Config,
                format!("TLS certificate {} and key do not fit: {e}", cert.display()),
            )
        })?;
    // Session resumption for any fleet size: stateless tickets (sealed with
    // a key of this process that rustls rotates every 6 hours) instead of
    // the default server-side cache of 256 sessions, which a fleet larger
    // than ~128 devices (two tickets each) would keep evicting. A resumed
    // TLS 1.3 handshake still does a fresh ECDHE exchange (rustls offers
    // and accepts only psk_dhe_ke), so a stolen ticket key does not
    // uncover recorded traffic; it skips the certificate and its
    // signature, which is most of a check-in's cost on both sides.
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| Error::new(Code::Config, format!("TLS session tickets: {e}")))?;
    Ok(Arc::new(cfg))
}

fn pem_err(what: &str, path: &Path, e: &rustls::pki_types::pem::Error) -> Error {
    use rustls::pki_types::pem::Error as P;
    let why = match e {
        P::Io(io) => outpost::error::io_text(io),
        P::NoItemsFound => format!("no PEM {what} found"),
        other => format!("not valid PEM ({other:?})"),
    };
    Error::new(
        Code::Config,
        format!("reading TLS {what} {}: {why}", path.display()),
    )
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Bind, print `listening on ADDR` to stdout, and serve until killed.
pub fn serve(opts: Options) -> Result<()> {
    let addr: SocketAddr = opts.listen.parse().map_err(|_| {
        Error::usage(format!(
            "--listen {}: expected IP:PORT (e.g. 0.0.0.0:8443)",
            opts.listen
        ))
    })?;
    let tls = match &opts.tls {
        Some((c, k)) => Some(tls_config(c, k)?),
        None if addr.ip().is_loopback() => None,
        None => {
            return Err(Error::usage(format!(
                "--insecure-http is allowed only on a loopback address, not {}",
                addr.ip()
            )))
        }
    };
    let db = Db::open(&opts.db)?;
    let db_name = db.name().to_string();
    let mut dbs = vec![Mutex::new(db)];
    if dbs[0].lock().map(|d| d.is_pg()).unwrap_or(false) {
        for _ in 1..opts.workers.clamp(1, 64) {
            dbs.push(Mutex::new(Db::open(&opts.db)?));
        }
    }
    let log = match &opts.request_log {
        Some(p) => Some(Mutex::new(RequestLog {
            f: open_log(p)?,
            path: p.clone(),
            max: opts.request_log_max,
        })),
        None => None,
    };
    let listener = TcpListener::bind(addr).map_err(|e| {
        Error::new(
            Code::Network,
            format!("binding {addr}: {}", outpost::error::io_text(&e)),
        )
    })?;
    let local = listener.local_addr().map_err(|e| {
        Error::new(
            Code::Network,
            format!("binding {addr}: {}", outpost::error::io_text(&e)),
        )
    })?;
    let shared = Arc::new(Shared {
        dbs,
        next_db: std::sync::atomic::AtomicUsize::new(0),
        log,
        rate: (opts.max_rate > 0).then(|| Mutex::new(Bucket::new(opts.max_rate))),
        tls,
        deadline: opts.deadline,
        keep_idle: opts.keep_alive_idle,
        keep_max: opts.keep_alive_max.max(1),
        queued: AtomicUsize::new(0),
        free: AtomicUsize::new(0),
        releasing: AtomicUsize::new(0),
        accepted: AtomicUsize::new(0),
    });
    let workers = opts.workers.clamp(1, 64);
    let (tx, rx) = sync_channel::<(u64, TcpStream)>(workers * 16);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..workers {
        let rx = Arc::clone(&rx);
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("hub-worker-{i}"))
            .spawn(move || worker(&rx, &shared))
            .map_err(|e| Error::new(Code::LocalIo, format!("starting worker thread: {e}")))?;
    }
    let scheme = if shared.tls.is_some() {
        "https"
    } else {
        "http"
    };
    outln!("listening on {scheme}://{local}");
    let _ = std::io::stdout().flush();
    eprintln!("outpost-hub: serving {scheme}://{local}, database {db_name}, {workers} workers");
    for conn in listener.incoming() {
        match conn {
            // Blocks when every worker is busy and the queue is full: new
            // connections then wait in the kernel's backlog.
            Ok(s) => {
                let id = shared.accepted.fetch_add(1, Ordering::Relaxed) as u64 + 1;
                shared.queued.fetch_add(1, Ordering::SeqCst);
                if tx.send((id, s)).is_err() {
                    break;
                }
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    Ok(())
}

thread_local! {
    /// This worker let its kept connection go under a claim
    /// ([`Shared::claim_release`]), to be given back once it is free.
    static CLAIMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn worker(rx: &Mutex<Receiver<(u64, TcpStream)>>, shared: &Shared) {
    loop {
        shared.free.fetch_add(1, Ordering::SeqCst);
        // Free now: the claim it made is no longer needed (after counting
        // as free, so the two never both miss it).
        if CLAIMED.with(|c| c.replace(false)) {
            shared.releasing.fetch_sub(1, Ordering::SeqCst);
        }
        let next = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            guard.recv()
        };
        // Taken off the queue before this worker stops counting as free,
        // so `claim_release` never sees a connection that is already handled.
        if next.is_ok() {
            shared.queued.fetch_sub(1, Ordering::SeqCst);
        }
        shared.free.fetch_sub(1, Ordering::SeqCst);
        match next {
            Ok((id, tcp)) => handle(tcp, id, shared),
            Err(_) => return,
        }
    }
}

impl Shared {
    /// Connections wait for a worker and none is free: a worker holding a
    /// kept connection must let it go. True for as many workers as there are
    /// such connections, no more: each true is a claim (counted in
    /// `releasing` until the worker is free again), so two idle workers that
    /// see one newcomer at the same moment do not both let theirs go.
    fn claim_release(&self) -> bool {
        loop {
            let releasing = self.releasing.load(Ordering::SeqCst);
            let waiting = self.queued.load(Ordering::SeqCst);
            let free = self.free.load(Ordering::SeqCst);
            if waiting <= free + releasing {
                return false;
            }
            if self
                .releasing
                .compare_exchange(releasing, releasing + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                CLAIMED.with(|c| c.set(true));
                return true;
            }
        }
    }
}

/// One line of the request log.
#[derive(Serialize)]
struct LogLine<'a> {
    t_ms: u64,
    peer: &'a str,
    /// The connection's number (from 1, in accept order): requests with
    /// the same number came over one kept connection.
    conn: u64,
    method: &'a str,
    path: &'a str,
    status: u16,
    bytes_in: usize,
    bytes_out: usize,
    ms: f64,
    error: &'a str,
}

struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Error code for the log ("" on success).
    error: String,
    /// Send this file as the body instead (release artifacts), streamed.
    file: Option<(std::path::PathBuf, u64)>,
}

impl Answer {
    fn ok<T: Serialize>(msg: &T) -> Answer {
        Answer {
            status: 200,
            headers: vec![],
            body: proto::encode(msg),
            error: String::new(),
            file: None,
        }
    }

    fn err(status: u16, code: &str, message: impl Into<String>) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: proto::encode(&ErrorBody {
                v: proto::PROTOCOL_VERSION,
                error: code.to_string(),
                message: message.into(),
            }),
            error: code.to_string(),
            file: None,
        }
    }
}

/// After an early 413, read (and drop) the rest of a body of at most
/// [`http::MAX_DRAIN`] bytes for at most a second, so closing does not reset
/// the connection before the client read the answer. True when worth it.
fn linger(deadline: &mut Instant, unread: usize) -> bool {
    if unread == 0 || unread > http::MAX_DRAIN {
        return false;
    }
    *deadline = (*deadline).min(Instant::now() + Duration::from_secs(1));
    true
}

/// A connection as a worker serves it: plain or TLS over a [`Timed`] socket.
trait Conn: std::io::Read + Write {
    fn timed(&mut self) -> &mut Timed;
    /// Request bytes already received and decrypted but not yet read (a
    /// pipelined request inside TLS): the next request needs no wait.
    fn pending(&mut self) -> bool;
}

impl Conn for Timed {
    fn timed(&mut self) -> &mut Timed {
        self
    }

    fn pending(&mut self) -> bool {
        false
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, Timed> {
    fn timed(&mut self) -> &mut Timed {
        &mut self.sock
    }

    fn pending(&mut self) -> bool {
        self.conn
            .process_new_packets()
            .map(|io| io.plaintext_bytes_to_read() > 0)
            .unwrap_or(false)
    }
}

fn handle(tcp: TcpStream, id: u64, shared: &Shared) {
    let t0 = Instant::now();
    let peer = tcp
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let _ = tcp.set_nodelay(true);
    let timed = Timed {
        tcp,
        deadline: t0 + shared.deadline,
    };
    match &shared.tls {
        Some(cfg) => {
            let Ok(conn) = rustls::ServerConnection::new(Arc::clone(cfg)) else {
                return;
            };
            let mut s = rustls::StreamOwned::new(conn, timed);
            let unread = requests(&mut s, shared, &peer, id, t0);
            if linger(&mut s.sock.deadline, unread) {
                http::drain(&mut s, unread);
            }
            // The close_notify gets a short deadline of its own: the last
            // one may have passed while the connection sat idle.
            s.sock.deadline = Instant::now() + Duration::from_secs(1);
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
        None => {
            let mut s = timed;
            let unread = requests(&mut s, shared, &peer, id, t0);
            if linger(&mut s.deadline, unread) {
                http::drain(&mut s, unread);
            }
        }
    }
}

/// Serve the requests of one connection: the first, then, while the
/// client and the bounds allow, the next ones, each with a fresh deadline
/// that starts when its first byte is there. Returns the body bytes a
/// client declared but did not send (after a 413), for [`linger`].
fn requests<S: Conn>(s: &mut S, shared: &Shared, peer: &str, id: u64, t0: Instant) -> usize {
    let mut carry = Vec::new();
    let mut t = t0;
    let mut served = 0u32;
    loop {
        served += 1;
        // The last request this connection may carry says so.
        let left = shared.keep_max.saturating_sub(served);
        let offer = if shared.keep_idle.is_zero() || left == 0 {
            http::Persist::Close
        } else {
            http::Persist::Keep {
                // Whole seconds, rounded down: never more than is kept.
                idle_s: shared.keep_idle.as_secs(),
                max: left,
            }
        };
        let first = served == 1;
        let (unread, kept) = exchange(s, shared, peer, id, t, &mut carry, offer, first);
        if !kept {
            return unread;
        }
        if carry.is_empty() && !s.pending() && !wait_next(&s.timed().tcp, shared) {
            return 0;
        }
        t = Instant::now();
        s.timed().deadline = t + shared.deadline;
    }
}

/// Wait (idle) for the next request on a kept connection: true when bytes
/// arrived; false when the client closed, the idle time ran out, or other
/// connections are waiting for a worker (checked every [`IDLE_SLICE`]).
fn wait_next(tcp: &TcpStream, shared: &Shared) -> bool {
    let until = Instant::now() + shared.keep_idle;
    let mut b = [0u8; 1];
    loop {
        if shared.claim_release() {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || tcp.set_read_timeout(Some(left.min(IDLE_SLICE))).is_err() {
            return false;
        }
        match tcp.peek(&mut b) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
}

/// Serve one request on `s`; returns the body bytes the client declared but
/// did not send (after a 413, for [`linger`]) and whether the connection
/// stays open for another request. `offer` is what this hub allows; the
/// connection is kept only when the client wants it too, the request was
/// well-formed, the answer has no Retry-After, went out whole, and no
/// connection is waiting for a worker. A client that closes before a later request (`first`
/// false) is not logged: that is how kept connections end.
#[allow(clippy::too_many_arguments)]
fn exchange<S: std::io::Read + Write>(
    s: &mut S,
    shared: &Shared,
    peer: &str,
    id: u64,
    t0: Instant,
    carry: &mut Vec<u8>,
    offer: http::Persist,
    first: bool,
) -> (usize, bool) {
    let mut unread = 0;
    let mut persist = http::Persist::Close;
    let (method, path, bytes_in, answer) =
        match http::read_request(s, proto::MAX_REQUEST_BODY, carry) {
            Ok(req) => {
                let a = route(&req, shared, peer);
                // An answer with Retry-After (429, 503, 500) sends the
                // client away for longer than a connection is kept: free
                // the worker now, above all while shedding load.
                let later = a.headers.iter().any(|(k, _)| *k == "Retry-After");
                if req.persistent && !later && !shared.claim_release() {
                    persist = offer;
                }
                (req.method, req.path, req.bytes_in, a)
            }
            Err(HttpError::Gone) => {
                if first {
                    log_line(shared, peer, id, "", "", 0, 0, 0, t0, "closed");
                }
                return (0, false);
            }
            Err(e) => {
                if let HttpError::TooLarge(n) = e {
                    unread = n;
                }
                let code = match e {
                    HttpError::Timeout => "timeout",
                    HttpError::TooLarge(_) | HttpError::HeadTooLarge => "too_large",
                    _ => "bad_request",
                };
                (
                    "".into(),
                    "".into(),
                    0,
                    Answer::err(e.status(), code, e.message()),
                )
            }
        };
    let headers: Vec<(&str, String)> = answer
        .headers
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let (bytes, sent) = match &answer.file {
        None => {
            let bytes = http::response(answer.status, &headers, &answer.body, persist);
            let sent = s.write_all(&bytes).and_then(|_| s.flush());
            (bytes, sent)
        }
        Some((path, len)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nDate: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n{}\r\n",
                http::date_now(),
                persist.header_lines()
            );
            let sent = s.write_all(head.as_bytes()).and_then(|_| {
                let f = File::open(path)?;
                // Exactly the announced length, or the connection is
                // not reusable (a file that changed size meanwhile).
                let n = std::io::copy(&mut std::io::Read::take(f, *len), s)?;
                if n != *len {
                    return Err(std::io::Error::other("artifact shorter than announced"));
                }
                s.flush()
            });
            (head.into_bytes(), sent)
        }
    };
    let error = if sent.is_err() && answer.error.is_empty() {
        "write_failed".to_string()
    } else {
        answer.error
    };
    log_line(
        shared,
        peer,
        id,
        &method,
        &path,
        answer.status,
        bytes_in,
        if sent.is_ok() { bytes.len() } else { 0 },
        t0,
        &error,
    );
    let kept = sent.is_ok() && persist != http::Persist::Close;
    (unread, kept)
}

#[allow(clippy::too_many_arguments)]
fn log_line(
    shared: &Shared,
    peer: &str,
    conn: u64,
    method: &str,
    path: &str,
    status: u16,
    bytes_in: usize,
    bytes_out: usize,
    t0: Instant,
    error: &str,
) {
    let Some(log) = &shared.log else { return };
    // The path is logged without a query string (none of ours carries one,
    // but a client could put anything there).
    let path = path.split('?').next().unwrap_or("");
    let path: String = path.chars().take(128).collect();
    let mut line = proto::encode(&LogLine {
        t_ms: now_ms(),
        peer,
        conn,
        method,
        path: &path,
        status,
        bytes_in,
        bytes_out,
        ms: (t0.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        error,
    });
    line.push('\n');
    let mut f = log.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(e) = f.append(line.as_bytes()) {
        log::warn!("writing request log: {e}");
    }
}

fn shed_answer(shed: &Shed) -> Answer {
    let code = if shed.status == 429 {
        "rate_limited"
    } else {
        "unavailable"
    };
    let mut a = Answer::err(
        shed.status,
        code,
        format!("hub is shedding load; retry after {} s", shed.retry_after_s),
    );
    let value = if shed.http_date {
        timefmt::http_date(now_unix() + shed.retry_after_s)
    } else {
        shed.retry_after_s.to_string()
    };
    a.headers.push(("Retry-After", value));
    a
}

fn internal(e: &Error) -> Answer {
    log::error!("{e}");
    let mut a = Answer::err(500, "internal", "internal error in the hub; see its log");
    a.headers.push(("Retry-After", "30".to_string()));
    a
}

/// A database error: 503 with Retry-After while the database cannot be
/// reached (PostgreSQL restarting; the next request connects again), else
/// a 500.
fn db_failed(db: &Db, e: &Error) -> Answer {
    if db.unavailable() {
        log::error!("{e}");
        let mut a = Answer::err(
            503,
            "unavailable",
            "the hub's database cannot be reached; try again later",
        );
        a.headers.push(("Retry-After", "5".to_string()));
        return a;
    }
    internal(e)
}

fn route(req: &Request, shared: &Shared, peer: &str) -> Answer {
    let path = req.path.split('?').next().unwrap_or("");
    if let Some(sha) = path.strip_prefix(crate::upgrades::PATH_ARTIFACTS) {
        return artifact(req, shared, sha);
    }
    let post = match path {
        proto::PATH_PROBE => false,
        proto::PATH_REGISTER | proto::PATH_CHECKIN => true,
        _ => {
            return Answer::err(
                404,
                "not_found",
                format!("no such endpoint: {}", truncate(path)),
            )
        }
    };
    let want = if post { "POST" } else { "GET" };
    if req.method != want {
        let mut a = Answer::err(405, "method_not_allowed", format!("{path} takes {want}"));
        a.headers.push(("Allow", want.to_string()));
        return a;
    }
    if !post {
        return Answer::ok(&Probe {
            v: proto::PROTOCOL_VERSION,
            protocol: proto::PROTOCOL_NAME.to_string(),
            majors: vec![proto::PROTOCOL_MAJOR],
            server: format!("outpost-hub {}", outpost::version::VERSION),
            server_time: now_unix(),
        });
    }
    if let Some(rate) = &shared.rate {
        if !rate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take(Instant::now())
        {
            return rate_limited();
        }
    }
    let mut db = shared.db();
    match db.shed() {
        Ok(Some(shed)) => return shed_answer(&shed),
        Ok(None) => {}
        Err(e) => return db_failed(&db, &e),
    }
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return Answer::err(400, "bad_request", "request body is not UTF-8");
    };
    if path == proto::PATH_REGISTER {
        register(&mut db, text, peer)
    } else {
        let base = format!(
            "{}://{}",
            if shared.tls.is_some() {
                "https"
            } else {
                "http"
            },
            req.header("host")
                .filter(|h| h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
                .unwrap_or("localhost")
        );
        checkin(&mut db, req, text, peer, &base)
    }
}

/// GET /outpost/v1/artifacts/<sha256>: a stored release artifact (public:
/// it is useless without its signed manifest, and agents verify both).
fn artifact(req: &Request, shared: &Shared, sha: &str) -> Answer {
    if req.method != "GET" {
        let mut a = Answer::err(405, "method_not_allowed", "artifacts take GET");
        a.headers.push(("Allow", "GET".to_string()));
        return a;
    }
    if sha.len() != 64
        || !sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Answer::err(404, "not_found", "no such artifact");
    }
    let db = shared.db();
    let path = crate::upgrades::artifacts_dir(db.path()).join(sha);
    drop(db);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => {
            let mut a = Answer::err(200, "", "");
            a.file = Some((path, m.len()));
            a
        }
        _ => Answer::err(404, "not_found", "no such artifact"),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn register(db: &mut Db, text: &str, peer: &str) -> Answer {
    let req: RegisterRequest = match proto::decode(text) {
        Ok(r) => r,
        Err(e) => return Answer::err(400, "bad_request", e.0),
    };
    if req.host_id.is_empty() {
        return Answer::err(
            400,
            "bad_request",
            "register request: field `host_id` is empty",
        );
    }
    if req.install_secret.len() < secret::MIN_INSTALL_SECRET {
        return Answer::err(
            400,
            "bad_request",
            format!(
                "register request: field `install_secret` is shorter than {} bytes",
                secret::MIN_INSTALL_SECRET
            ),
        );
    }
    let credential = match secret::generate(secret::CREDENTIAL_PREFIX) {
        Ok(c) => c,
        Err(e) => return db_failed(db, &e),
    };
    let now = now_unix();
    let token_hash = secret::hash_secret(&req.token);
    match db.register(&req, &token_hash, &secret::hash_secret(&credential), now, peer) {
        Ok(Ok(r)) => Answer::ok(&RegisterResponse {
            v: proto::PROTOCOL_VERSION,
            host_id: req.host_id.clone(),
            credential,
            rotated: r.rotated,
            interval_ms: r.interval_ms,
            phase_ms: r.phase_ms,
            server_time: now,
        }),
        Ok(Err(RegisterRefusal::TokenInvalid)) => {
            Answer::err(401, "token_invalid", "registration token unknown or revoked")
        }
        Ok(Err(RegisterRefusal::TokenExpired)) => {
            Answer::err(401, "token_expired", "registration token expired")
        }
        Ok(Err(RegisterRefusal::ProjectMismatch)) => Answer::err(
            401,
            "token_project_mismatch",
            "registration token belongs to another project",
        ),
        Ok(Err(RegisterRefusal::Duplicate)) => Answer::err(
            409,
            "duplicate_host",
            format!(
                "host ID {} is registered by another machine; delete the old record first (outpost-hub delete {})",
                req.host_id, req.host_id
            ),
        ),
        Err(e) => db_failed(db, &e),
    }
}

fn checkin(db: &mut Db, req: &Request, text: &str, peer: &str, base: &str) -> Answer {
    let cred = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or("");
    if cred.is_empty() {
        let mut a = Answer::err(
            401,
            "unknown_credential",
            "missing Authorization: Bearer credential",
        );
        a.headers.push(("WWW-Authenticate", "Bearer".into()));
        return a;
    }
    let body: CheckinRequest = match proto::decode(text) {
        Ok(r) => r,
        Err(e) => return Answer::err(400, "bad_request", e.0),
    };
    match db.checkin_with(&secret::hash_secret(cred), &body, now_unix(), peer, base) {
        Ok(Ok(resp)) => Answer::ok(&resp),
        Ok(Err(CheckinRefusal::Unknown)) => {
            let mut a = Answer::err(
                401,
                "unknown_credential",
                "credential unknown for this host ID; register again",
            );
            a.headers.push(("WWW-Authenticate", "Bearer".into()));
            a
        }
        Ok(Err(CheckinRefusal::Deregistered)) => Answer::err(
            410,
            "deregistered",
            "this device was deregistered by the operator",
        ),
        Err(e) => db_failed(db, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_takes_its_rate_and_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::new(10);
        let taken = (0..15).filter(|_| b.take(t0)).count();
        assert_eq!(taken, 10, "a burst of one second's worth");
        assert!(!b.take(t0 + Duration::from_millis(50)), "half a token");
        assert!(
            b.take(t0 + Duration::from_millis(110)),
            "one token after 0.1 s"
        );
        let taken = (0..30)
            .filter(|_| b.take(t0 + Duration::from_secs(10)))
            .count();
        assert_eq!(taken, 10, "never more than the burst");
    }

    #[test]
    fn the_request_log_rotates_at_its_size() {
        let dir = std::env::temp_dir().join(format!("outpost-hub-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("requests.jsonl");
        let mut log = RequestLog {
            f: open_log(&p).expect("open"),
            path: p.clone(),
            max: 100,
        };
        for i in 0..25 {
            log.append(format!("line {i:02} ......\n").as_bytes())
                .expect("append");
        }
        let cur = std::fs::read_to_string(&p).expect("current");
        let old = std::fs::read_to_string(dir.join("requests.jsonl.1")).expect("rotated");
        assert!(cur.len() <= 100 && old.len() <= 100, "bounded");
        assert!(cur.ends_with("line 24 ......\n"), "{cur}");
        assert!(
            old.ends_with("line 23 ......\n") && old.starts_with("line 18"),
            "{old}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
