//! `--timeline FILE.svg`: a picture of where a handshake's time goes. A [`Timeline`] records,
//! relative to one start instant, every APDU (from the card's trace sink), every TCP connect,
//! socket write and socket read (through [`RecordedIo`]), and named phases; [`Recording`] splits
//! each APDU into serial time (its AT text on the modem's UART) and card time, finds the network
//! round trips, and calls the rest host work; [`draw`] draws it all with plotters.

mod analysis;
mod draw;
mod net;
mod record;
mod span;
#[cfg(test)]
mod tests;

pub use analysis::{RoundTrip, Totals};
pub use draw::draw;
pub use net::RecordedIo;
pub use record::{ApduEvent, NetEvent, NetKind, Phase, PhaseGuard, Recording, Timeline};
pub use span::Span;

use std::path::PathBuf;
use std::sync::Arc;

/// Phase: opening the card (channel, SELECT, applet information).
pub const OPEN_CARD: &str = "open card";
/// Phase: reading the certificate from the card and building the TLS configuration.
pub const BUILD_CONFIG: &str = "read certificate / build config";
/// Phase: the TCP connect.
pub const TCP_CONNECT: &str = "TCP connect";
/// Phase: the TLS handshake (its own subtotal is drawn).
pub const HANDSHAKE: &str = "TLS handshake";
/// Phase: waiting for the server to refuse the certificate after the handshake.
pub const CONFIRM: &str = "confirm";

/// The modem UART's usual rate.
pub const DEFAULT_BAUD: u32 = 115_200;

/// `--timeline FILE.svg` and `--baud N`, for the subcommands that run handshakes.
#[derive(Debug, Clone, clap::Args)]
pub struct TimelineFlags {
    /// Draw the handshake (`bench`: its first) as a timeline in this SVG file: each APDU (serial
    /// and card time), network round trips, host work, with totals.
    #[arg(long, value_name = "FILE.svg")]
    pub timeline: Option<PathBuf>,
    /// The modem UART's rate, used to split each APDU's time into serial and card time when the
    /// transport reports the bytes it moved (AT modems); PC/SC and in-process cards show the
    /// whole APDU as card time.
    #[arg(
        long,
        value_name = "N",
        default_value_t = DEFAULT_BAUD,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub baud: u32,
}

impl TimelineFlags {
    /// A recorder when `--timeline` was given.
    pub fn recorder(&self) -> Option<Arc<Timeline>> {
        self.timeline.as_ref().map(|_| Timeline::new(self.baud))
    }
}

impl Timeline {
    /// Stops recording and draws what was recorded into `path` (see [`draw()`]).
    pub fn finish(&self, path: &std::path::Path, title: &str) -> Result<(), crate::CliError> {
        self.stop();
        draw(&self.recording(), path, title)
    }
}
