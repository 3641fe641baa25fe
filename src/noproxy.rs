//! `noProxy` / `NO_PROXY` lists: parse a comma-separated list once, then tell
//! for a request's host and port whether it goes direct (bypassing the proxy).
//!
//! Pure: no environment, no DNS, no I/O. `proxy.rs` reads the variables and `http/route.rs`
//! asks `matches`. It must not resolve names: a CIDR entry matches only a URL
//! whose host is an IP literal (resolving would leak the name to DNS first
//! and could disagree with what the proxy resolves).
//!
//! Entry forms (case-insensitive, white space around entries ignored, empty
//! entries skipped):
//!
//! | entry | matches |
//! |---|---|
//! | `*` | every host |
//! | `example.com` | `example.com` and every subdomain (`a.b.example.com`) |
//! | `.example.com`, `*.example.com` | the same as `example.com` (curl's rule) |
//! | `192.168.1.10`, `::1`, `[::1]` | that IP literal only |
//! | `10.0.0.0/8`, `fd00::/8` | IP literals inside the network |
//! | any of the above + `:PORT` | the same, only for that port |
//!
//! Ports: an entry without a port matches every port; with a port (`host:8443`,
//! `[fd00::1]:8443`, `10.0.0.0/8:443`) only that port. A trailing dot on the
//! host (`example.com.`) is ignored on both sides.

use std::fmt;
use std::net::IpAddr;

/// A parsed bypass list. The default (empty) list matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<Entry>,
    /// Each entry as written (trimmed), for `config show` and installers.
    given: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    what: Pattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    All,
    /// Lower-case domain without leading or trailing dot: matches itself and subdomains.
    Domain(String),
    Ip(IpAddr),
    Net(IpAddr, u8),
}

/// What is wrong with one entry of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub entry: String,
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "noProxy entry {:?}: {}", self.entry, self.reason)
    }
}

impl NoProxy {
    /// Parse a comma-separated list; the first bad entry is an error.
    pub fn parse(list: &str) -> Result<NoProxy, ParseError> {
        let mut out = NoProxy::default();
        for raw in list.split(',') {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            out.entries
                .push(parse_entry(raw).map_err(|reason| ParseError {
                    entry: raw.to_string(),
                    reason,
                })?);
            out.given.push(raw.to_string());
        }
        Ok(out)
    }

    /// Parse a list from an environment variable: bad entries are skipped
    /// (and returned, so the caller can warn) rather than failing the run.
    pub fn parse_lenient(list: &str) -> (NoProxy, Vec<ParseError>) {
        let mut out = NoProxy::default();
        let mut bad = Vec::new();
        for raw in list.split(',') {
            match NoProxy::parse(raw) {
                Ok(one) => out = out.merged(&one),
                Err(e) => bad.push(e),
            }
        }
        (out, bad)
    }

    /// Both lists: matches when either does.
    pub fn merged(mut self, other: &NoProxy) -> NoProxy {
        self.entries.extend(other.entries.iter().cloned());
        self.given.extend(other.given.iter().cloned());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries as written (trimmed, empty ones dropped).
    pub fn given(&self) -> &[String] {
        &self.given
    }

    /// True when a request to `host:port` must bypass the proxy. `host` is
    /// the URL's host: a name, an IPv4 literal, or an IPv6 literal with or
    /// without brackets.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.');
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let ip: Option<IpAddr> = host.parse().ok();
        let name = host.to_ascii_lowercase();
        self.entries.iter().any(|e| {
            if e.port.is_some_and(|p| p != port) {
                return false;
            }
            match (&e.what, ip) {
                (Pattern::All, _) => true,
                (Pattern::Ip(want), Some(got)) => *want == got,
                (Pattern::Net(net, bits), Some(got)) => in_net(*net, *bits, got),
                (Pattern::Domain(d), None) => {
                    name == *d
                        || (name.len() > d.len()
                            && name.ends_with(d.as_str())
                            && name.as_bytes()[name.len() - d.len() - 1] == b'.')
                }
                _ => false,
            }
        })
    }
}

