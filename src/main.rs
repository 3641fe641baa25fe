//! The `outpost` device binary: parse argv, set up logging, dispatch, and map
//! the result to the exit status. The only place that calls `process::exit`
//! and names `simple_logger`.

#![forbid(unsafe_code)]

use outpost::error::Code;

fn main() {
    let inv = match outpost::cli::parse(std::env::args_os().skip(1)) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("outpost: {e}");
            std::process::exit(e.code().as_i32());
        }
    };
    init_logging(inv.verbosity);
    let code = match outpost::commands::run(inv.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("outpost: {e}");
            e.code()
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
    // The logger passes everything up to trace; `log::set_max_level` is the
    // filter, so a command can move it once it has read `outpost.logLevel`.
    let _ = simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Trace)
        .with_module_level("ureq_proto", log::LevelFilter::Debug)
        .with_module_level("ureq", log::LevelFilter::Debug)
        .init();
    log::set_max_level(level);
    let _ = Code::Ok;
}
