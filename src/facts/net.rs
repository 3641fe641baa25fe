//! Listening TCP ports from `/proc/net/tcp` and `/proc/net/tcp6` (state `0A`).
//!
//! Must not open sockets or probe ports; it only reads the kernel tables.

use crate::sys::Root;

/// Ports in state LISTEN in one table. A damaged line makes the whole
/// table unusable (it could have been the listener we look for). The
/// agent reads the tables line by line (`read_listening`); this form of
/// the same parser is for the tests and the fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub fn parse_listening(text: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (n, line) in text.lines().enumerate() {
        listening_line(n, line.as_bytes(), &mut ports)?;
    }
    Ok(ports)
}

/// One line (`n` counts from 0; line 0 is the header) of a table: the
/// port is added to `ports` when the socket listens. Bytes, not text: the
/// kernel writes ASCII, and a busy host's table has tens of thousands of
/// lines to get through at every check-in.
fn listening_line(n: usize, line: &[u8], ports: &mut Vec<u16>) -> Result<(), String> {
    let line = line.trim_ascii();
    if n == 0 || line.is_empty() {
        return Ok(());
    }
    let mut f = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let bad = || {
        format!(
            "line {}: cannot parse {:?}",
            n + 1,
            String::from_utf8_lossy(line)
        )
    };
    let (Some(_sl), Some(local), Some(_remote), Some(state)) =
        (f.next(), f.next(), f.next(), f.next())
    else {
        return Err(bad());
    };
    let port = local
        .iter()
        .rposition(|&b| b == b':')
        .and_then(|i| std::str::from_utf8(&local[i + 1..]).ok())
        .and_then(|p| u16::from_str_radix(p, 16).ok())
        .ok_or_else(bad)?;
    if state == b"0A" && !ports.contains(&port) {
        ports.push(port);
    }
    Ok(())
}

/// One table read line by line: a busy host (a Kubernetes node) has tens
/// of thousands of sockets, ~150 bytes a line, and the table is read at
/// every check-in, so it is never held whole in memory. `None` when it
/// cannot be opened or read to the end (the table is then left out, as a
/// missing one is).
fn read_table(path: &std::path::Path) -> Option<Result<Vec<u16>, String>> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).ok()?;
    let mut r = std::io::BufReader::with_capacity(8192, f);
    let mut ports = Vec::new();
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) => return Some(Ok(ports)),
            Ok(_) => {
                if let Err(e) = listening_line(n, &line, &mut ports) {
                    return Some(Err(e));
                }
                n += 1;
            }
            Err(_) => return None,
        }
    }
}

/// Listening ports from both tables; `Err` only when neither is readable.
pub fn read_listening(root: &Root) -> Result<Vec<u16>, String> {
    let mut any = false;
    let mut ports = Vec::new();
    for p in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Some(table) = read_table(&root.path(p)) {
            any = true;
            for port in table.map_err(|e| format!("{p}: {e}"))? {
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
        }
    }
    if !any {
        return Err("/proc/net/tcp and /proc/net/tcp6 unreadable".into());
    }
    ports.sort_unstable();
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_ports() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1062 1 0 100 0 0 10 0
   1: 0100007F:0942 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1063 1 0
   2: 0100007F:9C40 0100007F:0942 01 00000000:00000000 00:00000000 00000000     0        0 1064 1 0
";
        assert_eq!(parse_listening(tcp), Ok(vec![2024, 2370]));
        let tcp6 = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:192B 00000000000000000000000000000000:0000 0A 00000000:00000000";
        assert_eq!(parse_listening(tcp6), Ok(vec![6443]));
        assert_eq!(parse_listening(""), Ok(vec![]));
        let bad: &[(&str, &str)] = &[
            (
                "hdr\n   3: garbage\n",
                "line 2: cannot parse \"3: garbage\"",
            ),
            (
                "hdr\n   4: 00000000:ZZZZ 00000000:0000 0A\n",
                "line 2: cannot parse \"4: 00000000:ZZZZ 00000000:0000 0A\"",
            ),
            (
                "hdr\n   0: 00000000 00000000:0000 0A\n",
                "line 2: cannot parse \"0: 00000000 00000000:0000 0A\"",
            ),
        ];
        for (text, want) in bad {
            assert_eq!(
                parse_listening(text),
                Err(want.to_string()),
                "input {text:?}"
            );
        }
    }

    #[test]
    fn a_large_table_is_read_line_by_line_with_the_same_verdicts() {
        let dir = std::env::temp_dir().join(format!("outpost-net-{}", std::process::id()));
        let net = dir.join("proc/net");
        std::fs::create_dir_all(&net).unwrap();
        // 20,000 sockets in TIME_WAIT (state 06) and one listener last.
        let mut tcp = String::from("  sl  local_address rem_address   st tx_queue\n");
        for i in 0..20_000u32 {
            tcp.push_str(&format!(
                "{i:5}: 0100007F:{:04X} 0100007F:0942 06 00000000:00000000\n",
                1024 + i % 60_000
            ));
        }
        tcp.push_str("20000: 00000000:192B 00000000:0000 0A 00000000:00000000\n");
        std::fs::write(net.join("tcp"), &tcp).unwrap();
        let root = Root::new(&dir);
        assert_eq!(read_listening(&root), Ok(vec![6443]));
        assert_eq!(parse_listening(&tcp), Ok(vec![6443]));
        // A damaged line names the table and the line, as parse_listening does.
        std::fs::write(net.join("tcp6"), "hdr\n   3: garbage\n").unwrap();
        assert_eq!(
            read_listening(&root),
            Err("/proc/net/tcp6: line 2: cannot parse \"3: garbage\"".to_string())
        );
        std::fs::remove_file(net.join("tcp6")).unwrap();
        std::fs::remove_file(net.join("tcp")).unwrap();
        assert!(read_listening(&root).is_err(), "neither table readable");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
