//! Build facts embedded by `build.rs`, and `outpost --version [--json]`.

use miniserde::Serialize;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_REV: &str = env!("OUTPOST_GIT_REV");
pub const TARGET: &str = env!("OUTPOST_TARGET");
const BUILD_EPOCH_STR: &str = env!("OUTPOST_BUILD_EPOCH");

/// The version this process reports and upgrades from: `VERSION`, or with
/// the `test-hooks` feature `OUTPOST_TEST_VERSION` (tests stand in a second
/// release with a wrapper script that sets it; release builds never read it).
pub fn running() -> String {
    #[cfg(feature = "test-hooks")]
    if let Ok(v) = std::env::var("OUTPOST_TEST_VERSION") {
        if !v.is_empty() {
            return v;
        }
    }
    VERSION.to_string()
}

/// The build time in Unix seconds (0 when unknown). A wall clock earlier than
/// this cannot be right.
pub fn build_epoch() -> u64 {
    BUILD_EPOCH_STR.parse().unwrap_or(0)
}

/// The build time as RFC 3339 UTC.
pub fn build_date() -> String {
    crate::timefmt::rfc3339(build_epoch())
}

/// `outpost/<version>`, the HTTP user agent.
pub fn user_agent() -> String {
    format!("outpost/{VERSION}")
}

pub fn text() -> String {
    format!(
        "outpost {} (rev {GIT_REV}, {TARGET}, built {})\n",
        running(),
        build_date()
    )
}

#[derive(Serialize)]
struct Json {
    schema: &'static str,
    version: String,
    git_rev: &'static str,
    target: &'static str,
    build_date: String,
}

pub fn json() -> String {
    let j = Json {
        schema: "outpost.version/v1",
        version: running(),
        git_rev: GIT_REV,
        target: TARGET,
        build_date: build_date(),
    };
    let mut s = miniserde::json::to_string(&j);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn build_facts_present() {
        assert!(super::build_epoch() > 1_600_000_000, "build epoch missing");
        assert!(
            super::build_date().ends_with('Z'),
            "{}",
            super::build_date()
        );
        assert!(super::text().starts_with("outpost 0."), "{}", super::text());
    }
}
