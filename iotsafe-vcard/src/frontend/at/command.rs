//! Parsing one AT command line, leniently where real hosts are sloppy and strictly everywhere else.
//!
//! Lenient: upper or lower case command names and hex, spaces after `=` and around commas
//! (wolfSSL writes `AT+CSIM= 24,"…"`, atsign `AT+CSIM=10, "…"`), a missing pair of quotes around
//! hex. Strict: the announced length must equal the number of hex characters, hex must be whole
//! bytes, numbers must fit. Anything else is [`Command::Malformed`] and is answered `ERROR`.

use crate::hex;

/// One parsed command line (without the `AT` prefix rules spelled out again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `AT`
    Attention,
    /// `ATE0` / `ATE` (false) and `ATE1` (true).
    Echo(bool),
    /// `ATZ` and `AT&F`: back to defaults.
    Reset,
    /// `ATI`: identification.
    Identify,
    /// `AT+CMEE=<n>`: how errors are reported.
    ReportErrors(u8),
    /// `AT+CPIN?`
    PinStatus,
    /// `AT+CSIM=?`, `AT+CCHO=?`, `AT+CGLA=?`, `AT+CCHC=?`: "is this command supported".
    Test(TestedCommand),
    /// `AT+CSIM=<len>,"<hex>"`: an APDU for the basic channel, passed through as it is.
    Csim(Vec<u8>),
    /// `AT+CCHO="<AID>"`: open a logical channel and select this application on it.
    Ccho(Vec<u8>),
    /// `AT+CGLA=<sid>,<len>,"<hex>"`: an APDU for the channel of session `sid`.
    Cgla(u32, Vec<u8>),
    /// `AT+CCHC=<sid>`: close the channel of session `sid`.
    Cchc(u32),
    /// `AT+CFUN=<fun>[,<rst>]`: functionality level 0 (SIM off), 1 (full) or 4 (radio off); with
    /// `<rst>` = 1 the modem resets first, the SIM with it.
    SetFunctionality {
        /// The level: 0, 1 or 4.
        fun: u8,
        /// `<rst>` = 1: reset (power-cycle) before setting the level.
        reset: bool,
    },
    /// `AT+CFUN?`
    FunctionalityStatus,
    /// `AT#CHANNELS?`: this emulation's own query for the card's count of open logical channels.
    ChannelCount,
    /// Starts with `AT` but is not a command this modem knows.
    Unknown,
    /// A known command with bad arguments, or a line that does not start with `AT`.
    Malformed,
}

/// Which command a `=?` test command asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestedCommand {
    /// `AT+CSIM=?`
    Csim,
    /// `AT+CCHO=?`, `AT+CGLA=?` or `AT+CCHC=?`
    LogicalChannels,
    /// `AT+CFUN=?`
    Functionality,
}

/// The longest AID `AT+CCHO` takes (ISO 7816-4: 5 to 16 bytes; shorter is accepted).
const MAX_AID: usize = 16;

/// Parses one line (terminator already removed). Never panics.
pub fn parse(line: &[u8]) -> Command {
    let Ok(text) = std::str::from_utf8(line) else {
        return Command::Malformed;
    };
    let text = text.trim();
    let Some(rest) = strip_prefix_ci(text, "AT") else {
        return Command::Malformed;
    };
    let upper = rest.to_ascii_uppercase();
    match upper.as_str() {
        "" => return Command::Attention,
        "E" | "E0" => return Command::Echo(false),
        "E1" => return Command::Echo(true),
        "Z" | "Z0" | "&F" | "&F0" => return Command::Reset,
        "I" | "I0" => return Command::Identify,
        "+CPIN?" => return Command::PinStatus,
        "+CFUN?" => return Command::FunctionalityStatus,
        "#CHANNELS?" => return Command::ChannelCount,
        _ => {}
    }
    if let Some(args) = strip_prefix_ci(rest, "+CSIM") {
        return with_args(args, TestedCommand::Csim, parse_csim);
    }
    if let Some(args) = strip_prefix_ci(rest, "+CCHO") {
        return with_args(args, TestedCommand::LogicalChannels, parse_ccho);
    }
    if let Some(args) = strip_prefix_ci(rest, "+CGLA") {
        return with_args(args, TestedCommand::LogicalChannels, parse_cgla);
    }
    if let Some(args) = strip_prefix_ci(rest, "+CCHC") {
        return with_args(args, TestedCommand::LogicalChannels, parse_cchc);
    }
    if let Some(args) = strip_prefix_ci(rest, "+CFUN") {
        return with_args(args, TestedCommand::Functionality, parse_cfun);
    }
    if let Some(args) = strip_prefix_ci(rest, "+CMEE") {
        return match args.trim_start().strip_prefix('=').map(str::trim) {
            Some("0") => Command::ReportErrors(0),
            Some("1") => Command::ReportErrors(1),
            Some("2") => Command::ReportErrors(2),
            _ => Command::Malformed,
        };
    }
    Command::Unknown
}

