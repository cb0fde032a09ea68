//! `iotsafe-vcard`: the virtual IoT SAFE card as a program.
//!
//! - `provision --state FILE --pki-out DIR`: a fresh card state with a device key made inside the
//!   card, and a test PKI around it; `--ephemeral-slots N` gives the card N volatile key pairs
//!   for ECDHE instead of one.
//! - `serve --state FILE [front ends]`: plugs the card into pcscd through vpcd, and/or puts it
//!   behind an emulated AT modem on a pty or a TCP port, until SIGINT/SIGTERM.
//!
//! Machine-readable lines go to stdout, one per front end, then `ready` (flushed at once, so a test
//! script can read `pty: /dev/pts/N` and go on); diagnostics go to stderr.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use iotsafe_vcard::frontend::at::{AtInjection, AtOptions, DropPlan, UrcPlan};
use iotsafe_vcard::frontend::pty::PtyModem;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::frontend::vpcd::{VpcdClient, VpcdOptions, DEFAULT_VPCD_ADDR};
use iotsafe_vcard::frontend::{ensure_loopback, FrontendHandle, SharedCard};
use iotsafe_vcard::{
    CardOptions, CardProfile, ClaPolicy, DhOutput, FaultPlan, InfoFieldOrder, Latency,
    ObjectListLayout, SerialLink, SignatureFormat, SignaturePrefix, StatusWord, TlvLengths,
    TransportMode, VirtualCard,
};
use nix::sys::signal::{SigSet, Signal};

#[derive(Parser, Debug)]
#[command(
    name = "iotsafe-vcard",
    version,
    about = "A virtual GSMA IoT SAFE (IoT.05) card"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a card state with a device key made inside the card, and a test PKI around it.
    Provision {
        /// The card state file to create (replaced if it exists).
        #[arg(long)]
        state: PathBuf,
        /// Folder for ca.pem, ca.key, server.pem, server.key, device.pem.
        #[arg(long)]
        pki_out: PathBuf,
        /// Volatile key pairs for ECDHE, `04` and `06`, `07`, … (a card offering several lets
        /// several key exchanges run at once).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
        ephemeral_slots: u8,
        #[command(flatten)]
        card: CardArgs,
    },
    /// Serve the card through vpcd (a PC/SC reader behind pcscd) and/or an AT modem.
    ///
    /// Without --at-pty or --at-tcp the card goes to vpcd at 127.0.0.1:35963; with them, to vpcd
    /// only when --vpcd is given. Several front ends serve one and the same card: a power cycle
    /// from one (pcscd powering the card off, a lost SIM) closes the logical channels of all.
    Serve(ServeArgs),
}

