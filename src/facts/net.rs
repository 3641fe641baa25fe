//! Listening TCP ports from `/proc/net/tcp` and `/proc/net/tcp6` (state `0A`).
//!
//! Must not open sockets or probe ports; it only reads the kernel tables.

use crate::sys::Root;

/// Ports in state LISTEN in one table. A damaged line makes the whole
/// table unusable (it could have been the listener we look for).
pub fn parse_listening(text: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split_whitespace();
        let bad = || format!("line {}: cannot parse {:?}", n + 1, line.trim());
        let (Some(_sl), Some(local), Some(_remote), Some(state)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad());
        };
        let port = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            .ok_or_else(bad)?;
        if state == "0A" && !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

/// Listening ports from both tables; `Err` only when neither is readable.
pub fn read_listening(root: &Root) -> Result<Vec<u16>, String> {
    let mut any = false;
    let mut ports = Vec::new();
    for p in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(t) = root.read(p) {
            any = true;
            for port in parse_listening(&t).map_err(|e| format!("{p}: {e}"))? {
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
}
