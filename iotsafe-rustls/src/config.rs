//! The high-level entry point: [`IotSafeTls`] reads what it needs from the card once and makes
//! rustls client and server configs around it.
//!
//! ```no_run
//! # fn demo(card: std::sync::Arc<iotsafe_core::Card>, roots: rustls::RootCertStore) -> Result<(), iotsafe_rustls::Error> {
//! use iotsafe_rustls::{EcdheOn, IotSafeTls, KxOptions};
//! let tls = IotSafeTls::builder(card)
//!     .ecdhe_on(EcdheOn::Card)
//!     .kx_options(KxOptions::pregenerating(true))
//!     .resumption(false)
//!     .build()?;
//! let client_config = tls.client_config(roots)?;
//! # Ok(()) }
//! ```

use crate::error::{Error, Result};
use crate::kx::{CardKxGroup, KxOptions};
use crate::provider::{CardProvider, EcdheOn};
use crate::resolver::{CardCertResolver, CardCertResolverBuilder, ChainPolicy};
use crate::rng::{CardEntropyRng, Reseed};
use crate::signer::CardSigningKey;
use iotsafe_core::{Card, ObjectRef};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use std::fmt;
use std::sync::Arc;

/// Options for [`IotSafeTls`]; every one has a default matching the standard card layout.
pub struct IotSafeTlsBuilder {
    /// The key, certificate files and chain, with their defaults, kept where the resolver that
    /// uses them keeps them.
    resolver: CardCertResolverBuilder,
    ecdhe: EcdheOn,
    kx_options: KxOptions,
    kx_group: Option<&'static CardKxGroup>,
    entropy: Option<Reseed>,
    resumption: bool,
    tls12: bool,
}

impl IotSafeTlsBuilder {
    /// The device private key (default ID `01`).
    pub fn device_key(mut self, key: ObjectRef) -> Self {
        self.resolver = self.resolver.key(key);
        self
    }

    /// The device certificate file (default: searched; see [`crate::resolver`]).
    pub fn certificate_file(mut self, file: ObjectRef) -> Self {
        self.resolver = self.resolver.certificate_file(file);
        self
    }

    /// The CA certificate file sent with [`ChainPolicy::WithCardCa`] (default ID `03`).
    pub fn ca_file(mut self, file: ObjectRef) -> Self {
        self.resolver = self.resolver.ca_file(file);
        self
    }

    /// Which certificates are sent (default: the device certificate only).
    pub fn chain(mut self, chain: ChainPolicy) -> Self {
        self.resolver = self.resolver.chain(chain);
        self
    }

    /// Sends `certificates` (e.g. an enrolled chain from [`crate::read_pem_chain`]) instead of
    /// the card's certificate files; [`Self::build`] checks that the first one certifies the card
    /// key. See [`CardCertResolverBuilder::certificate_chain`].
    pub fn certificate_chain(
        mut self,
        source: impl Into<String>,
        certificates: Vec<rustls::pki_types::CertificateDer<'static>>,
    ) -> Self {
        self.resolver = self.resolver.certificate_chain(source, certificates);
        self
    }

    /// Where ECDHE runs (default [`EcdheOn::Card`]).
    pub fn ecdhe_on(mut self, ecdhe: EcdheOn) -> Self {
        self.ecdhe = ecdhe;
        self
    }

    /// Ephemeral and peer slots, slot queue, pre-generation (defaults: IDs `04`, `05`, queued with
    /// [`crate::DEFAULT_SLOT_LEASE`], no pre-generation).
    pub fn kx_options(mut self, options: KxOptions) -> Self {
        self.kx_options = options;
        self
    }

    /// Reuses a key-exchange group made earlier (so that rebuilding configs leaks nothing more);
    /// [`Self::kx_options`] is then ignored.
    pub fn kx_group(mut self, group: &'static CardKxGroup) -> Self {
        self.kx_group = Some(group);
        self
    }

    /// Mixes card entropy into the TLS RNG (default: off). See [`crate::rng`].
    pub fn card_entropy(mut self, reseed: Reseed) -> Self {
        self.entropy = Some(reseed);
        self
    }

    /// Session resumption (default: on). A resumed TLS 1.3 handshake still does ECDHE on the card
    /// but sends no CertificateVerify, so the card does not sign. Turn it off when every
    /// connection must prove possession of the card key.
    pub fn resumption(mut self, enabled: bool) -> Self {
        self.resumption = enabled;
        self
    }

    /// Also offer TLS 1.2 (default: TLS 1.3 only). With both versions enabled, a client whose peer
    /// picks TLS 1.2 generates two card keys (the speculative TLS 1.3 share and the TLS 1.2 one).
    #[cfg(feature = "tls12")]
    pub fn tls12(mut self, enabled: bool) -> Self {
        self.tls12 = enabled;
        self
    }

