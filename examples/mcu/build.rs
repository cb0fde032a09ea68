//! Puts `memory.x` where the linker finds it and links with cortex-m-rt's `link.x`.
//!
//! The link arguments are given here rather than in `.cargo/config.toml`'s `rustflags` so that a
//! `RUSTFLAGS` variable in the environment (which replaces those) cannot drop them.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=--nmagic");
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
