//! What a subcommand hands back: text for people, JSON for scripts, and whether it succeeded.

use serde_json::Value;

/// A subcommand's result.
pub struct Output {
    /// Human-readable text (printed as is, newline added if missing).
    pub text: String,
    /// Machine-readable form (`--json`).
    pub json: Value,
    /// Exit status 0 when true (`verify` reports a bad signature with `false`).
    pub success: bool,
}

impl Output {
    /// A successful output.
    pub fn new(text: impl Into<String>, json: Value) -> Output {
        Output {
            text: text.into(),
            json,
            success: true,
        }
    }

    /// Prints the output to stdout in the requested form.
    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&self.json).unwrap_or_else(|_| "null".into())
            );
        } else if !self.text.is_empty() {
            if self.text.ends_with('\n') {
                print!("{}", self.text);
            } else {
                println!("{}", self.text);
            }
        }
    }
}
