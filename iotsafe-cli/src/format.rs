//! Text formatting shared by the tool and the demo: durations, card counters, PEM.

use iotsafe_core::stats::{CardStats, Operation};
use serde_json::{json, Value};
use std::time::Duration;

/// Milliseconds with two decimals.
pub fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A short lower-case name of a card operation.
pub fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Select => "select",
        Operation::AppletInfo => "applet-info",
        Operation::ObjectInfo => "object-info",
        Operation::ReadFile => "read-file",
        Operation::Random => "random",
        Operation::GenerateKeyPair => "keygen",
        Operation::ReadPublicKey => "read-public-key",
        Operation::PutPublicKey => "put-public-key",
        Operation::Sign => "sign",
        Operation::Verify => "verify",
        Operation::Dh => "ecdh",
        Operation::Hkdf => "hkdf",
        Operation::Prf => "prf",
        Operation::Close => "close",
        Operation::Raw => "raw",
        _ => "other",
    }
}

/// Card counters as JSON: totals and one entry per operation.
pub fn stats_json(stats: &CardStats) -> Value {
    let operations: serde_json::Map<String, Value> = stats
        .operations
        .iter()
        .map(|(op, s)| {
            (
                operation_name(*op).to_string(),
                json!({
                    "count": s.count,
                    "failures": s.failures,
                    "apdus": s.apdus,
                    "time_ms": s.time.as_secs_f64() * 1000.0,
                }),
            )
        })
        .collect();
    json!({
        "apdus": stats.apdus,
        "bytes_sent": stats.bytes_sent,
        "bytes_received": stats.bytes_received,
        "uart_bytes_sent": stats.wire_bytes_sent,
        "uart_bytes_received": stats.wire_bytes_received,
        "time_in_card_ms": stats.time_in_card.as_secs_f64() * 1000.0,
        "reconnects": stats.reconnects,
        "operations": operations,
    })
}

/// Card counters as indented text lines: one line per operation, then the totals.
pub fn stats_text(stats: &CardStats, indent: &str) -> String {
    let mut out = String::new();
    for (op, s) in &stats.operations {
        let failures = if s.failures > 0 {
            format!(", {} failed", s.failures)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{indent}{:<16} {:>3}× {:>3} APDUs {:>10}{failures}\n",
            operation_name(*op),
            s.count,
            s.apdus,
            millis(s.time),
        ));
    }
    out.push_str(&format!(
        "{indent}total: {} APDUs, {} bytes sent, {} bytes received, {} in the card\n",
        stats.apdus,
        stats.bytes_sent,
        stats.bytes_received,
        millis(stats.time_in_card)
    ));
    if stats.wire_bytes_sent + stats.wire_bytes_received > 0 {
        out.push_str(&format!(
            "{indent}       {} bytes to the modem, {} from it (AT text)\n",
            stats.wire_bytes_sent, stats.wire_bytes_received
        ));
    }
    out
}

/// PEM text of DER bytes under `label` ("CERTIFICATE", "PUBLIC KEY", "CERTIFICATE REQUEST").
pub fn pem(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
