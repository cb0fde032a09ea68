//! `iotsafe info`: where the card is, which AID and channel answered, and what the applet can do.

use crate::context::Context;
use crate::output::Output;
use iotsafe_cli::CliError;
use iotsafe_core::hexutil;
use iotsafe_core::objects::functions;
use serde_json::json;

/// Names of crypto-function bits (tag `90` / `61`).
pub fn function_names(bits: Option<u8>) -> Vec<&'static str> {
    let Some(bits) = bits else { return Vec::new() };
    [
        (functions::SIGNATURE, "signature"),
        (functions::KEY_GENERATION, "key-generation"),
        (functions::KEY_AGREEMENT, "key-agreement"),
        (functions::KEY_DERIVATION, "key-derivation"),
    ]
    .iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| *name)
    .collect()
}

/// Names of hash-algorithm bits (tag `91`).
pub fn hash_names(bits: Option<u16>) -> Vec<&'static str> {
    let Some(bits) = bits else { return Vec::new() };
    [
        (0x0001u16, "sha-256"),
        (0x0002, "sha-384"),
        (0x0004, "sha-512"),
    ]
    .iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| *name)
    .collect()
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// Shows applet information.
pub fn run(context: &Context) -> Result<Output, CliError> {
    let opened = context.opened()?;
    let card = &opened.card;
    let info = card
        .applet_info()
        .map_err(|e| CliError::card("reading the applet information", &e))?;
    let (aid, channel) = card
        .selection()
        .map(|(aid, ch)| (hexutil::encode(&aid), ch))
        .unwrap_or_else(|| ("-".into(), 0));
    let funcs = function_names(info.functions);
    let hashes = hash_names(info.hash_algorithms);
    let ecdsa = info.signature_algorithms.is_some_and(|b| b & 0x04 != 0);
    let ecka = info.key_agreement.is_some_and(|b| b & 0x01 != 0);
    let mut text = String::new();
    text.push_str(&format!("card:              {}\n", opened.description));
    text.push_str(&format!("transport:         {}\n", card.describe()));
    text.push_str(&format!("AID:               {aid}\n"));
    text.push_str(&format!("channel:           {channel}\n"));
    text.push_str(&format!("applet version:    {}\n", opt(info.version)));
    if let Some(id) = &info.proprietary_id {
        text.push_str(&format!("proprietary ID:    {}\n", hexutil::encode(id)));
    }
    text.push_str(&format!("functions:         {}\n", funcs.join(", ")));
    text.push_str(&format!("hash algorithms:   {}\n", hashes.join(", ")));
    text.push_str(&format!(
        "signature:         {}\n",
        if ecdsa { "ECDSA" } else { "-" }
    ));
    text.push_str(&format!(
        "key agreement:     {}\n",
        if ecka { "ECKA (ECDH)" } else { "-" }
    ));
    text.push_str(&format!(
        "max objects:       {} files, {} private keys, {} public keys, {} secret keys\n",
        opt(info.max_files),
        opt(info.max_private_keys),
        opt(info.max_public_keys),
        opt(info.max_secret_keys)
    ));
    text.push_str(&format!("max sessions:      {}\n", opt(info.max_sessions)));
    let json = json!({
        "card": opened.description,
        "transport": card.describe(),
        "aid": aid,
        "channel": channel,
        "version": info.version,
        "proprietary_id": info.proprietary_id.as_deref().map(hexutil::encode),
        "functions": funcs,
        "hash_algorithms": hashes,
        "signature_algorithms": info.signature_algorithms,
        "key_agreement": info.key_agreement,
        "key_derivation": info.key_derivation,
        "max_files": info.max_files,
        "max_private_keys": info.max_private_keys,
        "max_public_keys": info.max_public_keys,
        "max_secret_keys": info.max_secret_keys,
        "max_sessions": info.max_sessions,
        "ecdsa": ecdsa,
        "ecdh": ecka,
    });
    Ok(Output::new(text, json))
}