/// How the card behaves (shared by provision and serve): a named profile, then overrides.
#[derive(Args, Debug, Clone)]
struct CardArgs {
    /// Behave like a traced card: standard, ntt, zariot, thales-mvp, strict-uicc, no-applet.
    #[arg(long = "card", value_name = "PROFILE", default_value = "standard",
          value_parser = parse_from_str::<CardProfile>)]
    card_profile: CardProfile,
    /// Transport protocol: t0 (61xx + GET RESPONSE) or t1 (data with 9000). Default: the card's.
    #[arg(long, value_parser = parse_from_str::<TransportMode>)]
    profile: Option<TransportMode>,
    /// Latency model: none, sim (a typical SIM: sign ≈150 ms, keygen ≈250 ms, …), or modem (sim
    /// behind a 115,200-baud modem UART).
    #[arg(long, default_value = "none", value_parser = parse_from_str::<Latency>)]
    latency: Latency,
    /// A serial link of N baud between host and modem (8N1: 10 bits a byte), added to the
    /// --latency preset or replacing its own (modem: 115200). The AT front ends charge every byte
    /// in and out; vpcd charges none.
    #[arg(long, value_name = "N", value_parser = parse_from_str::<SerialLink>)]
    baud: Option<SerialLink>,
    /// Signature format: 33-00-40, 33-40, der, or bare (r‖s without a 33 TLV). Default: the
    /// card's.
    #[arg(long, alias = "signature-format", value_parser = parse_from_str::<SignatureFormat>)]
    sig_format: Option<SignatureFormat>,
    /// Pick each ECDSA nonce so that the raw r‖s begins with these 1 or 2 bytes (hex, e.g. 303E
    /// or 333E): valid but unlucky signatures (in every --sig-format).
    #[arg(long, value_name = "HEX", value_parser = parse_from_str::<SignaturePrefix>)]
    signature_prefix: Option<SignaturePrefix>,
    /// End sign/verify/put-key sessions after their last Update (P1=80); the host's explicit close
    /// of such a session is then answered with this status word (hex, e.g. 6985).
    #[arg(long, value_name = "SW", value_parser = parse_from_str::<StatusWord>)]
    close_after_final_update: Option<StatusWord>,
    /// Refuse an Init (P1=00) of a sign/verify/put-key session that is still open with this status
    /// word (hex, e.g. 6985): the host must close it first.
    #[arg(long, value_name = "SW", value_parser = parse_from_str::<StatusWord>)]
    reopen_refused: Option<StatusWord>,
    /// Most sign/verify/put-key sessions open at once on a channel (reported in tag B7; 1 as on
    /// the card Orange's SDK targets). Default 4.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    max_sessions: Option<u8>,
    /// Wipe volatile keys (ephemeral pair, peer key slot) on every reset and power cycle (vpcd
    /// power codes, AT+CFUN=1,1 or AT+CFUN=0/1), as a Java Card SIM does; DH then answers 6985.
    #[arg(long)]
    wipe_volatile_on_reset: bool,
    /// Logical channels offered besides the basic one (1..=19; many SIMs offer 3). MANAGE CHANNEL
    /// open beyond them answers 6A81. Default 19.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=19))]
    channels: Option<u8>,
    /// GET DATA object list layout: per-object (C1 L key1 C1 L key2 …) or grouped (one C1 holding
    /// every private key, one C2, C4, C3). Default per-object.
    #[arg(long, value_name = "LAYOUT", value_parser = parse_from_str::<ObjectListLayout>)]
    object_list: Option<ObjectListLayout>,
    /// Field order inside information structures: label-first (74 84 60 …), id-first
    /// (84 74 60 …) or attributes-first (60 … 74 84). Default label-first.
    #[arg(long, value_name = "ORDER", value_parser = parse_from_str::<InfoFieldOrder>)]
    info_order: Option<InfoFieldOrder>,
    /// READ FILE returns at most N bytes (with 9000) even when more were asked.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    read_file_max: Option<u16>,
    /// COMPUTE DH output: raw (the x-coordinate, 32 bytes) or sha1 (SHA-1 of x, 20 bytes, as Java
    /// Card's ALG_EC_SVDP_DH). Default raw.
    #[arg(long, value_name = "OUTPUT", value_parser = parse_from_str::<DhOutput>)]
    dh_output: Option<DhOutput>,
    /// A strict T=0 card: GET RESPONSE with a Le above the bytes waiting (Le=00 included) answers
    /// 6Cxx instead of the data.
    #[arg(long)]
    get_response_strict: bool,
    /// TLV lengths of 128..=255 bytes in answers: ber (81 xx) or one-byte (xx). Default ber.
    #[arg(long, value_name = "STYLE", value_parser = parse_from_str::<TlvLengths>)]
    tlv_lengths: Option<TlvLengths>,
    /// Class bytes accepted for IoT SAFE commands: lenient, 0x (interindustry) or 8x
    /// (proprietary). Default: the card's.
    #[arg(long, value_parser = parse_from_str::<ClaPolicy>)]
    cla: Option<ClaPolicy>,
    /// Answer SELECT on a closed channel with 6881 instead of opening it (a strict UICC).
    #[arg(long)]
    no_implicit_channel: bool,
    /// AID the applet answers to (hex; repeat for several). Default: the card's (A0000005590010).
    #[arg(long = "aid", value_parser = parse_hex)]
    aids: Vec<Vec<u8>>,
    /// Fault: after N APDUs every APDU gets a card removal.
    #[arg(long, value_name = "N")]
    fault_disconnect_after: Option<u64>,
    /// Fault: answer APDU number N with status word SW alone (e.g. 3:6F00).
    #[arg(long, value_name = "N:SW", value_parser = parse_sw_at)]
    fault_sw_at: Option<(u64, u16)>,
    /// Fault: damage the response to APDU number N.
    #[arg(long, value_name = "N")]
    fault_corrupt_at: Option<u64>,
    /// Fault: answer APDU number N only after MS milliseconds (e.g. 4:3000).
    #[arg(long, value_name = "N:MS", value_parser = parse_stall_at)]
    fault_stall_at: Option<(u64, Duration)>,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// The card state file (made by `provision`).
    #[arg(long)]
    state: PathBuf,
    #[command(flatten)]
    card: CardArgs,
    /// Plug the card into pcscd's vpcd driver at HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1,
          default_missing_value = DEFAULT_VPCD_ADDR, value_parser = parse_socket_addr)]
    vpcd: Option<SocketAddr>,
    /// After an injected card removal, stay out of the vpcd reader this long (ms).
    #[arg(long, value_name = "MS", default_value_t = 500)]
    reinsert_ms: u64,
    /// Emulate an AT modem on a new pty; prints `pty: /dev/pts/N`.
    #[arg(long)]
    at_pty: bool,
    /// With --at-pty: also make PATH a symlink to the pty that follows it when it is re-created
    /// after a planned drop (--at-drop-every); prints `pty-link: PATH`.
    #[arg(long, value_name = "PATH", requires = "at_pty")]
    at_pty_link: Option<PathBuf>,
    /// Emulate an AT modem on TCP HOST:PORT (port 0 picks one); prints `at-tcp: HOST:PORT`.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_socket_addr)]
    at_tcp: Option<SocketAddr>,
    /// The modem has no AT+CSIM (tests a host's fallback to AT+CGLA).
    #[arg(long)]
    at_no_csim: bool,
    /// The modem has no AT+CCHO/AT+CGLA/AT+CCHC (tests a host's fallback to AT+CSIM).
    #[arg(long)]
    at_no_cgla: bool,
    /// The modem starts with echo off (real modems: on until ATE0).
    #[arg(long)]
    at_echo_off: bool,
    /// Drop the host's connection every N card commands (AT+CSIM/CCHO/CGLA/CCHC over all
    /// connections), as a USB modem re-enumerating; the SIM keeps its channels and keys. N:after
    /// (default) answers the N-th command first, N:before drops it unanswered (it still runs).
    /// TCP closes the socket and accepts the next connection; the pty hangs up and is re-created.
    #[arg(long, value_name = "N[:after|:before]", value_parser = parse_from_str::<DropPlan>)]
    at_drop_every: Option<DropPlan>,
    /// Modem fault KIND@N[/EVERY] on the N-th card command: error, cme:CODE, garbage, silence,
    /// late (the command runs, but its answer is held back until the host writes its next line:
    /// it comes after any deadline), or truncate:KEEP (the command runs, but its +CSIM:/+CGLA:
    /// line keeps only KEEP hex characters while the announced length stays the full one).
    #[arg(long, value_name = "KIND@N[/EVERY]", value_parser = parse_from_str::<AtInjection>)]
    at_fault: Option<AtInjection>,
    /// Write an unsolicited result code before every K-th answer.
    #[arg(long, value_name = "K")]
    at_urc_every: Option<u64>,
    /// The unsolicited result codes to use in turn (default `+CREG: 1` and `RING`).
    #[arg(long = "at-urc", value_name = "LINE")]
    at_urc_lines: Vec<String>,
    /// The AT+CMEE mode the modem comes up in (and returns to after ATZ or AT+CFUN=1,1): 0 plain
    /// ERROR for every failure (the factory default of most modems), 1 numeric +CME ERROR: <n>,
    /// 2 verbose.
    #[arg(long = "at-cmee", alias = "cmee", value_name = "0|1|2", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(0..=2))]
    at_cmee: u8,
    /// The modem refuses AT+CMEE (answers ERROR); errors stay as --at-cmee says.
    #[arg(long)]
    at_no_cmee: bool,
    /// The first N AT+CCHO after each SIM reset answer +CME ERROR: 14 (SIM busy).
    #[arg(long, value_name = "N", default_value_t = 0)]
    at_busy_after_reset: u32,
    /// Allow non-loopback addresses (anyone who reaches the card can sign with its key).
    #[arg(long)]
    allow_remote: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Provision {
            state,
            pki_out,
            ephemeral_slots,
            card,
        } => provision(&state, &pki_out, ephemeral_slots, &card),
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("iotsafe-vcard: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Why `provision` or `serve` stopped: what it was doing, and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{doing}: {source}")]
struct RunError {
    doing: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// Names the step a fallible call belongs to, turning its error into a [`RunError`].
trait Doing<T> {
    fn doing(self, what: impl Into<String>) -> Result<T, RunError>;
}

impl<T, E: Into<Box<dyn std::error::Error + Send + Sync>>> Doing<T> for Result<T, E> {
    fn doing(self, what: impl Into<String>) -> Result<T, RunError> {
        self.map_err(|e| RunError {
            doing: what.into(),
            source: e.into(),
        })
    }
}

fn provision(
    state: &std::path::Path,
    pki_out: &std::path::Path,
    ephemeral_slots: u8,
    card: &CardArgs,
) -> Result<(), RunError> {
    let report = iotsafe_vcard::provision(state, pki_out, card.options())
        .doing(format!("provisioning {}", state.display()))?;
    if ephemeral_slots > 1 {
        let doing = || format!("adding ephemeral key pairs to {}", state.display());
        let mut store = iotsafe_vcard::state::load(state).doing(doing())?;
        store
            .add_ephemeral_slots(usize::from(ephemeral_slots) - 1)
            .doing(doing())?;
        iotsafe_vcard::state::save(state, &store).doing(doing())?;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "state: {}", report.state.display());
    let _ = writeln!(
        out,
        "device-public-key: {}",
        iotsafe_vcard::hex::encode_upper(&report.device_public_key)
    );
    for file in &report.files {
        let _ = writeln!(out, "file: {}", file.display());
    }
    let _ = out.flush();
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), RunError> {
    // Signals are taken by one thread with sigwait: blocked here, before any thread starts, so
    // every thread inherits the mask and none is interrupted. No signal handler, no unsafe.
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block().doing("blocking signals")?;

    let options = args.card.options();
    let card = VirtualCard::open_state(&args.state, options).doing(format!(
        "opening {} (run `provision` first?)",
        args.state.display()
    ))?;
    let card: SharedCard = Arc::new(Mutex::new(card));

    let use_vpcd = args.vpcd.is_some() || (!args.at_pty && args.at_tcp.is_none());
    let mut frontends: Vec<(&str, FrontendHandle)> = Vec::new();
    let mut out = std::io::stdout().lock();

    if use_vpcd {
        let addr = match args.vpcd {
            Some(addr) => addr,
            None => DEFAULT_VPCD_ADDR.parse().doing("default vpcd address")?,
        };
        ensure_loopback(addr, args.allow_remote).doing("--vpcd")?;
        let options = VpcdOptions {
            reinsert_after: Duration::from_millis(args.reinsert_ms),
            ..VpcdOptions::default()
        };
        let handle = VpcdClient::new(card.clone(), addr, options)
            .spawn()
            .doing("starting the vpcd client")?;
        frontends.push(("vpcd", handle));
        let _ = writeln!(out, "vpcd: {addr}");
    }
    let at_options = at_options(&args);
    if args.at_pty {
        let pty = match &args.at_pty_link {
            Some(link) => PtyModem::open_linked(link)
                .doing(format!("opening a pty linked at {}", link.display()))?,
            None => PtyModem::open().doing("opening a pty")?,
        };
        let path = pty.path().to_owned();
        if let Some(link) = pty.link() {
            let _ = writeln!(out, "pty-link: {}", link.display());
        }
        let handle = pty
            .spawn(card.clone(), at_options.clone())
            .doing("starting the pty modem")?;
        frontends.push(("at-pty", handle));
        let _ = writeln!(out, "pty: {}", path.display());
    }
    if let Some(addr) = args.at_tcp {
        let modem =
            TcpModem::bind_with(addr, args.allow_remote).doing(format!("--at-tcp {addr}"))?;
        let local = modem.local_addr().doing(format!("--at-tcp {addr}"))?;
        let handle = modem
            .spawn(card.clone(), at_options)
            .doing("starting the TCP modem")?;
        frontends.push(("at-tcp", handle));
        let _ = writeln!(out, "at-tcp: {local}");
    }
    let _ = writeln!(out, "ready");
    let _ = out.flush();
    drop(out);

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || {
            if let Ok(signal) = signals.wait() {
                eprintln!("iotsafe-vcard: {signal}, stopping");
            }
            flag.store(true, Ordering::Relaxed);
        })
        .doing("starting the signal thread")?;

