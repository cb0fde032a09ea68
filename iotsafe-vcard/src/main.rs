//! `iotsafe-vcard`: the virtual IoT SAFE card as a program.
//!
//! - `provision --state FILE --pki-out DIR`: a fresh card state with a device key made inside the
//!   card, and a test PKI around it.
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
use iotsafe_vcard::frontend::at::{AtFault, AtInjection, AtOptions, UrcPlan};
use iotsafe_vcard::frontend::pty::PtyModem;
use iotsafe_vcard::frontend::tcp::TcpModem;
use iotsafe_vcard::frontend::vpcd::{VpcdClient, VpcdOptions, DEFAULT_VPCD_ADDR};
use iotsafe_vcard::frontend::{ensure_loopback, FrontendHandle, SharedCard};
use iotsafe_vcard::{
    CardOptions, CardProfile, ClaPolicy, FaultPlan, Latency, SignatureFormat, TransportMode,
    VirtualCard,
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
    /// Latency model: none, or sim (a typical SIM: sign ≈150 ms, keygen ≈250 ms, …).
    #[arg(long, default_value = "none", value_parser = parse_from_str::<Latency>)]
    latency: Latency,
    /// Signature TLV format: 33-00-40, 33-40 or der. Default: the card's.
    #[arg(long, value_parser = parse_from_str::<SignatureFormat>)]
    sig_format: Option<SignatureFormat>,
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
    /// Modem fault KIND@N[/EVERY] on the N-th card command: error, cme:CODE, garbage, silence.
    #[arg(long, value_name = "KIND@N[/EVERY]", value_parser = parse_at_fault)]
    at_fault: Option<AtInjection>,
    /// Write an unsolicited result code before every K-th answer.
    #[arg(long, value_name = "K")]
    at_urc_every: Option<u64>,
    /// The unsolicited result codes to use in turn (default `+CREG: 1` and `RING`).
    #[arg(long = "at-urc", value_name = "LINE")]
    at_urc_lines: Vec<String>,
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
            card,
        } => provision(&state, &pki_out, &card),
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

fn provision(
    state: &std::path::Path,
    pki_out: &std::path::Path,
    card: &CardArgs,
) -> Result<(), String> {
    let report = iotsafe_vcard::provision(state, pki_out, card.options())
        .map_err(|e| format!("provisioning {}: {e}", state.display()))?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "state: {}", report.state.display());
    let _ = writeln!(out, "device-public-key: {}", hex(&report.device_public_key));
    for file in &report.files {
        let _ = writeln!(out, "file: {}", file.display());
    }
    let _ = out.flush();
    Ok(())
}

fn serve(args: ServeArgs) -> Result<(), String> {
    // Signals are taken by one thread with sigwait: blocked here, before any thread starts, so
    // every thread inherits the mask and none is interrupted. No signal handler, no unsafe.
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals
        .thread_block()
        .map_err(|e| format!("blocking signals: {e}"))?;

    let options = args.card.options();
    let card = VirtualCard::open_state(&args.state, options).map_err(|e| {
        format!(
            "opening {} (run `provision` first?): {e}",
            args.state.display()
        )
    })?;
    let card: SharedCard = Arc::new(Mutex::new(card));

    let use_vpcd = args.vpcd.is_some() || (!args.at_pty && args.at_tcp.is_none());
    let mut frontends: Vec<(&str, FrontendHandle)> = Vec::new();
    let mut out = std::io::stdout().lock();

    if use_vpcd {
        let addr = match args.vpcd {
            Some(addr) => addr,
            None => DEFAULT_VPCD_ADDR
                .parse()
                .map_err(|e| format!("default vpcd address: {e}"))?,
        };
        ensure_loopback(addr, args.allow_remote).map_err(|e| format!("--vpcd: {e}"))?;
        let options = VpcdOptions {
            reinsert_after: Duration::from_millis(args.reinsert_ms),
            ..VpcdOptions::default()
        };
        let handle = VpcdClient::new(card.clone(), addr, options)
            .spawn()
            .map_err(|e| format!("starting the vpcd client: {e}"))?;
        frontends.push(("vpcd", handle));
        let _ = writeln!(out, "vpcd: {addr}");
    }
    let at_options = at_options(&args);
    if args.at_pty {
        let pty = PtyModem::open().map_err(|e| format!("opening a pty: {e}"))?;
        let path = pty.path().to_owned();
        let handle = pty
            .spawn(card.clone(), at_options.clone())
            .map_err(|e| format!("starting the pty modem: {e}"))?;
        frontends.push(("at-pty", handle));
        let _ = writeln!(out, "pty: {}", path.display());
    }
    if let Some(addr) = args.at_tcp {
        let modem = TcpModem::bind_with(addr, args.allow_remote)
            .map_err(|e| format!("--at-tcp {addr}: {e}"))?;
        let local = modem
            .local_addr()
            .map_err(|e| format!("--at-tcp {addr}: {e}"))?;
        let handle = modem
            .spawn(card.clone(), at_options)
            .map_err(|e| format!("starting the TCP modem: {e}"))?;
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
        .map_err(|e| format!("starting the signal thread: {e}"))?;

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
        Err(failures.join("; "))
    }
}