    /// Reads the key and certificate from the card, checks the ECDHE slots
    /// ([`crate::kx::check_slots`]), takes the card's key-exchange group from the pool (see
    /// [`CardKxGroup::for_card`]: building again on the same card reuses it) and, if asked, the
    /// entropy seed.
    pub fn build(self) -> Result<IotSafeTls> {
        let card = Arc::clone(self.resolver.card());
        let (mut provider, kx) = match self.ecdhe {
            EcdheOn::Card => {
                let kx = match self.kx_group {
                    Some(kx) => kx,
                    None => {
                        crate::kx::check_slots(&card, &self.kx_options)?;
                        CardKxGroup::for_card(&card, self.kx_options.clone())
                    }
                };
                (CardProvider::card_ecdhe(kx), Some(kx))
            }
            EcdheOn::Host => (CardProvider::host_ecdhe(), None),
        };
        let mut signing_key =
            CardSigningKey::new(Arc::clone(&card), self.resolver.key_ref().clone())?;
        if let Some(kx) = kx.filter(|kx| kx.options().pregenerate) {
            // The first key now, the next ones after each signature: never between DH and
            // signature. The hook holds the `'static` group, which holds only a `Weak<Card>`.
            kx.pregenerate_in_background();
            signing_key =
                signing_key.with_after_sign(Arc::new(move || kx.pregenerate_in_background()));
        }
        let resolver = Arc::new(self.resolver.signing_key(signing_key).build()?);

        if let Some(reseed) = self.entropy {
            let software = crate::provider::software_provider().secure_random;
            let rng = CardEntropyRng::for_card(card, software, reseed)?;
            provider = provider.secure_random(rng);
        }

        let versions = protocol_versions(self.tls12);

        Ok(IotSafeTls {
            provider: Arc::new(provider.build()),
            resolver,
            kx,
            resumption: self.resumption,
            versions,
        })
    }
}

/// TLS 1.3, plus TLS 1.2 when asked and compiled in.
fn protocol_versions(tls12: bool) -> Vec<&'static SupportedProtocolVersion> {
    #[cfg(feature = "tls12")]
    if tls12 {
        return vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    let _ = tls12;
    vec![&rustls::version::TLS13]
}

impl fmt::Debug for IotSafeTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IotSafeTlsBuilder")
            .field("key", self.resolver.key_ref())
            .field("ecdhe", &self.ecdhe)
            .field("resumption", &self.resumption)
            .finish_non_exhaustive()
    }
}

/// What the card offers TLS, read once: the provider, the certificate resolver, and the options.
#[derive(Clone)]
pub struct IotSafeTls {
    provider: Arc<CryptoProvider>,
    resolver: Arc<CardCertResolver>,
    kx: Option<&'static CardKxGroup>,
    resumption: bool,
    versions: Vec<&'static SupportedProtocolVersion>,
}

impl IotSafeTls {
    /// Starts a builder with the defaults: key ID `01`, certificate searched, ECDHE on the card
    /// (slots `04`/`05`, concurrent handshakes queued for the slot, no pre-generation), TLS 1.3 only, resumption on, no card entropy.
    pub fn builder(card: Arc<Card>) -> IotSafeTlsBuilder {
        IotSafeTlsBuilder {
            resolver: CardCertResolver::builder(card),
            ecdhe: EcdheOn::Card,
            kx_options: KxOptions::default(),
            kx_group: None,
            entropy: None,
            resumption: true,
            tls12: false,
        }
    }

    /// A client config that authenticates servers against `roots` and presents the card
    /// certificate when asked.
    pub fn client_config(&self, roots: impl Into<Arc<RootCertStore>>) -> Result<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&self.versions)
            .map_err(|e| Error::rustls("client config: protocol versions", e))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(self.resolver.clone());
        if !self.resumption {
            config.resumption = Resumption::disabled();
        }
        Ok(config)
    }

    /// The async connector for [`IotSafeTls::client_config`] with `roots`: the way to connect from
    /// tokio code (see [`crate::connector`]).
    #[cfg(feature = "tokio")]
    pub fn connector(&self, roots: impl Into<Arc<RootCertStore>>) -> Result<crate::CardConnector> {
        Ok(crate::CardConnector::from(Arc::new(
            self.client_config(roots)?,
        )))
    }

    /// A server config (the device as TLS server) with the card certificate and key, verifying
    /// clients with `client_verifier` (`WebPkiClientVerifier` or `NoClientAuth`).
    pub fn server_config(
        &self,
        client_verifier: Arc<dyn ClientCertVerifier>,
    ) -> Result<ServerConfig> {
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_protocol_versions(&self.versions)
            .map_err(|e| Error::rustls("server config: protocol versions", e))?
            .with_client_cert_verifier(client_verifier)
            .with_cert_resolver(self.resolver.clone());
        if !self.resumption {
            config.session_storage = Arc::new(NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
        }
        Ok(config)
    }

    /// The provider (share it with verifiers: `WebPkiClientVerifier::builder_with_provider`).
    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// The certificate resolver.
    pub fn resolver(&self) -> &Arc<CardCertResolver> {
        &self.resolver
    }

    /// The card key-exchange group ([`None`] with [`EcdheOn::Host`]).
    pub fn kx_group(&self) -> Option<&'static CardKxGroup> {
        self.kx
    }
}

impl fmt::Debug for IotSafeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IotSafeTls")
            .field("resolver", &self.resolver)
            .field("kx", &self.kx)
            .field("resumption", &self.resumption)
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}
