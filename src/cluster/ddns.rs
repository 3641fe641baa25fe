//! Dynamic DNS: keep one A or AAAA record up to date with RFC 2136 UPDATE
//! messages signed with TSIG (RFC 8945), built and verified by the `domain`
//! crate (sync message building, no async runtime) and sent over std UDP
//! (TCP when the answer is truncated).
//!
//! One UPDATE deletes the name's RRset of that type and adds the new
//! address, so the change is atomic on the server. The agent sends only when
//! the address differs from the last one the server accepted (state file
//! `ddns.json`), verifies the server's signed answer, and backs off after
//! errors. The TSIG secret is read from a 0600 file and never logged,
//! shown or put in an error.

use crate::error::{Code, Error, Result};
use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::message::Message;
use domain::base::message_builder::MessageBuilder;
use domain::base::name::Name;
use domain::base::rdata::UnknownRecordData;
use domain::rdata::tsig::Time48;
use domain::rdata::{Aaaa, A};
use domain::tsig::{Algorithm, ClientTransaction, Key, KeyName, ValidationError};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// `IP`, `IP:PORT` or `[IPv6]:PORT` (port 53 by default).
pub fn parse_server(s: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>()
        .map_err(|_| format!("{s:?} is not IP, IP:PORT or [IPv6]:PORT"))
}

/// What the agent needs to send updates (from `outpost.ddns.*`).
pub struct Settings {
    pub server: SocketAddr,
    pub zone: String,
    pub key_name: String,
    pub algorithm: String,
    pub key: Key,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Settings {{ server: {}, zone: {}, key_name: {}, algorithm: {}, key: <redacted> }}",
            self.server, self.zone, self.key_name, self.algorithm
        )
    }
}

/// The base64 secret of a key file: a `tsig-keygen` / BIND `key` statement
/// (`secret "..."`), or the bare base64 text. Errors never quote the file.
pub fn secret_from_key_file(text: &str) -> std::result::Result<Vec<u8>, &'static str> {
    let b64 = match text.find("secret") {
        Some(i) => {
            let rest = &text[i + "secret".len()..];
            let start = rest.find('"').ok_or("no quoted secret after `secret`")?;
            let rest = &rest[start + 1..];
            let end = rest.find('"').ok_or("unterminated secret")?;
            rest[..end].trim().to_string()
        }
        None => text.split_whitespace().collect::<String>(),
    };
    if b64.is_empty() {
        return Err("empty secret");
    }
    domain::utils::base64::decode::<Vec<u8>>(&b64).map_err(|_| "secret is not base64")
}

pub fn algorithm(name: &str) -> std::result::Result<Algorithm, String> {
    match name {
        "hmac-sha256" => Ok(Algorithm::Sha256),
        "hmac-sha384" => Ok(Algorithm::Sha384),
        "hmac-sha512" => Ok(Algorithm::Sha512),
        o => Err(format!(
            "{o:?} is not hmac-sha256, hmac-sha384 or hmac-sha512"
        )),
    }
}

/// Build the key from its parts (name, algorithm, secret bytes).
pub fn make_key(key_name: &str, alg: &str, secret: &[u8]) -> std::result::Result<Key, String> {
    let name = KeyName::from_str(key_name)
        .map_err(|_| format!("key name {key_name:?} is not a DNS name"))?;
    Key::new(algorithm(alg)?, secret, name, None, None).map_err(|e| format!("TSIG key: {e}"))
}

