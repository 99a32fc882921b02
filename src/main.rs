//! The `corelog` binary: parse the command line, hand over to the library.

/// mimalloc keeps freed large buffers (1 MiB read and write chunks) for
/// reuse instead of returning them to the kernel, which would fault in
/// zeroed pages on every read (see perf/reports/2026-11-23-storage.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    corelog::alloc::tune();
    std::process::exit(corelog::cli::main());
}
