//! Which cards the PKCS#11 module offers, one slot each: from the environment, as the `iotsafe`
//! CLI reads it ([`env::READER`], [`env::MODEM`], [`env::VCARD`], [`env::AID`], and
//! [`env::TOKEN_LABEL`]), or from the file [`env::PKCS11_CONF`] names:
//!
//! ```text
//! # one [card] section per slot, in slot order
//! [card]
//! reader = Virtual PCD 00 01
//! label = gateway SIM
//!
//! [card]
//! modem = tcp://127.0.0.1:7000
//! aid = A0000005590010
//! ```
//!
//! Keys: `reader`, `modem`, `vcard` (exactly one of the three), `aid`, `label`. When the file is
//! named, the environment's card variables are not read.

use crate::env;
use crate::CardSelection;
use std::fmt;
use std::path::PathBuf;

/// One card, one slot.
#[derive(Debug, Clone, Default)]
pub struct CardSpec {
    /// How to reach the card, as the CLI's `--reader`, `--modem`, `--vcard`, `--aid`.
    pub selection: CardSelection,
    /// The token label, instead of the one made from the card.
    pub label: Option<String>,
}

impl CardSpec {
    /// What the slot description shows.
    pub fn describe(&self) -> String {
        self.selection.describe()
    }
}

/// A configuration the module cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The cards to offer, from the configuration file when `IOTSAFE_PKCS11_CONF` names one, else
/// from the environment (no card when none of its variables is set).
pub fn cards(lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<CardSpec>, ConfigError> {
    if let Some(path) = lookup(env::PKCS11_CONF).filter(|p| !p.is_empty()) {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ConfigError(format!("reading {}={path}: {e}", env::PKCS11_CONF)))?;
        return parse(&text).map_err(|e| ConfigError(format!("{path}: {e}")));
    }
    let mut spec = CardSpec::default();
    let mut any = false;
    for (key, var) in [
        ("reader", env::READER),
        ("modem", env::MODEM),
        ("vcard", env::VCARD),
        ("aid", env::AID),
        ("label", env::TOKEN_LABEL),
    ] {
        if let Some(value) = lookup(var).filter(|v| !v.is_empty()) {
            any |= matches!(key, "reader" | "modem" | "vcard");
            set(&mut spec, key, &value).map_err(|e| ConfigError(format!("{var}: {e}")))?;
        }
    }
    if !any {
        return Ok(Vec::new());
    }
    check(&spec).map_err(|e| ConfigError(format!("environment: {e}")))?;
    Ok(vec![spec])
}

/// Parses a configuration file's text.
pub fn parse(text: &str) -> Result<Vec<CardSpec>, ConfigError> {
    let mut cards: Vec<CardSpec> = Vec::new();
    let at = |n: usize, why: String| ConfigError(format!("line {}: {why}", n + 1));
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "[card]" {
            if let Some(last) = cards.last() {
                check(last).map_err(|e| at(n, format!("the card before: {e}")))?;
            }
            cards.push(CardSpec::default());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(
                n,
                format!("expected `[card]` or `key = value`, got {line:?}"),
            ));
        };
        let card = cards
            .last_mut()
            .ok_or_else(|| at(n, String::from("a key before the first [card]")))?;
        set(card, key.trim(), value.trim()).map_err(|e| at(n, e))?;
    }
    if let Some(last) = cards.last() {
        check(last).map_err(|e| ConfigError(format!("the last card: {e}")))?;
    }
    Ok(cards)
}

fn set(card: &mut CardSpec, key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{key} has no value"));
    }
    let s = &mut card.selection;
    let slot = match key {
        "reader" => &mut s.reader,
        "modem" => &mut s.modem,
        "aid" => &mut s.aid,
        "label" => &mut card.label,
        "vcard" => {
            s.vcard = Some(PathBuf::from(value));
            return Ok(());
        }
        other => {
            return Err(format!(
                "unknown key {other:?} (expected reader, modem, vcard, aid or label)"
            ))
        }
    };
    *slot = Some(value.to_owned());
    Ok(())
}

/// Exactly one way to reach the card, and a valid AID.
fn check(card: &CardSpec) -> Result<(), String> {
    card.selection.validate().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn environment() {
        assert!(cards(env(&[])).unwrap().is_empty());
        let c = cards(env(&[
            ("IOTSAFE_READER", "Virtual PCD 00 01"),
            ("IOTSAFE_AID", "A0000005590010"),
            ("IOTSAFE_TOKEN_LABEL", "mine"),
        ]))
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].selection.reader.as_deref(), Some("Virtual PCD 00 01"));
        assert_eq!(c[0].label.as_deref(), Some("mine"));
        assert!(cards(env(&[("IOTSAFE_READER", "a"), ("IOTSAFE_MODEM", "b")])).is_err());
        assert!(cards(env(&[("IOTSAFE_VCARD", "c.json"), ("IOTSAFE_AID", "zz")])).is_err());
    }

    #[test]
    fn file() {
        let text = "# two cards\n[card]\nreader = Virtual PCD 00 01\nlabel = a b\n\n[card]\n\
                    modem=tcp://127.0.0.1:7000\naid = A0000005590010\n";
        let c = parse(text).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].label.as_deref(), Some("a b"));
        assert_eq!(
            c[1].selection.modem.as_deref(),
            Some("tcp://127.0.0.1:7000")
        );
        assert_eq!(c[1].describe(), "modem tcp://127.0.0.1:7000");
        for bad in [
            "reader = x\n",
            "[card]\nreader x\n",
            "[card]\ncolour = red\nreader = x\n",
            "[card]\n[card]\nreader = x\n",
            "[card]\nreader = x\nvcard = y\n",
            "[card]\nreader =\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let e = parse("[card]\nreader = x\nfoo = 1\n").unwrap_err();
        assert!(e.0.starts_with("line 3:"), "{e}");
    }

    #[test]
    fn named_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p11.conf");
        std::fs::write(&path, "[card]\nvcard = /tmp/x.json\n").unwrap();
        let p = path.to_string_lossy().into_owned();
        let c = cards(env(&[("IOTSAFE_PKCS11_CONF", &p), ("IOTSAFE_READER", "r")])).unwrap();
        assert_eq!(c.len(), 1);
        assert!(c[0].selection.reader.is_none());
        assert!(cards(env(&[("IOTSAFE_PKCS11_CONF", "/nonexistent/p11.conf")])).is_err());
    }
}