/// Splits `=<args>` / `=?` after a command name.
fn with_args(
    args: &str,
    tested: TestedCommand,
    parse_args: fn(&str) -> Option<Command>,
) -> Command {
    let Some(args) = args.trim_start().strip_prefix('=') else {
        return Command::Malformed;
    };
    let args = args.trim();
    if args == "?" {
        return Command::Test(tested);
    }
    parse_args(args).unwrap_or(Command::Malformed)
}

fn parse_csim(args: &str) -> Option<Command> {
    let [len, hex] = split_args::<2>(args)?;
    Some(Command::Csim(counted_hex(len, hex)?))
}

fn parse_ccho(args: &str) -> Option<Command> {
    let [aid] = split_args::<1>(args)?;
    let aid = hex::decode(unquote(aid)?)?;
    (!aid.is_empty() && aid.len() <= MAX_AID).then_some(Command::Ccho(aid))
}

fn parse_cgla(args: &str) -> Option<Command> {
    let [sid, len, hex] = split_args::<3>(args)?;
    Some(Command::Cgla(number(sid)?, counted_hex(len, hex)?))
}

fn parse_cchc(args: &str) -> Option<Command> {
    let [sid] = split_args::<1>(args)?;
    Some(Command::Cchc(number(sid)?))
}

fn parse_cfun(args: &str) -> Option<Command> {
    let mut fields = args.split(',').map(str::trim);
    let fun = match fields.next()? {
        "0" => 0,
        "1" => 1,
        "4" => 4,
        _ => return None,
    };
    let reset = match fields.next() {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return None,
    };
    fields
        .next()
        .is_none()
        .then_some(Command::SetFunctionality { fun, reset })
}

/// `<len>,"<hex>"`: the length counts hex characters and must match; the APDU must not be empty.
fn counted_hex(len: &str, hex: &str) -> Option<Vec<u8>> {
    let len: usize = number(len)?.try_into().ok()?;
    let hex = unquote(hex)?;
    if len != hex.len() || hex.is_empty() {
        return None;
    }
    hex::decode(hex)
}

/// Splits on commas into exactly `N` trimmed fields (hex never contains a comma).
fn split_args<const N: usize>(args: &str) -> Option<[&str; N]> {
    let mut fields = args.split(',').map(str::trim);
    let out: [&str; N] = std::array::from_fn(|_| fields.next().unwrap_or(""));
    (fields.next().is_none() && out.iter().all(|f| !f.is_empty())).then_some(out)
}

