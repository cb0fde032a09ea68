//! The demo's MQTT client: one verification handshake (rumqttc never shows its connection, so
//! this is how the report learns the negotiated version, suite and group), then rumqttc over TLS
//! 1.3 with the card doing the signature and the ECDHE. Both connect with
//! [`iotsafe_rustls::CardConnector`], so the card's work never runs on the runtime's thread
//! (rumqttc through [`crate::bridge`]); a 5 ms ticker measures how long the runtime was kept from
//! its other tasks while connecting ([`crate::stall`]).

use crate::backoff::Backoff;
use crate::bridge::CardTlsBridge;
use crate::card_summary::CardSummary;
use crate::report::{MessageStats, MqttSession, Report};
use crate::stall::StallWatch;
use iotsafe_cli::tls::{card_client_config, handshake, load_roots, server_name_for};
use iotsafe_cli::CliError;
use iotsafe_core::Card;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where the broker is and how to trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerTarget {
    /// Host name or IP (also the TLS server name unless `server_name` is set).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// CA certificate(s) of the broker (PEM).
    pub ca: PathBuf,
    /// TLS server name to verify, when not `host`.
    pub server_name: Option<String>,
    /// How the report names the broker ("embedded rumqttd", "mosquitto").
    pub description: String,
}

impl BrokerTarget {
    /// Parses `mqtts://HOST:PORT` (or `HOST:PORT`; default port 8883).
    pub fn parse(url: &str, ca: PathBuf) -> Result<BrokerTarget, DemoError> {
        let rest = url
            .strip_prefix("mqtts://")
            .or_else(|| url.strip_prefix("ssl://"))
            .unwrap_or(url);
        if url.starts_with("mqtt://") || url.starts_with("tcp://") {
            return Err(DemoError::new(
                "reading --broker",
                format!("{url:?} is a plain-text broker URL; the demo needs TLS"),
            )
            .hint("use mqtts://HOST:PORT"));
        }
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (
                h.trim_start_matches('[').trim_end_matches(']').to_string(),
                p.parse::<u16>().map_err(|_| {
                    DemoError::new("reading --broker", format!("{p:?} is not a port number"))
                })?,
            ),
            _ => (rest.to_string(), 8883),
        };
        if host.is_empty() {
            return Err(DemoError::new(
                "reading --broker",
                format!("no host in {url:?}"),
            ));
        }
        Ok(BrokerTarget {
            host,
            port,
            ca,
            server_name: None,
            description: "broker".into(),
        })
    }

    /// `HOST:PORT` for a TCP connect.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What the client does.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// MQTT client identifier.
    pub client_id: String,
    /// The client certificate chain to send (PEM), its key on the card; `None`: the card's own.
    pub certificate: Option<PathBuf>,
    /// Topic to subscribe and publish to.
    pub topic: String,
    /// Messages to publish (each must come back).
    pub count: u32,
    /// Reconnect back-off.
    pub backoff: Backoff,
    /// Longest wait for any one step (ConnAck, SubAck, a message coming back).
    pub step_timeout: Duration,
    /// Skip the verification handshake (the report then has no negotiated parameters).
    pub verification_handshake: bool,
    /// Set to `true` to stop (Ctrl-C): the client disconnects cleanly and returns
    /// [`DemoError`] "interrupted".
    pub cancel: Option<watch::Receiver<bool>>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            client_id: "device-0001".into(),
            certificate: None,
            topic: "iotsafe/demo/device-0001".into(),
            count: 3,
            backoff: Backoff::default(),
            step_timeout: Duration::from_secs(20),
            verification_handshake: true,
            cancel: None,
        }
    }
}

/// A demo failure (what failed, why, what to try): the same shape as the CLI's errors.
pub type DemoError = CliError;

