//! The `iotsafe` command-line tool.
#![forbid(unsafe_code)]

fn main() {
    println!("iotsafe: not yet");
}
