//! Memory facts from `/proc/meminfo` (`Key:   value kB` lines).

use crate::sys::Root;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub total_bytes: u64,
    pub available_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
}

/// Parse `/proc/meminfo`. `MemTotal` is required; other keys are optional.
pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    let mut total = None;
    let mut info = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut info.available_bytes,
            "SwapTotal" => &mut info.swap_total_bytes,
            "SwapFree" => &mut info.swap_free_bytes,
            _ => continue,
        };
        *slot = Some(parse_value(key.trim(), rest)?);
    }
    info.total_bytes = total.ok_or("no MemTotal line")?;
    if info.total_bytes == 0 {
        return Err("MemTotal is 0".to_string());
    }
    Ok(info)
}

fn parse_value(key: &str, rest: &str) -> Result<u64, String> {
    let mut it = rest.split_whitespace();
    let n = it
        .next()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| format!("bad {key} value {:?}", rest.trim()))?;
    let mult = match it.next() {
        Some("kB") | Some("KB") | Some("kb") => 1024,
        None => 1,
        Some(u) => return Err(format!("unknown unit {u:?} for {key}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{key} value overflows"))
}

pub fn read(root: &Root) -> Result<MemInfo, String> {
    let text = root
        .read("/proc/meminfo")
        .map_err(|e| format!("/proc/meminfo: {}", crate::error::io_text(&e)))?;
    parse_meminfo(&text).map_err(|e| format!("/proc/meminfo: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_cases() {
        let good = "MemTotal:        8029460 kB\nMemFree:  1 kB\nMemAvailable:    5000000 kB\nSwapTotal:             0 kB\nSwapFree: 0 kB\n";
        let m = parse_meminfo(good).expect("good meminfo");
        assert_eq!(m.total_bytes, 8_029_460 * 1024);
        assert_eq!(m.available_bytes, Some(5_000_000 * 1024));
        assert_eq!(m.swap_total_bytes, Some(0));

        let bad: &[(&str, &str)] = &[
            ("", "no MemTotal line"),
            ("MemFree: 1 kB\n", "no MemTotal line"),
            ("MemTotal: lots kB\n", "bad MemTotal value \"lots kB\""),
            ("MemTotal:\n", "bad MemTotal value \"\""),
            ("MemTotal: -5 kB\n", "bad MemTotal value \"-5 kB\""),
            ("MemTotal: 5 MB\n", "unknown unit \"MB\" for MemTotal"),
            ("MemTotal: 0 kB\n", "MemTotal is 0"),
            (
                "MemTotal: 99999999999999999 kB\n",
                "MemTotal value overflows",
            ),
            ("MemTotal: 8 kB\nSwapTotal: x kB\n", "bad SwapTotal value \"x kB\""),
        ];
        for (input, want) in bad {
            assert_eq!(parse_meminfo(input), Err(want.to_string()), "input {input:?}");
        }
        // A truncated file that still has MemTotal is usable.
        let m = parse_meminfo("MemTotal: 2048 kB\nMemFr").expect("truncated");
        assert_eq!(m.total_bytes, 2048 * 1024);
    }
}
