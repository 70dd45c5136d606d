//! TEMP main for the serve branch; the real CLI lives elsewhere and replaces this file.
use clap::Parser;

#[derive(Parser)]
#[command(name = "staticd", version)]
enum Cli {
    /// Serve STATIC_ROOT over HTTP.
    Serve(staticd::serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Serve(args) => staticd::serve::run(args),
    }
}
