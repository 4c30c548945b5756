mod providers {
    otvi_runtime::include_providers!();
}

fn main() -> std::process::ExitCode {
    otvi_server::Cli::new(providers::PROVIDERS).run()
}
