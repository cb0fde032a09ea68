//! Command-line syntax.

use crate::commands;
use clap::{Parser, Subcommand};
use iotsafe_cli::CardFlags;

/// Inspect and use a GSMA IoT SAFE card: keys, certificates, signatures, CSRs, and TLS 1.3
/// handshakes signed and key-exchanged on the card.
#[derive(Debug, Parser)]
#[command(name = "iotsafe", version, propagate_version = true)]
pub struct Cli {
    /// Card selection.
    #[command(flatten)]
    pub card: CardFlags,
    /// Print every APDU on stderr (secrets redacted).
    #[arg(long, global = true)]
    pub trace: bool,
    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List PC/SC readers and whether a card is present.
    Readers,
    /// Applet information: AID, channel, version, capabilities.
    Info,
    /// Table of the keys, files and secrets on the card with their attributes.
    Objects,
    /// Show or export a certificate stored on the card.
    Cert(commands::cert::Args),
    /// Print the public key of a key pair on the card.
    Pubkey(commands::pubkey::Args),
    /// Sign a file with a card key: DER ECDSA P-256 over SHA-256 of the input.
    Sign(commands::sign::Args),
    /// Verify a DER ECDSA signature with a card public key.
    Verify(commands::verify::Args),
    /// N random bytes from the card.
    Random(commands::random::Args),
    /// Generate a new key pair on the card (replaces the key in that slot).
    Keygen(commands::keygen::Args),
    /// A PKCS#10 certificate signing request, signed on the card.
    Csr(commands::csr::Args),
    /// A TLS 1.3 mutual-auth handshake with the card (like `openssl s_client`).
    Connect(commands::connect::Args),
    /// An operational certificate for a card key from an EST server (RFC 7030), or its renewal.
    Enroll(commands::enroll::Args),
    /// Card operations and handshakes per second, latency per operation.
    Bench(commands::bench::Args),
}
