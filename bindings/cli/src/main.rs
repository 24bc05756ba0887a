//! The `scdeep` binary: the command line of `scdeep_cli`.

fn main() {
    std::process::exit(scdeep_cli::main_with_args(std::env::args_os()));
}
