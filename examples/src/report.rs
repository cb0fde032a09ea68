//! The demo's report: the card, the handshake, the MQTT session and the messages' round trip.

use crate::card_summary::CardSummary;
use iotsafe_cli::format::{millis, stats_json, stats_text};
use iotsafe_cli::tls::HandshakeReport;
use iotsafe_core::{CardStats, Operation};
use serde_json::{json, Value};
use std::time::Duration;

/// Round trips of the messages the client published and received back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageStats {
    /// Published.
    pub sent: u32,
    /// Received back.
    pub received: u32,
    /// Round trip of each received message, in order.
    pub round_trips: Vec<Duration>,
}

impl MessageStats {
    /// Records one message coming back after `rtt`.
    pub fn record(&mut self, rtt: Duration) {
        self.received += 1;
        self.round_trips.push(rtt);
    }
    /// Shortest round trip.
    pub fn min(&self) -> Duration {
        self.round_trips.iter().min().copied().unwrap_or_default()
    }
    /// Longest round trip.
    pub fn max(&self) -> Duration {
        self.round_trips.iter().max().copied().unwrap_or_default()
    }
    /// Mean round trip.
    pub fn mean(&self) -> Duration {
        if self.round_trips.is_empty() {
            return Duration::ZERO;
        }
        self.round_trips.iter().sum::<Duration>() / self.round_trips.len() as u32
    }
}

/// The MQTT part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSession {
    /// Client identifier.
    pub client_id: String,
    /// Topic.
    pub topic: String,
    /// ConnAcks received (1 without reconnects).
    pub connections: u32,
    /// Reconnect attempts.
    pub reconnects: u32,
    /// Card counters from the start of the MQTT session to the first ConnAck (one handshake).
    pub first_connect_card: CardStats,
    /// The longest the runtime was kept from its other tasks from the start to the first
    /// ConnAck (the verification handshake and the MQTT connect), by a 5 ms ticker.
    pub connect_stall: Duration,
    /// Card counters of the whole MQTT session.
    pub card: CardStats,
    /// From the first connect to the disconnect.
    pub duration: Duration,
    /// The client sent DISCONNECT.
    pub disconnected_cleanly: bool,
}

/// Everything the demo did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The card.
    pub card: CardSummary,
    /// "mqtts://127.0.0.1:41234 (embedded rumqttd …)".
    pub broker: String,
    /// The verification handshake (negotiated parameters and card counters).
    pub verification: Option<HandshakeReport>,
    /// The MQTT session.
    pub mqtt: MqttSession,
    /// Messages.
    pub messages: MessageStats,
    /// Whole run.
    pub total: Duration,
}

impl Report {
    /// TLS handshakes done with the card (verification + MQTT connections).
    pub fn handshakes(&self) -> u64 {
        u64::from(self.mqtt.connections) + u64::from(self.verification.is_some())
    }

    /// Card signatures over the whole run.
    pub fn card_signatures(&self) -> u64 {
        self.verification
            .as_ref()
            .map_or(0, |v| v.card_signatures())
            + self.mqtt.card.count(Operation::Sign)
    }

    /// Whether everything the demo promises happened: every handshake signed once on the card,
    /// every message came back, clean disconnect.
    pub fn success(&self) -> bool {
        self.mqtt.connections >= 1
            && self.messages.received == self.messages.sent
            && self.mqtt.disconnected_cleanly
            && self.card_signatures() == self.handshakes()
    }

    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "success": self.success(),
            "card": self.card.to_json(),
            "broker": self.broker,
            "handshake": self.verification.as_ref().map(|v| v.to_json()),
            "mqtt": {
                "client_id": self.mqtt.client_id,
                "topic": self.mqtt.topic,
                "connections": self.mqtt.connections,
                "reconnects": self.mqtt.reconnects,
                "connect_card_signatures": self.mqtt.first_connect_card.count(Operation::Sign),
                "connect_card_key_generations": self.mqtt.first_connect_card.count(Operation::GenerateKeyPair),
                "connect_card_dh": self.mqtt.first_connect_card.count(Operation::Dh),
                "runtime": "tokio current_thread",
                "connect_longest_runtime_stall_ms": self.mqtt.connect_stall.as_secs_f64() * 1000.0,
                "card": stats_json(&self.mqtt.card),
                "duration_ms": self.mqtt.duration.as_secs_f64() * 1000.0,
                "disconnected_cleanly": self.mqtt.disconnected_cleanly,
            },
            "messages": {
                "sent": self.messages.sent,
                "received": self.messages.received,
                "round_trip_ms": self.messages.round_trips.iter().map(|d| d.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
                "min_ms": self.messages.min().as_secs_f64() * 1000.0,
                "mean_ms": self.messages.mean().as_secs_f64() * 1000.0,
                "max_ms": self.messages.max().as_secs_f64() * 1000.0,
            },
            "handshakes": self.handshakes(),
            "card_signatures": self.card_signatures(),
            "total_ms": self.total.as_secs_f64() * 1000.0,
        })
    }

    /// Text form.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "IoT SAFE mutual-TLS MQTT demo: {}\n\n",
            if self.success() { "OK" } else { "FAILED" }
        ));
        out.push_str("card\n");
        out.push_str(&self.card.to_text("  "));
        out.push_str(&format!("\nbroker\n  {}\n", self.broker));
        if let Some(v) = &self.verification {
            out.push_str("\nhandshake (verification connection, CardConnector)\n");
            out.push_str(&v.to_text("  "));
        }
        let c = &self.mqtt.first_connect_card;
        out.push_str(&format!(
            "\nmqtt (rumqttc over the card's TLS)\n  connected as {} ({} connection(s), {} reconnect(s))\n  card during connect: {} signature(s), {} key generation(s), {} ECDH, {} APDUs, {} in the card\n  runtime: tokio current_thread; longest stall while connecting {} (5 ms ticker)\n  subscribed to {}\n",
            self.mqtt.client_id,
            self.mqtt.connections,
            self.mqtt.reconnects,
            c.count(Operation::Sign),
            c.count(Operation::GenerateKeyPair),
            c.count(Operation::Dh),
            c.apdus,
            millis(c.time_in_card),
            millis(self.mqtt.connect_stall),
            self.mqtt.topic,
        ));
        out.push_str(&format!(
            "  messages: {} published, {} received back; round trip min {} / mean {} / max {}\n",
            self.messages.sent,
            self.messages.received,
            millis(self.messages.min()),
            millis(self.messages.mean()),
            millis(self.messages.max()),
        ));
        out.push_str(&format!(
            "  {}\n  card over the MQTT session:\n{}",
            if self.mqtt.disconnected_cleanly {
                "disconnected cleanly"
            } else {
                "did NOT disconnect cleanly"
            },
            stats_text(&self.mqtt.card, "    "),
        ));
        out.push_str(&format!(
            "\nsummary: {} handshake(s), {} card signature(s) (one per handshake: {}), total {}\n",
            self.handshakes(),
            self.card_signatures(),
            if self.card_signatures() == self.handshakes() {
                "yes"
            } else {
                "NO"
            },
            millis(self.total),
        ));
        out
    }
}
