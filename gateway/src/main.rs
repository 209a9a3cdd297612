//! The `medgw` executable: the command line is parsed and each command run by its module in
//! `medgw::cli`. Everything else is in the library.

fn main() -> std::process::ExitCode {
    medgw::cli::main()
}