/// Read `outpost.ddns.*` from the config; `Ok(None)` when no server is set.
/// The key file resolves under `root` and must not be readable by group or
/// others (exit 4 otherwise).
pub fn settings(root: &crate::sys::Root, cfg: &crate::config::Config) -> Result<Option<Settings>> {
    let Some(server) = &cfg.ddns_server.value else {
        return Ok(None);
    };
    let need = |v: &Option<String>, key: &str| {
        v.clone().ok_or_else(|| {
            Error::config(format!(
                "outpost.ddns.{key}: not set, but outpost.ddns.server is"
            ))
        })
    };
    let zone = need(&cfg.ddns_zone.value, "zone")?;
    let key_name = need(&cfg.ddns_key_name.value, "keyName")?;
    let key_file = need(&cfg.ddns_key_file.value, "keyFile")?;
    let path = root.path(&key_file);
    let secret = read_key_file(&path)?;
    let key = make_key(&key_name, &cfg.ddns_algorithm.value, &secret)
        .map_err(|e| Error::config(format!("outpost.ddns: {e}")))?;
    Ok(Some(Settings {
        server: parse_server(server)
            .map_err(|e| Error::config(format!("outpost.ddns.server: {e}")))?,
        zone,
        key_name,
        algorithm: cfg.ddns_algorithm.value.clone(),
        key,
    }))
}

