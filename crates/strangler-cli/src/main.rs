//! The `strangler` command. `main` stays thin: parse, load config, dispatch, map errors to exits.

mod cli;
mod cmd;
mod context;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            if let Some(nb) = err.downcast_ref::<cmd::NotBuilt>() {
                eprintln!("{nb}");
                return ExitCode::from(cmd::NotBuilt::EXIT_CODE);
            }
            eprintln!("error: {}", cmd::error_text(&err));
            ExitCode::from(1)
        }
    }
}
