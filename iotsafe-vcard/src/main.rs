//! `iotsafe-vcard`: the virtual IoT SAFE card as a program (placeholder until the applet lands).
#![forbid(unsafe_code)]

fn main() {
    eprintln!("iotsafe-vcard: the applet is not wired yet");
    std::process::exit(2);
}