fn read_key_file(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io("reading TSIG key file", path, &e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(Error::new(
            Code::NotPermitted,
            format!(
                "{}: mode {mode:04o}, must be 0600 (it holds the TSIG secret): chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io("reading TSIG key file", path, &e))?;
    secret_from_key_file(&text).map_err(|why| Error::config(format!("{}: {why}", path.display())))
}

fn in_zone(name: &str, zone: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    let z = zone.trim_end_matches('.').to_ascii_lowercase();
    n == z || n.ends_with(&format!(".{z}"))
}

/// What an UPDATE does to the name's records (RFC 2136 section 2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The name's RRset of the address's type becomes this address alone
    /// (`outpost cluster ddns`: one writer per name).
    Replace,
    /// Control-plane hosts, each keeping its own address in the name's
    /// RRset: delete this host's previous address (`old`, when it changed)
    /// and add the current one; the other hosts' records are never touched.
    Member { old: Option<IpAddr> },
    /// Delete this host's address only (it left the cluster).
    Remove,
}

/// Build and sign the UPDATE for `name` and `addr` (TTL `ttl`) in `mode`:
/// zone section `zone IN SOA`, no prerequisites, update section per mode
/// (Replace: "delete the RRset of the address's type" + "add the address";
/// Member: "delete the old address" (class NONE) + "add the address";
/// Remove: "delete the address"). Returns the wire message and the
/// transaction that verifies the answer.
#[allow(clippy::too_many_arguments)]
pub fn signed_update<'k>(
    key: &'k Key,
    zone: &str,
    name: &str,
    addr: IpAddr,
    mode: Mode,
    ttl: u32,
    id: u16,
    now: u64,
) -> std::result::Result<(Vec<u8>, ClientTransaction<&'k Key>), String> {
    if !in_zone(name, zone) {
        return Err(format!("{name} is not inside zone {zone}"));
    }
    let zone_n =
        Name::<Vec<u8>>::from_str(zone).map_err(|_| format!("zone {zone:?} is not a DNS name"))?;
    let name_n =
        Name::<Vec<u8>>::from_str(name).map_err(|_| format!("{name:?} is not a DNS name"))?;
    let full = |e| format!("building the DNS UPDATE: {e}");
    let mut msg = MessageBuilder::new_vec();
    msg.header_mut().set_id(id);
    msg.header_mut().set_opcode(Opcode::UPDATE);
    let mut zone_sec = msg.question();
    zone_sec
        .push((&zone_n, Rtype::SOA, Class::IN))
        .map_err(full)?;
    let mut upd = zone_sec.answer().authority();
    let rtype = if addr.is_ipv4() {
        Rtype::A
    } else {
        Rtype::AAAA
    };
    let rr = |upd: &mut domain::base::message_builder::AuthorityBuilder<Vec<u8>>,
              class: Class,
              ttl: u32,
              a: IpAddr| match a {
        IpAddr::V4(a) => upd.push((&name_n, class, ttl, A::new(a))),
        IpAddr::V6(a) => upd.push((&name_n, class, ttl, Aaaa::new(a))),
    };
    match mode {
        Mode::Replace => {
            let empty = UnknownRecordData::from_octets(rtype, Vec::<u8>::new())
                .map_err(|e| format!("building the DNS UPDATE: {e}"))?;
            upd.push((&name_n, Class::ANY, 0u32, empty)).map_err(full)?;
            rr(&mut upd, Class::IN, ttl, addr).map_err(full)?;
        }
        Mode::Member { old } => {
            if let Some(o) = old.filter(|o| *o != addr) {
                rr(&mut upd, Class::NONE, 0, o).map_err(full)?;
            }
            rr(&mut upd, Class::IN, ttl, addr).map_err(full)?;
        }
        Mode::Remove => rr(&mut upd, Class::NONE, 0, addr).map_err(full)?,
    }
    let mut add = upd.additional();
    let tx = ClientTransaction::request(key, &mut add, Time48::from_u64(now)).map_err(full)?;
    Ok((add.finish(), tx))
}

/// How an exchange ended, for the error and the exit code.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The server did not accept our signature (NOTAUTH with a TSIG error).
    Auth(String),
    /// A signed, verified answer with an error rcode (policy, zone, ...).
    Rcode(String),
    /// The answer could not be trusted or read.
    BadAnswer(String),
}

/// Check the answer: same ID, an UPDATE response, TSIG verified with our
/// key, NOERROR.
pub fn check_answer(
    tx: &ClientTransaction<&Key>,
    id: u16,
    answer: Vec<u8>,
    now: u64,
) -> std::result::Result<(), Refusal> {
    let mut msg = Message::from_octets(answer)
        .map_err(|_| Refusal::BadAnswer("answer shorter than a DNS header".into()))?;
    let h = msg.header();
    if h.id() != id || !h.qr() || h.opcode() != Opcode::UPDATE {
        return Err(Refusal::BadAnswer(
            "answer does not match the UPDATE sent".into(),
        ));
    }
    let rcode = h.rcode();
    match tx.answer(&mut msg, Time48::from_u64(now)) {
        Ok(()) if rcode == Rcode::NOERROR => Ok(()),
        Ok(()) => Err(Refusal::Rcode(rcode.to_string())),
        Err(e @ (ValidationError::ServerBadSig | ValidationError::ServerBadKey)) => {
            Err(Refusal::Auth(format!(
                "{rcode} ({}): the server does not know this key name or secret",
                match e {
                    ValidationError::ServerBadKey => "BADKEY",
                    _ => "BADSIG",
                }
            )))
        }
        Err(ValidationError::ServerBadTime { .. }) => Err(Refusal::Auth(format!(
            "{rcode} (BADTIME): this host's clock and the server's differ by more than 300 s"
        ))),
        Err(e) => Err(Refusal::BadAnswer(format!(
            "answer not verified ({e}), rcode {rcode}"
        ))),
    }
}

/// Send `msg` to `server` over UDP (3 tries, 2/4/8 s), then TCP if the
/// answer came back truncated. Returns the answer with our ID.
pub fn exchange(server: SocketAddr, msg: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().map_err(std::io::Error::other)?
    } else {
        "[::]:0".parse().map_err(std::io::Error::other)?
    };
    let sock = UdpSocket::bind(bind)?;
    sock.connect(server)?;
    let mut buf = vec![0u8; 65_535];
    let mut last = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
    for wait in [2u64, 4, 8] {
        sock.send(msg)?;
        sock.set_read_timeout(Some(Duration::from_secs(wait)))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(wait);
        while std::time::Instant::now() < deadline {
            match sock.recv(&mut buf) {
                Ok(n) if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                    if buf[2] & 0x02 != 0 {
                        return exchange_tcp(server, msg);
                    }
                    return Ok(buf[..n].to_vec());
                }
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    last = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {wait} s"),
                    );
                    break;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Err(last)
}

fn exchange_tcp(server: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&server, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let len = u16::try_from(msg.len()).map_err(std::io::Error::other)?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    s.write_all(&out)?;
    let mut l = [0u8; 2];
    s.read_exact(&mut l)?;
    let mut ans = vec![0u8; usize::from(u16::from_be_bytes(l))];
    s.read_exact(&mut ans)?;
    Ok(ans)
}

/// What the agent remembers between runs (`ddns.json` in the state dir).
#[derive(Clone, Debug, Default, PartialEq, Eq, miniserde::Serialize, miniserde::Deserialize)]
pub struct State {
    pub schema: String,
    pub name: String,
    /// The address the server last accepted.
    pub address: String,
    pub updated: u64,
    pub failures: u32,
    /// No attempt before this time (Unix seconds) after failures.
    pub next_try: u64,
}

pub const STATE_SCHEMA: &str = "outpost.ddns/v1";

/// What to do now (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The server already holds this address.
    Unchanged,
    /// Backing off after errors until this time.
    Wait(u64),
    Send,
}

