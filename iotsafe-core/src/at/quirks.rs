//! What real modems do differently when they carry APDUs, as data.
//!
//! The parser tolerates every reading quirk below for every modem, always (missing quotes, lower
//! case, URCs, split reads, several information lines of which the last counts; a length that
//! disagrees with the hex is refused, since it means a cut line). So [`ModemQuirks`] holds only
//! flags that change what the transport *sends* or *decides*; the table also records what was
//! seen where, including what needs no flag.
//!
//! | Modem (match on `AT+CGMM`) | Answer shape | `61xx` | Quirk and what the transport does | Max APDU | Source |
//! |---|---|---|---|---|---|
//! | generic 27.007 modem | `+CSIM: <n>,"<HEX>"` | passed through | none | 261 B | 27.007 §8.17, §8.45 |
//! | Sequans GMS01Q / Monarch (`GM01Q`, `GMS01Q`) | hex **without quotes**; may prefix a stale `+CSIM:` line | truncates long answers instead | no flag: the parser accepts unquoted hex from every modem and the transport always takes the **last** `+CSIM:` line before `OK` (with a warning) | 261 B | Orange IoT SAFE Arduino backend |
//! | u-blox SARA (`SARA-`) | quoted | passed through (host sends GET RESPONSE) | the answer line may come late (Arduino MKR needs a second read): after a bare `OK` the transport waits [`ModemQuirks::late_answer_grace`] for the `+CSIM:` line | 261 B | Orange IoT SAFE Arduino backend |
//! | Quectel EG95 (`EG95`) | quoted | passed through | `+CME ERROR: 0` to SELECT over AT+CSIM: `AtMode::Auto` prefers AT+CCHO/AT+CGLA ([`ModemQuirks::prefer_logical_channel_commands`]) | 261 B | atsign at_client_sdk #850 |
//! | wolfSSL-style emulators (`IOTSAFE-SIM`) | quoted; bare `OK` for Init/close commands | passed through | sends the width-3 length `AT+CSIM= 24,"…"` ([`ModemQuirks::width3_length`]); a bare `OK` reads as `9000` ([`ModemQuirks::bare_ok_is_9000`]) | 261 B | wolfSSL `iotsafe.c`, m33mu simulator |
//!
//! The `61xx` column needs no flag either: whichever way a modem handles `61xx`, the card
//! session's link sends GET RESPONSE when it sees one.
//!
//! Add a modem by adding a [`ModemQuirks`] constant to [`KNOWN_MODEMS`]; unknown modems get
//! [`ModemQuirks::GENERIC`].

use core::time::Duration;

/// Behaviour flags of one modem family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModemQuirks {
    /// Human-readable family name.
    pub name: &'static str,
    /// Substrings of the `AT+CGMM` (model) answer that identify the family, compared
    /// case-insensitively. Empty for [`ModemQuirks::GENERIC`].
    pub model_markers: &'static [&'static str],
    /// The modem refuses SELECT over AT+CSIM (e.g. `+CME ERROR: 0`): prefer AT+CCHO/AT+CGLA.
    pub prefer_logical_channel_commands: bool,
    /// After a bare `OK` with no information line, wait this long for a late `+CSIM:`/`+CGLA:` line.
    pub late_answer_grace: Duration,
    /// A bare `OK` with no information line means status word `9000` (emulators that skip the
    /// `+CSIM:` line for Init/close commands). Off for real modems: there it is a protocol error.
    pub bare_ok_is_9000: bool,
    /// Write the length right-aligned in three characters: `AT+CSIM= 24,"…"`.
    pub width3_length: bool,
    /// Longest command APDU (header + data + Le) the modem forwards.
    pub max_apdu: usize,
}

impl ModemQuirks {
    /// A 27.007-conforming modem.
    pub const GENERIC: ModemQuirks = ModemQuirks {
        name: "generic 27.007 modem",
        model_markers: &[],
        prefer_logical_channel_commands: false,
        late_answer_grace: Duration::from_millis(300),
        bare_ok_is_9000: false,
        width3_length: false,
        max_apdu: 261,
    };

    /// Sequans GMS01Q (Monarch): hex without quotes and stale answer lines, both of which the
    /// parser takes from any modem. Listed so that logs and the transport's description name it.
    pub const SEQUANS_GMS01Q: ModemQuirks = ModemQuirks {
        name: "Sequans GMS01Q",
        model_markers: &["GMS01Q", "GM01Q"],
        ..ModemQuirks::GENERIC
    };

    /// u-blox SARA family (Arduino MKR boards): `61xx` passed through, answers sometimes late.
    pub const UBLOX_SARA: ModemQuirks = ModemQuirks {
        name: "u-blox SARA",
        model_markers: &["SARA-"],
        late_answer_grace: Duration::from_millis(1000),
        ..ModemQuirks::GENERIC
    };

    /// Quectel EG95: `+CME ERROR: 0` to SELECT over AT+CSIM.
    pub const QUECTEL_EG95: ModemQuirks = ModemQuirks {
        name: "Quectel EG95",
        model_markers: &["EG95"],
        prefer_logical_channel_commands: true,
        ..ModemQuirks::GENERIC
    };

    /// Emulators written for wolfSSL's IoT SAFE port: width-3 length, bare `OK` for Init commands.
    pub const WOLFSSL_EMULATOR: ModemQuirks = ModemQuirks {
        name: "wolfSSL-style IoT SAFE emulator",
        model_markers: &["IOTSAFE-SIM"],
        bare_ok_is_9000: true,
        width3_length: true,
        ..ModemQuirks::GENERIC
    };

    /// The quirks of the family whose marker appears in `model` (the `AT+CGMM` answer), or
    /// [`ModemQuirks::GENERIC`].
    pub fn for_model(model: &str) -> &'static ModemQuirks {
        let model = model.to_ascii_uppercase();
        KNOWN_MODEMS
            .iter()
            .find(|q| {
                q.model_markers
                    .iter()
                    .any(|m| model.contains(&m.to_ascii_uppercase()))
            })
            .unwrap_or(&ModemQuirks::GENERIC)
    }

    /// Largest command data field that fits in [`ModemQuirks::max_apdu`] with a short header and Le.
    pub fn max_command_data(&self) -> usize {
        self.max_apdu.saturating_sub(6).clamp(1, 255)
    }
}

impl Default for ModemQuirks {
    fn default() -> Self {
        ModemQuirks::GENERIC
    }
}

/// Every modem family with known quirks, checked in order by [`ModemQuirks::for_model`].
pub const KNOWN_MODEMS: &[ModemQuirks] = &[
    ModemQuirks::SEQUANS_GMS01Q,
    ModemQuirks::UBLOX_SARA,
    ModemQuirks::QUECTEL_EG95,
    ModemQuirks::WOLFSSL_EMULATOR,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_model() {
        assert_eq!(ModemQuirks::for_model("EG95").name, "Quectel EG95");
        assert_eq!(ModemQuirks::for_model("sara-r410m-02b").name, "u-blox SARA");
        assert_eq!(ModemQuirks::for_model("GMS01Q").name, "Sequans GMS01Q");
        assert_eq!(
            ModemQuirks::for_model("whatever").name,
            "generic 27.007 modem"
        );
        assert_eq!(ModemQuirks::GENERIC.max_command_data(), 255);
    }
}