impl CardArgs {
    fn options(&self) -> CardOptions {
        let mut options = self.card_profile.options();
        options.latency = self.latency;
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
    iotsafe_vcard::frontend::at::decode_hex(text)
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

/// `error@3`, `cme:13@2`, `garbage@1/2`, `silence@5`.
fn parse_at_fault(text: &str) -> Result<AtInjection, String> {
    let (kind, when) = text
        .split_once('@')
        .ok_or("expected KIND@N[/EVERY], e.g. error@3 or cme:13@2/5")?;
    let fault = match kind.split_once(':') {
        None if kind == "error" => AtFault::Error,
        None if kind == "garbage" => AtFault::Garbage,
        None if kind == "silence" => AtFault::Silence,
        Some(("cme", code)) => {
            AtFault::CmeError(code.parse().map_err(|e| format!("CME code: {e}"))?)
        }
        _ => {
            return Err(format!(
                "unknown fault {kind:?} (error, cme:CODE, garbage, silence)"
            ))
        }
    };
    let (at, every) = match when.split_once('/') {
        Some((at, every)) => (at, Some(every.parse().map_err(|e| format!("EVERY: {e}"))?)),
        None => (when, None),
    };
    let at = at.parse().map_err(|e| format!("N: {e}"))?;
    Ok(AtInjection { fault, at, every })
}

fn hex(bytes: &[u8]) -> String {
    iotsafe_vcard::frontend::at::encode_hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_fault_syntax() {
        assert_eq!(
            parse_at_fault("error@3").unwrap(),
            AtInjection::once(AtFault::Error, 3)
        );
        assert_eq!(
            parse_at_fault("cme:13@2/5").unwrap(),
            AtInjection {
                fault: AtFault::CmeError(13),
                at: 2,
                every: Some(5)
            }
        );
        assert!(parse_at_fault("garbage@x").is_err());
        assert!(parse_at_fault("boom@1").is_err());
        assert!(parse_at_fault("silence").is_err());
    }

    #[test]
    fn card_flags_make_options() {
        let cli = Cli::try_parse_from([
            "iotsafe-vcard",
            "serve",
            "--state",
            "s.json",
            "--profile",
            "t0",
            "--sig-format",
            "33-40",
            "--cla",
            "proprietary",
            "--no-implicit-channel",
            "--aid",
            "A0000002480400",
            "--fault-sw-at",
            "3:6F00",
            "--at-pty",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve expected");
        };
        let options = args.card.options();
        assert_eq!(options.transport, TransportMode::T0);
        assert_eq!(
            options.quirks.signature_format,
            SignatureFormat::OneByteLength
        );
        assert_eq!(options.quirks.cla, ClaPolicy::ProprietaryOnly);
        assert!(!options.quirks.implicit_channel_on_select);
        assert_eq!(options.quirks.aids, vec![vec![0xA0, 0, 0, 2, 0x48, 4, 0]]);
        assert_eq!(options.faults.status_word_at, Some((3, 0x6F00)));
        assert!(args.vpcd.is_none() && args.at_pty);
    }

    #[test]
    fn a_card_profile_then_overrides() {
        let options = |extra: &[&str]| {
            let mut argv = vec!["iotsafe-vcard", "serve", "--state", "s"];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Serve(args) => args.card.options(),
                Command::Provision { .. } => unreachable!(),
            }
        };
        let standard = options(&[]);
        assert_eq!(standard.transport, TransportMode::T1);
        assert!(standard.quirks.implicit_channel_on_select);
        let ntt = options(&["--card", "ntt"]);
        assert_eq!(ntt.transport, TransportMode::T0);
        assert_eq!(ntt.quirks.signature_format, SignatureFormat::OneByteLength);
        assert_eq!(ntt.quirks.aids.len(), 2);
        let ntt_t1 = options(&["--card", "ntt", "--profile", "t1", "--cla", "8x"]);
        assert_eq!(ntt_t1.transport, TransportMode::T1);
        assert_eq!(ntt_t1.quirks.cla, ClaPolicy::ProprietaryOnly);
        assert_eq!(
            ntt_t1.quirks.signature_format,
            SignatureFormat::OneByteLength
        );
        assert!(options(&["--card", "no-applet"]).quirks.aids.is_empty());
    }

    #[test]
    fn vpcd_flag_takes_an_optional_address() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["iotsafe-vcard", "serve", "--state", "s"];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Serve(args) => args.vpcd,
                Command::Provision { .. } => None,
            }
        };
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&["--vpcd"]), Some(DEFAULT_VPCD_ADDR.parse().unwrap()));
        assert_eq!(
            parse(&["--vpcd", "127.0.0.1:35964"]),
            Some("127.0.0.1:35964".parse().unwrap())
        );
        let local = parse(&["--vpcd", "localhost:35964"]).unwrap();
        assert!(local.ip().is_loopback() && local.port() == 35964);
    }
}
