//! `iotsafe objects`: every key, file and secret on the card with its attributes.

use super::info::{function_names, hash_names};
use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::CliError;
use iotsafe_core::hexutil;
use iotsafe_core::objects::{file_usage, key_type, key_usage};
use iotsafe_core::{ObjectInfo, ObjectKind};
use serde_json::json;

fn kind_name(kind: Option<ObjectKind>) -> &'static str {
    match kind {
        Some(ObjectKind::PrivateKey) => "private-key",
        Some(ObjectKind::PublicKey) => "public-key",
        Some(ObjectKind::File) => "file",
        Some(ObjectKind::SecretKey) => "secret-key",
        None => "unknown",
    }
}

fn key_type_name(t: Option<u8>) -> String {
    match t {
        None => "-".into(),
        Some(key_type::P256_PERSISTENT) => "P-256".into(),
        Some(key_type::P256_VOLATILE) => "P-256 volatile".into(),
        Some(key_type::BRAINPOOL_P256_PERSISTENT) => "brainpoolP256r1".into(),
        Some(key_type::BRAINPOOL_P256_VOLATILE) => "brainpoolP256r1 volatile".into(),
        Some(key_type::RSA_2048) => "RSA-2048".into(),
        Some(key_type::HMAC) => "HMAC".into(),
        Some(other) => format!("{other:02X}"),
    }
}

fn usage_name(info: &ObjectInfo) -> String {
    if info.kind == Some(ObjectKind::File) {
        return match info.file_usage {
            None => "-".into(),
            Some(file_usage::CERTIFICATE) => "certificate".into(),
            Some(file_usage::GENERAL) => "general".into(),
            Some(other) => format!("{other:02X}"),
        };
    }
    match info.key_usage {
        None => "-".into(),
        Some(key_usage::GENERAL) => "general".into(),
        Some(key_usage::TLS12_CERTIFICATE_VERIFY) => "tls1.2-cert-verify".into(),
        Some(key_usage::TLS13_CERTIFICATE_VERIFY) => "tls1.3-cert-verify".into(),
        Some(other) => format!("{other:02X}"),
    }
}

fn access_name(access: Option<u8>) -> String {
    match access {
        None => "-".into(),
        Some(a) => {
            let mut parts = Vec::new();
            if a & 0x01 != 0 {
                parts.push("read");
            }
            if a & 0x02 != 0 {
                parts.push("update");
            }
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join("+")
            }
        }
    }
}

fn state_name(state: Option<u8>) -> &'static str {
    match state {
        None => "-",
        Some(0x01) => "active",
        Some(_) => "inactive",
    }
}

/// Lists the objects.
pub fn run(context: &Context) -> Result<Output, CliError> {
    let card = context.card()?;
    let list = card
        .objects()
        .map_err(|e| CliError::card("reading the object list", &e))?;
    let mut rows = vec![[
        "KIND".to_string(),
        "ID".into(),
        "LABEL".into(),
        "TYPE".into(),
        "USAGE".into(),
        "FUNCTIONS".into(),
        "HASH".into(),
        "ACCESS".into(),
        "STATE".into(),
        "SIZE".into(),
    ]];
    let mut json_rows = Vec::new();
    for o in &list {
        let funcs = function_names(o.functions);
        let hashes = hash_names(o.hash_algorithms);
        rows.push([
            kind_name(o.kind).into(),
            o.id.as_deref()
                .map(hexutil::encode)
                .unwrap_or_else(|| "-".into()),
            o.label_text().unwrap_or_else(|| "-".into()),
            key_type_name(o.key_type),
            usage_name(o),
            if funcs.is_empty() {
                "-".into()
            } else {
                funcs.join(",")
            },
            if hashes.is_empty() {
                "-".into()
            } else {
                hashes.join(",")
            },
            access_name(o.access),
            state_name(o.state).into(),
            o.file_size
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
        ]);
        json_rows.push(json!({
            "kind": kind_name(o.kind),
            "id": o.id.as_deref().map(hexutil::encode),
            "label": o.label_text(),
            "key_type": o.key_type,
            "key_type_name": key_type_name(o.key_type),
            "usage": usage_name(o),
            "functions": funcs,
            "hash_algorithms": hashes,
            "access": access_name(o.access),
            "state": state_name(o.state),
            "file_size": o.file_size,
        }));
    }
    Ok(Output::new(table(&rows), json!({ "objects": json_rows })))
}

/// Left-aligned columns separated by two spaces.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
