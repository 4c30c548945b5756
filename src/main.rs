fn main() -> std::process::ExitCode {
    otvi::cli::main()
}