fn parse_entry(raw: &str) -> Result<Entry, &'static str> {
    if raw == "*" {
        return Ok(Entry {
            what: Pattern::All,
            port: None,
        });
    }
    let (host, port) = split_port(raw)?;
    if host.is_empty() {
        return Err("empty host");
    }
    if let Some((addr, bits)) = host.split_once('/') {
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| "CIDR network is not an IP address")?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .map_err(|_| "CIDR prefix length is not a number")?;
        if bits > max {
            return Err("CIDR prefix length too long");
        }
        return Ok(Entry {
            what: Pattern::Net(addr, bits),
            port,
        });
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Entry {
            what: Pattern::Ip(ip),
            port,
        });
    }
    let d = host
        .strip_prefix("*.")
        .or_else(|| host.strip_prefix('.'))
        .unwrap_or(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
    if d.is_empty() || !d.chars().all(ok_char) || d.contains("..") {
        return Err("not a host name, IP address or CIDR");
    }
    Ok(Entry {
        what: Pattern::Domain(d),
        port,
    })
}

/// Split `host[:port]`, `[v6][:port]`, `v6` (bare, several colons), `net/len[:port]`.
fn split_port(raw: &str) -> Result<(&str, Option<u16>), &'static str> {
    let parse_port = |p: &str| p.parse::<u16>().map_err(|_| "port is not a number 0-65535");
    if let Some(rest) = raw.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or("missing ] after IPv6 address")?;
        return match after {
            "" => Ok((inner, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((inner, Some(parse_port(p)?))),
                None => Err("unexpected text after ]"),
            },
        };
    }
    match raw.matches(':').count() {
        0 => Ok((raw, None)),
        1 => {
            let (h, p) = raw.split_once(':').ok_or("bad port")?;
            Ok((h, Some(parse_port(p)?)))
        }
        // A bare IPv6 address or network: no port possible without brackets.
        _ => Ok((raw, None)),
    }
}

