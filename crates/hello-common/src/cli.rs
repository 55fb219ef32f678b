//! The services' command line: they are configured by environment variables, so the only
//! arguments are their few subcommands. `--help` prints what they take; anything else stops with
//! that text and exit code 2, instead of starting a server nobody asked for.

/// Exits 0 after printing `usage` for `-h`, `--help` or `help`; exits 2 with `usage` for a first
/// argument that is none of `subcommands`; returns otherwise (no argument, or a subcommand).
pub fn check_arguments(usage: &str, subcommands: &[&str]) {
    let first = std::env::args().nth(1);
    match first.as_deref() {
        None => {}
        Some("-h" | "--help" | "help") => {
            println!("{usage}");
            std::process::exit(0);
        }
        Some(argument) if subcommands.contains(&argument) => {}
        Some(argument) => {
            eprintln!("error: unknown argument {argument:?}\n\n{usage}");
            std::process::exit(2);
        }
    }
}
