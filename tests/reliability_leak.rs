//! The leak scan (`common/leak.rs`) over what a reliability run produces:
//! `/proc/<pid>/cmdline` and `/proc/<pid>/environ` of a running `outpost
//! run` (registered, checking in), its stdout and stderr, the output of
//! check-ins SIGKILLed at every rename/write (strace injection, when
//! available) and every world-readable file of the device tree afterwards,
//! temp files of killed writers included. Neither the registration token
//! nor the device credential may appear in any form.

mod common;
use common::agent::HubAndDevice;
use common::fault::Scratch;
use common::kill::{self, At};
use common::leak;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn no_secret_in_proc_output_or_readable_files() {
    let scratch = Scratch::new("leak");
    // The hub lives to the end of the test (dropping it stops it).
    let HubAndDevice {
        hub: _hub,
        token,
        device: d,
        ..
    } = HubAndDevice::start(scratch.path(), "edge-leak", "0.2");
    let mut child = d
        .cmd(&["run"])
        .env("OUTPOST_TEST_MIN_INTERVAL_MS", "100")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    // Registered and checking in (hang guard 60 s).
    let t0 = Instant::now();
    while !d.file("credential").exists() || !d.file("status.json").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "run did not register"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let credential = std::fs::read_to_string(d.file("credential"))
        .expect("credential")
        .trim()
        .to_string();
    let secrets: Vec<(&str, &str)> = vec![("token", &token), ("credential", &credential)];
    let pid = child.id();
    let mut scanned = 0;
    for what in ["cmdline", "environ"] {
        let raw = std::fs::read(format!("/proc/{pid}/{what}")).expect("read /proc");
        let text = String::from_utf8_lossy(&raw).replace('\0', " ");
        leak::assert_clean(
            "running outpost run",
            &format!("/proc/{pid}/{what}"),
            &text,
            &secrets,
        );
        scanned += raw.len();
    }
    std::thread::sleep(Duration::from_millis(600));
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    for (what, b) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        leak::assert_clean("outpost run", what, &String::from_utf8_lossy(b), &secrets);
        scanned += b.len();
    }

    // Check-ins killed at every rename and write: their output, and the
    // temp files they leave, hold no secret where others can read it.
    let mut kills = 0;
    if kill::available() {
        for sys in ["rename", "write", "fsync"] {
            for n in 1..=6 {
                let mut c = d.cmd(&["checkin"]);
                c.env("OUTPOST_TEST_MIN_INTERVAL_MS", "100");
                let (killed, _) = kill::kill(&c, &At::Call(sys, n));
                kills += usize::from(killed);
            }
        }
    } else {
        eprintln!("strace unusable: the killed check-ins part is SKIPPED");
    }
    let (code, o, e) = d.run(&["checkin"]);
    assert_eq!(code, 0, "checkin after the kills: {e}");
    leak::assert_clean("checkin", "output", &format!("{o}{e}"), &secrets);
    for f in leak::world_readable_files(&d.root) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).expect("read")).into_owned();
        leak::assert_clean("device tree", &f.display().to_string(), &text, &secrets);
        scanned += text.len();
    }
    eprintln!(
        "RESULT leak scan: {scanned} bytes scanned, {kills} killed check-ins, no secret found"
    );
}
