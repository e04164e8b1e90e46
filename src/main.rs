//! `instructmol`: command-line entry point (argument parsing and dispatch only).

use clap::Parser;
use instructmol::cli::{Cli, Command};

/// mimalloc, set up by `init_cpu_runtime` (see there why).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    instructmol::model::device::init_cpu_runtime();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Featurize(args) => instructmol::cli::featurize::run(args),
        Command::Convert(args) => instructmol::cli::convert::run(args),
        Command::Similarity(args) => instructmol::cli::similarity::run(args),
        Command::Eval(args) => instructmol::cli::eval::run(args),
        Command::Data(args) => instructmol::cli::data::run(args),
        Command::Pretrain(args) => {
            instructmol::cli::train::run(instructmol::train::trainer::Stage::Pretrain, args)
        }
        Command::Finetune(args) => {
            instructmol::cli::train::run(instructmol::train::trainer::Stage::Finetune, args)
        }
        Command::Generate(args) => instructmol::cli::generate::run(args),
        Command::Chat(args) => instructmol::cli::chat::run(args),
        Command::Device(args) => instructmol::cli::device::run(args),
        Command::Bench(args) => instructmol::cli::bench::run(args),
        Command::Tokenize(args) => instructmol::cli::tokenize::run(args),
        Command::Export(args) => instructmol::cli::export::run(args),
        Command::Quantize(args) => instructmol::cli::quantize::run(args),
        Command::Serve(args) => instructmol::cli::serve::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): end quietly, as Unix tools do.
        Err(e) if is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Whether an error comes from writing to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
