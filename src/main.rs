#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    otvi_server::Cli::new(otvi::PROVIDERS)
        .demo(otvi_mocks::demo::start)
        .run()
}
