//! `instructmol`: command-line entry point (argument parsing and dispatch only).

use clap::Parser;
use instructmol::cli::{Cli, Command};

/// Training allocates and frees tensors of megabytes many times per step. glibc's allocator
/// hands such blocks back to the OS and page-faults (and zeroes) them in again; mimalloc,
/// told never to purge freed memory, reuses them. This halved a CPU LoRA step here
/// (scripts/bench/lora_step.py).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3 (libmimalloc-sys 0.1.49's `mimalloc.h`); -1 = never purge.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // SAFETY: setting an option is a plain store read by later frees; nothing else runs yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
