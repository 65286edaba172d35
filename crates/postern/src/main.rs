// glibc's malloc showed as a sixth of the accept path's CPU (many small, short-lived
// allocations from many threads); mimalloc's per-thread free lists cost a fraction of that.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    postern::cli::run()
}
