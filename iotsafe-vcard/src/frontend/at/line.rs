//! Splitting the host's bytes into command lines.

/// One line taken from the host.
pub(crate) struct Line {
    pub text: Vec<u8>,
    /// The byte that ended it (echoed back).
    pub terminator: u8,
    /// The line was longer than allowed; `text` holds its start only.
    pub overflowed: bool,
}

/// Collects bytes into lines ending in `\r`, `\n` or `\r\n` (the `\n` of a `\r\n` pair is
/// swallowed, not taken for an empty line), with a bound on the line length.
#[derive(Default)]
pub(crate) struct LineBuffer {
    text: Vec<u8>,
    overflowed: bool,
    after_cr: bool,
}

impl LineBuffer {
    /// How many bytes of the current (unfinished) line are held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.text.len()
    }

    /// Takes one byte; a finished line comes back.
    pub fn push(&mut self, byte: u8, max_line: usize) -> Option<Line> {
        let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
        match byte {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => Some(Line {
                text: std::mem::take(&mut self.text),
                terminator: byte,
                overflowed: std::mem::take(&mut self.overflowed),
            }),
            _ if self.text.len() >= max_line => {
                self.overflowed = true;
                None
            }
            _ => {
                self.text.push(byte);
                None
            }
        }
    }
}
