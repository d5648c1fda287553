#![forbid(unsafe_code)]

//! The `mirrorcast` command line: parse arguments, set up logs, run the subcommand, print
//! errors with the program's name. Arguments are in [`cli`], what each subcommand does in
//! [`commands`].

mod cli;
mod commands;
mod stored_progress;

use std::process::ExitCode;

use clap::Parser;
use mirrorcast::config;

use cli::{Cli, Commands, LogFormat, OffsetsCommand};
#[cfg(feature = "demo")]
use commands::demo;
use commands::{
    config_failure, consume, datagen, exit_with, http_access, load, load_to_run, run,
    translate_offsets,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's screen belongs to the regional consumers: only warnings unless asked.
    #[cfg(feature = "demo")]
    let default_level = if matches!(cli.command, Commands::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    #[cfg(not(feature = "demo"))]
    let default_level = "info";
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    match cli.command {
        Commands::Validate(args) => match load_to_run(&args) {
            Ok(config) => {
                print!("{}", config::describe(&config));
                ExitCode::SUCCESS
            }
            Err(errors) => config_failure(&errors),
        },
        Commands::Datagen(args) => exit_with(datagen(&args)),
        Commands::Consume(args) => exit_with(consume(&args)),
        #[cfg(feature = "demo")]
        Commands::Demo(args) => exit_with(demo(&args)),
        Commands::TranslateOffsets(args) => match load(&args.flow.config) {
            Ok(config) => exit_with(translate_offsets(config, &args)),
            Err(errors) => config_failure(&errors),
        },
        Commands::Offsets(command) => {
            let config = match &command {
                OffsetsCommand::List(a) => load(&a.flow.config),
                OffsetsCommand::Reset(a) => load(&a.flow.config),
                OffsetsCommand::Alter(a) => load(&a.flow.config),
            };
            match config {
                Ok(config) => exit_with(match &command {
                    OffsetsCommand::List(args) => stored_progress::list(&config, args),
                    OffsetsCommand::Reset(args) => stored_progress::reset(&config, args),
                    OffsetsCommand::Alter(args) => stored_progress::alter(&config, args),
                }),
                Err(errors) => config_failure(&errors),
            }
        }
        Commands::Run(args) => {
            match load_to_run(&args).and_then(|c| Ok((c, http_access(&args)?))) {
                Ok((config, access)) => {
                    let http = args.http.map(|addr| (addr, access));
                    exit_with(run(config, http, args.mm2_metrics))
                }
                Err(errors) => config_failure(&errors),
            }
        }
    }
}
