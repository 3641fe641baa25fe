//! Active swap from `/proc/swaps` (header line, then one line per area).
//!
//! Must not change swap; it only reads.

use crate::sys::Root;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwapArea {
    pub name: String,
    pub kind: String,
    pub size_bytes: Option<u64>,
}

/// Parse `/proc/swaps`. Every non-empty line after the header is an active
/// area, even when cut short (type `?`); a non-numeric size stays `None`.
pub fn parse_swaps(text: &str) -> Vec<SwapArea> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next()?;
            let kind = f.next().unwrap_or("?");
            let size_bytes = f
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .and_then(|k| k.checked_mul(1024));
            Some(SwapArea {
                name: super::mountinfo::unescape(name),
                kind: kind.to_string(),
                size_bytes,
            })
        })
        .collect()
}

pub fn read(root: &Root) -> Result<Vec<SwapArea>, String> {
    let t = root
        .read("/proc/swaps")
        .map_err(|e| format!("/proc/swaps: {}", crate::error::io_text(&e)))?;
    Ok(parse_swaps(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps() {
        let t = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/sda3                               partition\t8388604\t\t0\t\t-2\n/swap\\040file file x 0 -3\nlonely\n";
        let s = parse_swaps(t);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(
            (s[2].name.as_str(), s[2].kind.as_str()),
            ("lonely", "?"),
            "a cut-off line is still an active area"
        );
        assert_eq!(
            s[0],
            SwapArea {
                name: "/dev/sda3".into(),
                kind: "partition".into(),
                size_bytes: Some(8388604 * 1024)
            }
        );
        assert_eq!(
            (s[1].name.as_str(), s[1].size_bytes),
            ("/swap file", None),
            "non-numeric size"
        );
        assert_eq!(
            parse_swaps("Filename Type Size Used Priority\n"),
            Vec::<SwapArea>::new()
        );
        assert_eq!(parse_swaps(""), Vec::<SwapArea>::new());
    }
}
