//! The `outpost` device binary: parse argv, set up logging, dispatch, and map
//! the result to the exit status. The only place that calls `process::exit`
//! and names `simple_logger`.

use outpost::error::Code;

fn main() {
    let inv = match outpost::cli::parse(std::env::args_os().skip(1)) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("outpost: {e}");
            std::process::exit(e.code.as_i32());
        }
    };
    init_logging(inv.verbosity);
    let code = match outpost::commands::run(inv.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("outpost: {e}");
            e.code
        }
    };
    std::process::exit(code.as_i32());
}

fn init_logging(verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-2 => log::LevelFilter::Off,
        -1 => log::LevelFilter::Error,
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    // A logger already set is harmless; nothing else to do about it.
    // ureq-proto hex-dumps whole requests (Authorization included) at trace
    // level: never let it below debug, whatever -v asks for.
    let _ = simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_module_level("ureq_proto", level.min(log::LevelFilter::Debug))
        .with_module_level("ureq", level.min(log::LevelFilter::Debug))
        .init();
    let _ = Code::Ok;
}