/// Runs the demo client against `broker` with `card`: a verification handshake, then MQTT over
/// TLS 1.3 with the card: connect (waits for ConnAck), subscribe, publish `count` messages and
/// receive each back, disconnect. Reconnects with back-off on connection errors.
pub async fn run_mqtt_client(
    card: Arc<Card>,
    broker: BrokerTarget,
    opts: ClientOptions,
) -> Result<Report, DemoError> {
    let started = Instant::now();
    let stall = StallWatch::start();
    let card_summary = CardSummary::read(&card);
    let roots = load_roots(&broker.ca)?;
    let config = Arc::new(card_client_config(
        Arc::clone(&card),
        None,
        opts.certificate.as_deref(),
        roots,
    )?);
    let server_name = server_name_for(&broker.address(), broker.server_name.as_deref())?;

    let verification = if opts.verification_handshake {
        let (mut stream, report) = handshake(
            Arc::clone(&config),
            &card,
            &broker.address(),
            server_name.clone(),
        )
        .await?;
        use tokio::io::AsyncWriteExt;
        let _ = stream.shutdown().await;
        Some(report)
    } else {
        None
    };

    let before_mqtt = card.stats();
    let mqtt_started = Instant::now();
    let connector = iotsafe_rustls::CardConnector::from(Arc::clone(&config));
    let bridge = CardTlsBridge::start(connector, broker.address(), server_name.clone())
        .map_err(|e| DemoError::new("starting the local socket for rumqttc", e))?;
    let socket = bridge.socket().display().to_string();
    let mut mqtt = MqttOptions::new(opts.client_id.clone(), socket, 0);
    mqtt.set_keep_alive(Duration::from_secs(30));
    mqtt.set_clean_session(true);
    mqtt.set_transport(rumqttc::Transport::Unix);
    let (client, mut eventloop) = AsyncClient::new(mqtt, 16);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_connection_timeout(opts.step_timeout.as_secs().max(5));
    eventloop.set_network_options(network);
    let mut session = Session {
        client,
        eventloop,
        opts,
        connections: 0,
        reconnects: 0,
        connect_card: None,
        subscribed: false,
        bridge,
        stall: Some(stall),
        connect_stall: None,
    };
    let messages = session.run(&card, &before_mqtt).await?;
    let mqtt_stats = card.stats().since(&before_mqtt);
    Ok(Report {
        card: card_summary,
        broker: format!("mqtts://{} ({})", broker.address(), broker.description),
        verification,
        mqtt: MqttSession {
            client_id: session.opts.client_id.clone(),
            topic: session.opts.topic.clone(),
            connections: session.connections,
            reconnects: session.reconnects,
            first_connect_card: session.connect_card.unwrap_or_default(),
            connect_stall: session.connect_stall.unwrap_or_default(),
            card: mqtt_stats,
            duration: mqtt_started.elapsed(),
            disconnected_cleanly: true,
        },
        messages,
        total: started.elapsed(),
    })
}

struct Session {
    client: AsyncClient,
    eventloop: EventLoop,
    opts: ClientOptions,
    connections: u32,
    reconnects: u32,
    connect_card: Option<iotsafe_core::CardStats>,
    subscribed: bool,
    /// Carries rumqttc's connections over the card's TLS.
    bridge: CardTlsBridge,
    /// Watching the runtime from the start to the first ConnAck.
    stall: Option<StallWatch>,
    connect_stall: Option<Duration>,
}

enum Step {
    Connected,
    Subscribed,
    Received(Duration),
    Disconnected,
}

impl Session {
    async fn run(
        &mut self,
        card: &Card,
        before: &iotsafe_core::CardStats,
    ) -> Result<MessageStats, DemoError> {
        // Connect (the first poll connects) and subscribe.
        self.wait_for(card, before, |e| {
            matches!(e, Event::Incoming(Packet::ConnAck(_))).then_some(Step::Connected)
        })
        .await?;
        self.subscribe().await?;
        self.wait_for(card, before, |e| {
            matches!(e, Event::Incoming(Packet::SubAck(_))).then_some(Step::Subscribed)
        })
        .await?;

        let mut stats = MessageStats::default();
        for seq in 0..self.opts.count {
            let payload = format!("iotsafe-rs demo message {seq} from {}", self.opts.client_id);
            let sent = Instant::now();
            self.client
                .publish(
                    &self.opts.topic,
                    QoS::AtLeastOnce,
                    false,
                    payload.clone().into_bytes(),
                )
                .await
                .map_err(|e| DemoError::new("publishing", e))?;
            stats.sent += 1;
            let topic = self.opts.topic.clone();
            let step = self
                .wait_for(card, before, move |e| match e {
                    Event::Incoming(Packet::Publish(p))
                        if p.topic == topic && p.payload.as_ref() == payload.as_bytes() =>
                    {
                        Some(Step::Received(sent.elapsed()))
                    }
                    _ => None,
                })
                .await?;
            if let Step::Received(rtt) = step {
                stats.record(rtt);
            }
        }

        self.client
            .disconnect()
            .await
            .map_err(|e| DemoError::new("disconnecting", e))?;
        self.wait_for(card, before, |e| {
            matches!(e, Event::Outgoing(Outgoing::Disconnect)).then_some(Step::Disconnected)
        })
        .await?;
        Ok(stats)
    }