fn in_net(net: IpAddr, bits: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            (u32::from(n) & mask) == (u32::from(a) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            (u128::from(n) & mask) == (u128::from(a) & mask)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_table() {
        // (list, host, port, bypass?)
        let cases: &[(&str, &str, u16, bool)] = &[
            ("", "example.com", 443, false),
            ("*", "anything.example", 443, true),
            ("*", "10.1.2.3", 1, true),
            ("example.com", "example.com", 443, true),
            ("example.com", "EXAMPLE.COM", 443, true),
            ("example.com", "hub.example.com", 443, true),
            ("example.com", "a.b.example.com", 443, true),
            ("example.com", "badexample.com", 443, false),
            ("example.com", "example.com.evil", 443, false),
            ("example.com", "example.com.", 443, true),
            ("example.com.", "hub.example.com", 443, true),
            (".example.com", "example.com", 443, true),
            (".example.com", "hub.example.com", 443, true),
            (".example.com", "hubexample.com", 443, false),
            ("*.example.com", "hub.example.com", 443, true),
            ("Example.COM", "hub.example.com", 443, true),
            ("localhost", "localhost", 8080, true),
            ("192.168.1.10", "192.168.1.10", 443, true),
            ("192.168.1.10", "192.168.1.11", 443, false),
            ("10.0.0.0/8", "10.200.3.4", 443, true),
            ("10.0.0.0/8", "11.0.0.1", 443, false),
            ("10.0.0.0/8", "ten.example", 443, false),
            ("127.0.0.0/8", "127.0.0.1", 443, true),
            ("192.168.0.0/16", "192.168.255.255", 443, true),
            ("192.168.0.0/16", "192.169.0.1", 443, false),
            ("0.0.0.0/0", "8.8.8.8", 443, true),
            ("0.0.0.0/0", "::1", 443, false),
            ("10.1.2.3/32", "10.1.2.3", 443, true),
            ("10.1.2.3/32", "10.1.2.4", 443, false),
            ("::1", "::1", 443, true),
            ("::1", "[::1]", 443, true),
            ("[::1]", "::1", 443, true),
            ("fd00::/8", "fd12:3456::1", 443, true),
            ("fd00::/8", "fe80::1", 443, false),
            ("fd00::/8", "10.0.0.1", 443, false),
            ("::/0", "2001:db8::1", 443, true),
            ("example.com:8443", "example.com", 8443, true),
            ("example.com:8443", "example.com", 443, false),
            ("[fd00::1]:8443", "fd00::1", 8443, true),
            ("[fd00::1]:8443", "fd00::1", 443, false),
            ("10.0.0.0/8:443", "10.9.9.9", 443, true),
            ("10.0.0.0/8:443", "10.9.9.9", 444, false),
            ("a.example, 10.0.0.0/8 ,,b.example", "b.example", 443, true),
            ("a.example, 10.0.0.0/8 ,,b.example", "10.0.0.7", 443, true),
            ("a.example, 10.0.0.0/8 ,,b.example", "c.example", 443, false),
        ];
        for (list, host, port, want) in cases {
            let np = NoProxy::parse(list).unwrap_or_else(|e| panic!("{list:?}: {e}"));
            assert_eq!(
                np.matches(host, *port),
                *want,
                "list {list:?} host {host:?} port {port}"
            );
        }
    }

    #[test]
    fn bad_entries_are_named() {
        let cases: &[(&str, &str)] = &[
            (
                "10.0.0.0/33",
                "noProxy entry \"10.0.0.0/33\": CIDR prefix length too long",
            ),
            (
                "fd00::/129",
                "noProxy entry \"fd00::/129\": CIDR prefix length too long",
            ),
            (
                "10.0.0.0/x",
                "noProxy entry \"10.0.0.0/x\": CIDR prefix length is not a number",
            ),
            (
                "ten/8",
                "noProxy entry \"ten/8\": CIDR network is not an IP address",
            ),
            (
                "host:http",
                "noProxy entry \"host:http\": port is not a number 0-65535",
            ),
            (
                "host:70000",
                "noProxy entry \"host:70000\": port is not a number 0-65535",
            ),
            (
                "[::1",
                "noProxy entry \"[::1\": missing ] after IPv6 address",
            ),
            (
                "[::1]x",
                "noProxy entry \"[::1]x\": unexpected text after ]",
            ),
            (
                "ex ample.com",
                "noProxy entry \"ex ample.com\": not a host name, IP address or CIDR",
            ),
            (
                "a..b",
                "noProxy entry \"a..b\": not a host name, IP address or CIDR",
            ),
            (":443", "noProxy entry \":443\": empty host"),
            (
                "ok.example,*/x",
                "noProxy entry \"*/x\": CIDR network is not an IP address",
            ),
        ];
        for (list, want) in cases {
            let err = NoProxy::parse(list).expect_err(list);
            assert_eq!(err.to_string(), *want, "list {list:?}");
        }
    }

    #[test]
    fn lenient_parse_keeps_the_good_entries() {
        let (np, bad) = NoProxy::parse_lenient("good.example, 10.0.0.0/99, 192.168.0.0/16");
        assert_eq!(bad.len(), 1, "one bad entry");
        assert_eq!(bad[0].entry, "10.0.0.0/99");
        assert!(np.matches("x.good.example", 443), "domain kept");
        assert!(
            np.matches("192.168.3.3", 443),
            "CIDR after the bad one kept"
        );
        assert!(!np.matches("10.0.0.1", 443), "bad entry dropped");
    }

    #[test]
    fn merged_lists_match_either() {
        let a = NoProxy::parse("a.example").expect("a");
        let b = NoProxy::parse("10.0.0.0/8").expect("b");
        let m = a.merged(&b);
        assert!(m.matches("a.example", 1), "from first");
        assert!(m.matches("10.1.1.1", 1), "from second");
        assert!(!m.matches("b.example", 1), "neither");
        assert!(NoProxy::default().is_empty(), "default is empty");
    }
}