/// A decimal number of at most 9 digits (so it fits a `u32` without overflow games).
fn number(field: &str) -> Option<u32> {
    if field.is_empty() || field.len() > 9 || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

/// Removes one pair of double quotes; quotes are optional, but must be balanced.
fn unquote(field: &str) -> Option<&str> {
    match (field.strip_prefix('"'), field.strip_suffix('"')) {
        (Some(_), Some(_)) if field.len() >= 2 => Some(&field[1..field.len() - 1]),
        (None, None) => Some(field),
        _ => None,
    }
}

/// `strip_prefix`, ignoring ASCII case.
fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Command {
        parse(line.as_bytes())
    }

    #[test]
    fn basic_commands() {
        assert_eq!(p("AT"), Command::Attention);
        assert_eq!(p("at"), Command::Attention);
        assert_eq!(p("ATE0"), Command::Echo(false));
        assert_eq!(p("ate1"), Command::Echo(true));
        assert_eq!(p("ATE"), Command::Echo(false));
        assert_eq!(p("AT+CMEE=2"), Command::ReportErrors(2));
        assert_eq!(p("AT+CMEE=7"), Command::Malformed);
        assert_eq!(p("AT+CPIN?"), Command::PinStatus);
        assert_eq!(p("AT+COPS?"), Command::Unknown);
        assert_eq!(p("HELLO"), Command::Malformed);
        assert_eq!(p(""), Command::Malformed);
    }

    #[test]
    fn csim_is_lenient_where_hosts_are_sloppy() {
        let apdu = vec![0x00, 0x70, 0x00, 0x00, 0x01];
        for line in [
            "AT+CSIM=10,\"0070000001\"",
            "AT+CSIM= 10,\"0070000001\"",
            "AT+CSIM=10, \"0070000001\"",
            "AT+CSIM = 10 , \"0070000001\" ",
            "at+csim=10,\"0070000001\"",
            "AT+CSIM=10,0070000001",
        ] {
            assert_eq!(p(line), Command::Csim(apdu.clone()), "{line}");
        }
        // wolfSSL's width-3 length.
        assert_eq!(
            p("AT+CSIM= 24,\"01a4040007a0000005590010\""),
            Command::Csim(vec![1, 0xA4, 4, 0, 7, 0xA0, 0, 0, 5, 0x59, 0, 0x10])
        );
        assert_eq!(p("AT+CSIM=?"), Command::Test(TestedCommand::Csim));
    }

    #[test]
    fn csim_is_strict_about_content() {
        for line in [
            "AT+CSIM=8,\"0070000001\"",
            "AT+CSIM=9,\"007000000\"",
            "AT+CSIM=10,\"007000000G\"",
            "AT+CSIM=0,\"\"",
            "AT+CSIM=10,\"0070000001",
            "AT+CSIM=10,\"0070000001\",5",
            "AT+CSIM=\"0070000001\"",
            "AT+CSIM=-10,\"0070000001\"",
            "AT+CSIM=99999999999999999999,\"00\"",
            "AT+CSIM",
            "AT+CSIM=",
        ] {
            assert_eq!(p(line), Command::Malformed, "{line}");
        }
    }

    #[test]
    fn logical_channel_commands() {
        assert_eq!(
            p("AT+CCHO=\"A0000005590010\""),
            Command::Ccho(vec![0xA0, 0, 0, 5, 0x59, 0, 0x10])
        );
        assert_eq!(p("AT+CCHO=\"\""), Command::Malformed);
        assert_eq!(
            p(&format!("AT+CCHO=\"{}\"", "00".repeat(17))),
            Command::Malformed
        );
        assert_eq!(
            p("AT+CGLA=3, 10,\"00c0000000\""),
            Command::Cgla(3, vec![0, 0xC0, 0, 0, 0])
        );
        assert_eq!(p("AT+CGLA=3,10"), Command::Malformed);
        assert_eq!(p("AT+CCHC=3"), Command::Cchc(3));
        assert_eq!(p("AT+CCHC=x"), Command::Malformed);
        assert_eq!(
            p("AT+CCHC=?"),
            Command::Test(TestedCommand::LogicalChannels)
        );
    }

    #[test]
    fn functionality_commands() {
        assert_eq!(
            p("AT+CFUN=1,1"),
            Command::SetFunctionality {
                fun: 1,
                reset: true
            }
        );
        assert_eq!(
            p("at+cfun=0"),
            Command::SetFunctionality {
                fun: 0,
                reset: false
            }
        );
        assert_eq!(
            p("AT+CFUN= 4 , 0"),
            Command::SetFunctionality {
                fun: 4,
                reset: false
            }
        );
        assert_eq!(p("AT+CFUN?"), Command::FunctionalityStatus);
        assert_eq!(p("AT+CFUN=?"), Command::Test(TestedCommand::Functionality));
        for bad in [
            "AT+CFUN=2",
            "AT+CFUN=1,2",
            "AT+CFUN=1,1,1",
            "AT+CFUN=",
            "AT+CFUN",
        ] {
            assert_eq!(p(bad), Command::Malformed, "{bad}");
        }
        assert_eq!(p("AT#CHANNELS?"), Command::ChannelCount);
    }

    #[test]
    fn never_panics_on_odd_text() {
        for line in [
            "AT+CSIM=\"",
            "AT+CSIM=,",
            "ATé",
            "AT+CCHO=\"",
            "A",
            "\u{0}AT",
            "AT+C",
        ] {
            let _ = p(line);
        }
        let _ = parse(&[0xFF, 0xFE, b'A', b'T']);
    }
}
