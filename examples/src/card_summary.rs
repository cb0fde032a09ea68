//! What the report says about the card: where it is, the applet, and the objects the demo uses.

use iotsafe_core::objects::functions;
use iotsafe_core::{Card, ObjectInfo, ObjectKind};
use serde_json::{json, Value};

/// One object the demo uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedObject {
    /// Its role ("device key", "device certificate", "ECDHE key", "peer key slot").
    pub role: String,
    /// "private key ID 01 \"device\"".
    pub object: String,
    /// Extra detail (certificate subject and issuer).
    pub detail: Option<String>,
}

/// The card part of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardSummary {
    /// Transport description.
    pub transport: String,
    /// AID that answered, hex.
    pub aid: String,
    /// Logical channel.
    pub channel: u8,
    /// Applet version.
    pub applet_version: Option<u8>,
    /// Proprietary applet identifier, as text when printable, else hex.
    pub applet_id: Option<String>,
    /// Objects used by TLS.
    pub objects: Vec<UsedObject>,
}

fn describe(o: &ObjectInfo) -> String {
    let id =
        o.id.as_deref()
            .map(|i| format!("ID {}", iotsafe_core::hexutil::encode(i)))
            .unwrap_or_default();
    let label = o
        .label_text()
        .map(|l| format!(" {l:?}"))
        .unwrap_or_default();
    format!("{}{label}", id)
}

impl CardSummary {
    /// Reads the applet information and the object list (both cached by the session).
    pub fn read(card: &Card) -> CardSummary {
        let info = card.applet_info().ok();
        let (aid, channel) = card
            .selection()
            .map(|(aid, ch)| (iotsafe_core::hexutil::encode(&aid), ch))
            .unwrap_or_else(|| ("-".into(), 0));
        let applet_id = info
            .as_ref()
            .and_then(|i| i.proprietary_id.clone())
            .map(|id| match std::str::from_utf8(&id) {
                Ok(t) if t.chars().all(|c| !c.is_control()) => t.trim().to_string(),
                _ => iotsafe_core::hexutil::encode(&id),
            });
        let list = card.objects().unwrap_or_default();
        let mut objects = Vec::new();
        let find = |kind: ObjectKind, pred: &dyn Fn(&ObjectInfo) -> bool| {
            list.iter()
                .find(|o| o.kind == Some(kind) && pred(o))
                .cloned()
        };
        if let Some(o) = find(ObjectKind::PrivateKey, &|o| {
            o.id.as_deref() == Some(&[0x01])
        }) {
            objects.push(UsedObject {
                role: "device key (CertificateVerify)".into(),
                object: describe(&o),
                detail: None,
            });
        }
        if let Some(o) = find(ObjectKind::File, &|o| {
            o.label.as_deref() == Some(b"device-cert")
        })
        .or_else(|| find(ObjectKind::File, &|o| o.id.as_deref() == Some(&[0x02])))
        {
            let detail = o
                .reference()
                .and_then(|r| card.read_file(&r).ok())
                .and_then(|der| {
                    x509_parser::parse_x509_certificate(&der)
                        .ok()
                        .map(|(_, c)| format!("subject {}, issuer {}", c.subject(), c.issuer()))
                });
            objects.push(UsedObject {
                role: "device certificate".into(),
                object: describe(&o),
                detail,
            });
        }
        if let Some(o) = find(ObjectKind::PrivateKey, &|o| {
            o.id.as_deref() == Some(&[0x04]) || o.has_functions(functions::KEY_AGREEMENT)
        }) {
            objects.push(UsedObject {
                role: "ECDHE key pair".into(),
                object: describe(&o),
                detail: None,
            });
        }
        if let Some(o) = find(ObjectKind::PublicKey, &|o| o.id.as_deref() == Some(&[0x05])) {
            objects.push(UsedObject {
                role: "peer key slot".into(),
                object: describe(&o),
                detail: None,
            });
        }
        CardSummary {
            transport: card.describe(),
            aid,
            channel,
            applet_version: info.as_ref().and_then(|i| i.version),
            applet_id,
            objects,
        }
    }

    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "transport": self.transport,
            "aid": self.aid,
            "channel": self.channel,
            "applet_version": self.applet_version,
            "applet_id": self.applet_id,
            "objects": self.objects.iter().map(|o| json!({
                "role": o.role, "object": o.object, "detail": o.detail,
            })).collect::<Vec<_>>(),
        })
    }

    /// Text form, indented.
    pub fn to_text(&self, indent: &str) -> String {
        let mut out = format!(
            "{indent}transport:     {}\n{indent}applet:        AID {} on channel {}, version {}{}\n",
            self.transport,
            self.aid,
            self.channel,
            self.applet_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            self.applet_id.as_deref().map(|i| format!(" ({i})")).unwrap_or_default(),
        );
        for o in &self.objects {
            out.push_str(&format!(
                "{indent}{:<14} {}",
                format!("{}:", short_role(&o.role)),
                o.object
            ));
            if let Some(d) = &o.detail {
                out.push_str(&format!(" ({d})"));
            }
            out.push('\n');
        }
        out
    }
}

fn short_role(role: &str) -> &str {
    match role {
        "device key (CertificateVerify)" => "device key",
        "device certificate" => "certificate",
        "ECDHE key pair" => "ECDHE key",
        "peer key slot" => "peer slot",
        other => other,
    }
}