    async fn subscribe(&mut self) -> Result<(), DemoError> {
        self.client
            .subscribe(&self.opts.topic, QoS::AtLeastOnce)
            .await
            .map_err(|e| DemoError::new(format!("subscribing to {}", self.opts.topic), e))?;
        self.subscribed = true;
        Ok(())
    }

    /// Polls the event loop until `done` recognises an event; reconnects with back-off on
    /// connection errors (re-subscribing after a reconnect), honours cancellation and the step
    /// timeout.
    async fn wait_for(
        &mut self,
        card: &Card,
        before: &iotsafe_core::CardStats,
        mut done: impl FnMut(&Event) -> Option<Step>,
    ) -> Result<Step, DemoError> {
        let deadline = tokio::time::Instant::now() + self.opts.step_timeout;
        loop {
            let cancel = self.opts.cancel.clone();
            let cancelled = async move {
                match cancel {
                    Some(mut rx) => {
                        let _ = rx.wait_for(|c| *c).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let event = tokio::select! {
                e = self.eventloop.poll() => e,
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(DemoError::new(
                        "waiting for the broker",
                        format!("no answer within {:?}", self.opts.step_timeout),
                    ).hint("check the broker is reachable and accepts the client certificate"));
                }
                _ = cancelled => {
                    let _ = self.client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.eventloop.poll()).await;
                    return Err(DemoError::new("running the demo", "interrupted"));
                }
            };
            match event {
                Ok(event) => {
                    if let Event::Incoming(Packet::ConnAck(ack)) = &event {
                        self.connections += 1;
                        if self.connect_card.is_none() {
                            self.connect_card = Some(card.stats().since(before));
                        }
                        if let Some(watch) = self.stall.take() {
                            self.connect_stall = Some(watch.stop().await);
                        }
                        self.opts.backoff.reset();
                        if self.connections > 1 && self.subscribed {
                            // Clean session: subscriptions are gone after a reconnect.
                            self.subscribe().await?;
                        }
                        if ack.code != rumqttc::ConnectReturnCode::Success {
                            return Err(DemoError::new(
                                "connecting",
                                format!("the broker refused: {:?}", ack.code),
                            ));
                        }
                    }
                    if let Some(step) = done(&event) {
                        return Ok(step);
                    }
                }
                Err(e) => {
                    let mut why = describe_connection_error(&e);
                    if let Some(tls) = self.bridge.last_error() {
                        why = format!("{why} ({tls})");
                    }
                    match self.opts.backoff.next_delay() {
                        Some(delay) => {
                            self.reconnects += 1;
                            eprintln!(
                                "mqtt: connection failed ({why}); retrying in {} ms",
                                delay.as_millis()
                            );
                            tokio::time::sleep(delay).await;
                        }
                        None => {
                            return Err(DemoError::new(
                                format!(
                                    "connecting to the broker (after {} retries)",
                                    self.opts.backoff.retries()
                                ),
                                why,
                            )
                            .hint(connection_hint(&e, &self.bridge)));
                        }
                    }
                }
            }
        }
    }
}

fn describe_connection_error(e: &ConnectionError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn connection_hint(e: &ConnectionError, bridge: &CardTlsBridge) -> &'static str {
    let text = describe_connection_error(e) + &bridge.last_error().unwrap_or_default();
    if text.contains("CertificateRequired")
        || text.contains("BadCertificate")
        || text.contains("UnknownCA")
    {
        "the broker refused the card's certificate: check it trusts the CA that issued it"
    } else if text.contains("UnknownIssuer") || text.contains("NotValidForName") {
        "the broker's certificate does not verify against --ca (or its name does not match)"
    } else if text.contains("refused") || text.contains("Connection refused") {
        "check the broker address and that it is running"
    } else {
        "check the broker address, --ca, and that the broker accepts TLS 1.3 client certificates"
    }
}
