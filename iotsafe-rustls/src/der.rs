//! Reading DER elements: the few lines of DER walking that code without an X.509 parser needs
//! (a certificate file padded on the card, the CMS of an EST answer, a certificate's subject on
//! a microcontroller). Lengths must be definite and minimal, as DER says.

/// One DER element of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    /// Its tag byte (single-byte tags only: all that certificates and CMS use).
    pub tag: u8,
    /// Its contents.
    pub contents: &'a [u8],
    /// The whole element: tag, length and contents.
    pub whole: &'a [u8],
    /// What follows it in the input.
    pub rest: &'a [u8],
}

/// The element `input` starts with; the error says what is wrong.
pub fn element(input: &[u8]) -> Result<Element<'_>, &'static str> {
    let (&tag, rest) = input
        .split_first()
        .ok_or("ends where an element should start")?;
    let (&first, rest) = rest.split_first().ok_or("ends inside a length")?;
    let (length, header) = match first {
        0x00..=0x7F => (usize::from(first), 2),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7F);
            let bytes = rest.get(..n).ok_or("ends inside a length")?;
            if bytes[0] == 0 || (n == 1 && bytes[0] < 0x80) {
                return Err("a length that is not minimal (not DER)");
            }
            let length = bytes.iter().fold(0usize, |l, b| (l << 8) | usize::from(*b));
            (length, 2 + n)
        }
        _ => return Err("an indefinite or oversized length (not DER)"),
    };
    let end = header
        .checked_add(length)
        .filter(|end| *end <= input.len())
        .ok_or("shorter than the length it announces")?;
    Ok(Element {
        tag,
        contents: &input[header..end],
        whole: &input[..end],
        rest: &input[end..],
    })
}
