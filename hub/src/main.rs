//! The `outpost-hub` binary (host-native only): a thin shell
//! over the `outpost_hub` library. The only place of the hub that calls
//! `process::exit` and sets up logging.

#![forbid(unsafe_code)]

fn main() {
    let _ = simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Warn)
        // RUST_LOG=info shows the cluster and rollout events.
        .env()
        .init();
    let code = outpost_hub::main(std::env::args_os().skip(1).collect());
    std::process::exit(code.as_i32());
}
