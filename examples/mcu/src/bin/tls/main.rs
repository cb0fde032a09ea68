//! Cortex-M firmware that makes a TLS 1.3 connection with client authentication whose key and
//! ECDHE are on the SIM: iotsafe-core drives the card through the modem UART (UART0), rustls
//! (without `std`, unbuffered) runs the handshake with `iotsafe-rustls`'s card signer and key
//! exchange and `iotsafe-soft` for the rest, and the TLS bytes go over UART1 (see docs/mcu.md).
//!
//! The semihosting command line chooses what it says over the connection:
//! - `echo [SERVER]`: sends `hello from <CN>` and prints the line the server sends back
//!   (`openssl s_server -rev` reverses it);
//! - `mqtt [SERVER] [TOPIC]`: publishes `hello from <CN>` at QoS 1 to an MQTT broker.
//!
//! SERVER is the name the server's certificate must have (default `localhost`); the connection
//! itself is whatever UART1 is wired to. It reports as `key: value` lines and exits 0 when
//! everything worked.
#![no_std]
#![no_main]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod apps;
mod cn;
mod session;
mod setup;

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use cortex_m_rt::entry;
use iotsafe_core::at::{AtOptions, AtTransport, EmbeddedPort};
use iotsafe_core::{Card, CardConfig};
use iotsafe_mcu::board::{self, Board};
use iotsafe_mcu::{clock, heap, semihost, stack};
use rustls::pki_types::ServerName;

/// What to do over the connection.
enum Mode {
    Echo,
    Mqtt { topic: String },
}

#[entry]
fn main() -> ! {
    stack::paint();
    let board = board::init();
    iotsafe_core::clock::set(|| Duration::from_millis(clock::now_ms()));
    let log = &mut |args: fmt::Arguments<'_>| board::println(args);
    log(format_args!(
        "board: {} uart0@{:#010x} uart1@{:#010x} heap={}",
        board::MACHINE,
        board::MODEM_UART.base(),
        board::NETWORK_UART.base(),
        heap::SIZE
    ));
    let mut line = [0u8; 256];
    let mut args = semihost::arguments(&mut line);
    let mode = args.next().unwrap_or("echo").to_string();
    let server = args.next().unwrap_or("localhost").to_string();
    let mode = match mode.as_str() {
        "echo" => Mode::Echo,
        "mqtt" => Mode::Mqtt {
            topic: args.next().unwrap_or("iotsafe/mcu").to_string(),
        },
        other => {
            log(format_args!("result: failed: unknown mode {other:?}"));
            board::exit(false)
        }
    };

    let started = clock::now_ms();
    let outcome = run(board, &mode, &server, log);
    let elapsed = clock::now_ms() - started;

    let (modem, network) = (board::MODEM_TALLY.counts(), board::NETWORK_TALLY.counts());
    log(format_args!(
        "uart: modem_tx={} modem_rx={} network_tx={} network_rx={}",
        modem.tx, modem.rx, network.tx, network.rx
    ));
    board::finish(elapsed, outcome)
}

/// Opens the card, builds the configuration from it, connects and converses.
fn run(
    board: Board,
    mode: &Mode,
    server: &str,
    log: &mut dyn FnMut(fmt::Arguments<'_>),
) -> Result<(), String> {
    let Board {
        modem, mut network, ..
    } = board;
    let transport = AtTransport::new(EmbeddedPort::new(modem), "uart0", AtOptions::default())
        .map_err(|e| alloc::format!("bringing up the modem: {e}"))?;
    log(format_args!("modem: {}", transport.quirks().name));
    let card = Arc::new(
        Card::open(transport, CardConfig::default()).map_err(|e| alloc::format!("open: {e}"))?,
    );
    let before = card.stats().apdus;
    let setup = setup::client_config(&card)?;
    log(format_args!(
        "setup: apdus={} device={}",
        card.stats().apdus - before,
        setup.common_name
    ));
    let name = ServerName::try_from(server.to_string())
        .map_err(|_| alloc::format!("{server:?} is not a server name"))?;
    let hello = alloc::format!("hello from {}", setup.common_name);
    let report = match mode {
        Mode::Echo => {
            let mut echo = apps::EchoLine::new(&setup.common_name);
            let report = session::run(setup.config, name, &mut network, &card, &mut echo)
                .map_err(|e| e.to_string())?;
            log(format_args!("sent: {hello}"));
            log(format_args!("answer: {}", echo.answer().unwrap_or("?")));
            report
        }
        Mode::Mqtt { topic } => {
            let mut publish = apps::MqttPublish::new(&setup.common_name, topic, hello.as_bytes());
            let report = session::run(setup.config, name, &mut network, &card, &mut publish)
                .map_err(|e| e.to_string())?;
            log(format_args!("published: topic={topic} payload={hello}"));
            report
        }
    };
    log(format_args!(
        "handshake: apdus={} ms={} card_ms={} tx={} rx={}",
        report.handshake_apdus,
        report.handshake_ms,
        report.handshake_card_ms,
        report.handshake_tx,
        report.handshake_rx
    ));
    card.close().map_err(|e| alloc::format!("close: {e}"))?;
    Ok(())
}
