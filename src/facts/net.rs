//! Listening TCP ports from `/proc/net/tcp` and `/proc/net/tcp6` (state `0A`).
//!
//! Must not open sockets or probe ports; it only reads the kernel tables.

use crate::sys::Root;

/// Ports in state LISTEN in one table. Damaged lines are skipped.
pub fn parse_listening(text: &str) -> Vec<u16> {
    let mut ports = Vec::new();
    for line in text.lines().skip(1) {
        let mut f = line.split_whitespace();
        let (Some(_sl), Some(local), Some(_remote), Some(state)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if state != "0A" {
            continue;
        }
        let Some((_, port)) = local.rsplit_once(':') else { continue };
        if let Ok(p) = u16::from_str_radix(port, 16) {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    ports
}

/// Listening ports from both tables; `Err` only when neither is readable.
pub fn read_listening(root: &Root) -> Result<Vec<u16>, String> {
    let mut any = false;
    let mut ports = Vec::new();
    for p in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(t) = root.read(p) {
            any = true;
            for port in parse_listening(&t) {
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
   3: garbage
   4: 00000000:ZZZZ 00000000:0000 0A
";
        assert_eq!(parse_listening(tcp), [2024, 2370]);
        let tcp6 = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:192B 00000000000000000000000000000000:0000 0A 00000000:00000000";
        assert_eq!(parse_listening(tcp6), [6443]);
        assert_eq!(parse_listening(""), Vec::<u16>::new());
    }
}
