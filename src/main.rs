//! The `dsqlsh` binary: everything lives in the library so tests and benchmarks share it.

fn main() {
    std::process::exit(dsqlsh::run(std::env::args_os()));
}