pub fn decide(state: &State, name: &str, addr: IpAddr, now: u64, force: bool) -> Decision {
    let same = state.name == name && state.address == addr.to_string();
    if force {
        return Decision::Send;
    }
    if state.failures > 0 && now < state.next_try {
        return Decision::Wait(state.next_try);
    }
    if same && state.failures == 0 {
        Decision::Unchanged
    } else {
        Decision::Send
    }
}

/// Seconds to wait after the n-th consecutive failure: 30 s doubling, at
/// most an hour.
pub fn backoff(failures: u32) -> u64 {
    let n = failures.clamp(1, 8) - 1;
    (30u64 << n).min(3600)
}

/// One update attempt with its outcome applied to `state`.
pub fn update(
    s: &Settings,
    name: &str,
    addr: IpAddr,
    mode: Mode,
    now: u64,
    id: u16,
    state: &mut State,
) -> Result<()> {
    let fail = |state: &mut State, e: Error| {
        state.failures = state.failures.saturating_add(1);
        state.next_try = now + backoff(state.failures);
        Err(e)
    };
    let (msg, tx) = match signed_update(&s.key, &s.zone, name, addr, mode, 60, id, now) {
        Ok(v) => v,
        Err(e) => return Err(Error::config(format!("outpost.ddns: {e}"))),
    };
    let what = match mode {
        Mode::Replace => format!("{name} -> {addr}"),
        Mode::Member { old: Some(o) } if o != addr => {
            format!("{name}: {o} -> {addr} (others kept)")
        }
        Mode::Member { .. } => format!("{name} += {addr} (others kept)"),
        Mode::Remove => format!("{name} -= {addr} (others kept)"),
    };
    log::info!(
        "ddns: UPDATE {what} at {} (zone {}, key {})",
        s.server,
        s.zone,
        s.key_name
    );
    let answer = match exchange(s.server, &msg, id) {
        Ok(a) => a,
        Err(e) => {
            return fail(
                state,
                Error::new(
                    Code::Network,
                    format!("DNS update of {name} at {}: {e}", s.server),
                ),
            )
        }
    };
    match check_answer(&tx, id, answer, now) {
        Ok(()) => {
            *state = State {
                schema: STATE_SCHEMA.into(),
                name: name.into(),
                address: if mode == Mode::Remove {
                    String::new()
                } else {
                    addr.to_string()
                },
                updated: now,
                failures: 0,
                next_try: 0,
            };
            Ok(())
        }
        Err(Refusal::Auth(why)) => fail(
            state,
            Error::config(format!(
                "DNS update of {name} at {} refused: {why} (check outpost.ddns.keyName {} and the key file)",
                s.server, s.key_name
            )),
        ),
        Err(Refusal::Rcode(r)) => fail(
            state,
            Error::config(format!(
                "DNS update of {name} at {} refused: {r} (signed answer; check the zone {} and the server's update-policy)",
                s.server, s.zone
            )),
        ),
        Err(Refusal::BadAnswer(why)) => fail(
            state,
            Error::new(Code::BadAnswer, format!("DNS update of {name} at {}: {why}", s.server)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known vector from an independent implementation (dnspython 2.3,
    /// tests/fixtures/cluster/tsig-vector.py): the same UPDATE signed with
    /// the same key, ID and time gives the same bytes, MAC included.
    #[test]
    fn tsig_signing_matches_known_vector() {
        let secret = domain::utils::base64::decode::<Vec<u8>>(
            "c2VjcmV0LWtleS1mb3ItdGhlLXRzaWctdmVjdG9yLXRlc3Q=",
        )
        .unwrap_or_else(|_| unreachable!());
        let key =
            make_key("outpost-key.", "hmac-sha256", &secret).unwrap_or_else(|e| panic!("{e}"));
        let (msg, _tx) = signed_update(
            &key,
            "example.test",
            "api.example.test",
            "10.0.0.100".parse().unwrap_or_else(|_| unreachable!()),
            Mode::Replace,
            60,
            0x1234,
            1_700_000_000,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let want = include_str!("../../tests/fixtures/cluster/tsig-vector.hex");
        let got: String = msg.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            got,
            want.trim(),
            "signed UPDATE differs from the dnspython vector"
        );
    }

    #[test]
    fn key_files() {
        let bind = "key \"outpost-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n";
        assert_eq!(secret_from_key_file(bind), Ok(b"secret".to_vec()));
        assert_eq!(secret_from_key_file("c2Vj\ncmV0\n"), Ok(b"secret".to_vec()));
        assert_eq!(
            secret_from_key_file("secret \"c2Vj"),
            Err("unterminated secret")
        );
        assert_eq!(secret_from_key_file("  \n"), Err("empty secret"));
        assert_eq!(
            secret_from_key_file("not base64!"),
            Err("secret is not base64")
        );
    }

    #[test]
    fn servers_and_names() {
        let ok = [
            ("127.0.0.1", "127.0.0.1:53"),
            ("127.0.0.1:5300", "127.0.0.1:5300"),
            ("[::1]:5300", "[::1]:5300"),
            ("::1", "[::1]:53"),
        ];
        for (i, want) in ok {
            assert_eq!(
                parse_server(i).map(|s| s.to_string()),
                Ok(want.to_string()),
                "case {i}"
            );
        }
        assert!(parse_server("dns.example.com").is_err());
        assert!(in_zone("api.example.test.", "Example.Test"));
        assert!(in_zone("example.test", "example.test"));
        assert!(!in_zone("api.badexample.test", "example.test"));
        assert!(algorithm("hmac-md5").is_err());
    }

    #[test]
    fn update_only_on_change_with_backoff() {
        let a: IpAddr = "10.0.0.100".parse().unwrap_or_else(|_| unreachable!());
        let b: IpAddr = "10.0.0.101".parse().unwrap_or_else(|_| unreachable!());
        let done = State {
            schema: STATE_SCHEMA.into(),
            name: "api.example.test".into(),
            address: a.to_string(),
            updated: 100,
            failures: 0,
            next_try: 0,
        };
        assert_eq!(
            decide(&State::default(), "api.example.test", a, 0, false),
            Decision::Send
        );
        assert_eq!(
            decide(&done, "api.example.test", a, 200, false),
            Decision::Unchanged
        );
        assert_eq!(
            decide(&done, "api.example.test", b, 200, false),
            Decision::Send
        );
        assert_eq!(
            decide(&done, "other.example.test", a, 200, false),
            Decision::Send
        );
        assert_eq!(
            decide(&done, "api.example.test", a, 200, true),
            Decision::Send
        );
        let failing = State {
            failures: 2,
            next_try: 500,
            ..done.clone()
        };
        assert_eq!(
            decide(&failing, "api.example.test", b, 400, false),
            Decision::Wait(500)
        );
        assert_eq!(
            decide(&failing, "api.example.test", a, 500, false),
            Decision::Send,
            "retry after failure"
        );
        let waits: Vec<u64> = (1..=9).map(backoff).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn settings_never_show_the_key() {
        let key =
            make_key("k.", "hmac-sha256", b"topsecretbytes").unwrap_or_else(|e| panic!("{e}"));
        let s = Settings {
            server: "127.0.0.1:53".parse().unwrap_or_else(|_| unreachable!()),
            zone: "example.test".into(),
            key_name: "k.".into(),
            algorithm: "hmac-sha256".into(),
            key,
        };
        let shown = format!("{s:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("topsecret"),
            "{shown}"
        );
    }
}