    // Run until a signal, or until a front end ends on its own (an error: they run forever).
    while !stop.load(Ordering::Relaxed) && !frontends.iter().any(|(_, h)| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut failures = Vec::new();
    for (name, handle) in frontends {
        if let Err(e) = handle.stop() {
            failures.push(format!("{name}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; ")).doing("stopping the front ends")
    }
}

impl CardArgs {
    fn options(&self) -> CardOptions {
        let mut options = self.card_profile.options();
        options.latency = self.latency;
        if let Some(link) = self.baud {
            options.latency.serial = Some(link);
        }
        options.faults = FaultPlan {
            disconnect_after: self.fault_disconnect_after,
            status_word_at: self.fault_sw_at,
            corrupt_at: self.fault_corrupt_at,
            stall_at: self.fault_stall_at,
        };
        if let Some(transport) = self.profile {
            options.transport = transport;
        }
        let quirks = &mut options.quirks;
        if let Some(format) = self.sig_format {
            quirks.signature_format = format;
        }
        if let Some(cla) = self.cla {
            quirks.cla = cla;
        }
        if self.no_implicit_channel {
            quirks.implicit_channel_on_select = false;
        }
        if !self.aids.is_empty() {
            quirks.aids = self.aids.clone();
        }
        if let Some(prefix) = self.signature_prefix {
            quirks.signature_prefix = Some(prefix);
        }
        if let Some(sw) = self.close_after_final_update {
            quirks.close_after_final_update = Some(sw.0);
        }
        if let Some(sw) = self.reopen_refused {
            quirks.reopen_refused = Some(sw.0);
        }
        if let Some(max) = self.max_sessions {
            quirks.max_sessions = max;
        }
        if self.wipe_volatile_on_reset {
            quirks.wipe_volatile_on_reset = true;
        }
        if let Some(channels) = self.channels {
            quirks.logical_channels = channels;
        }
        if let Some(layout) = self.object_list {
            quirks.object_list_layout = layout;
        }
        if let Some(order) = self.info_order {
            quirks.info_field_order = order;
        }
        if let Some(max) = self.read_file_max {
            quirks.read_file_max = Some(max);
        }
        if let Some(output) = self.dh_output {
            quirks.dh_output = output;
        }
        if self.get_response_strict {
            quirks.get_response_strict = true;
        }
        if let Some(style) = self.tlv_lengths {
            quirks.tlv_lengths = style;
        }
        options
    }
}

fn at_options(args: &ServeArgs) -> AtOptions {
    let urc = args.at_urc_every.map(|every| {
        let default = UrcPlan::default();
        UrcPlan {
            every,
            lines: if args.at_urc_lines.is_empty() {
                default.lines
            } else {
                args.at_urc_lines.clone()
            },
        }
    });
    AtOptions {
        echo: !args.at_echo_off,
        csim: !args.at_no_csim,
        cgla: !args.at_no_cgla,
        inject: args.at_fault.clone(),
        urc,
        drop_every: args.at_drop_every,
        cmee: args.at_cmee,
        cmee_settable: !args.at_no_cmee,
        busy_after_reset: args.at_busy_after_reset,
        ..AtOptions::default()
    }
}

fn parse_from_str<T: std::str::FromStr<Err = String>>(text: &str) -> Result<T, String> {
    text.parse()
}

/// `IP:PORT`, or `HOST:PORT` resolved now (the first address; `localhost` is loopback).
fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    iotsafe_vcard::hex::decode_spaced(text)
        .filter(|bytes| !bytes.is_empty() && bytes.len() <= 16)
        .ok_or_else(|| format!("{text:?} is not an AID in hex (1 to 16 bytes)"))
}

fn parse_sw_at(text: &str) -> Result<(u64, u16), String> {
    let (n, sw) = text.split_once(':').ok_or("expected N:SW, e.g. 3:6F00")?;
    let n = n.parse().map_err(|e| format!("N: {e}"))?;
    let sw = u16::from_str_radix(sw, 16).map_err(|e| format!("SW: {e}"))?;
    Ok((n, sw))
}

fn parse_stall_at(text: &str) -> Result<(u64, Duration), String> {
    let (n, ms) = text.split_once(':').ok_or("expected N:MS, e.g. 4:3000")?;
    let n = n.parse().map_err(|e| format!("N: {e}"))?;
    let ms = ms.parse().map_err(|e| format!("MS: {e}"))?;
    Ok((n, Duration::from_millis(ms)))
}

#[cfg(test)]
#[path = "main_tests.rs"]
mod tests;
