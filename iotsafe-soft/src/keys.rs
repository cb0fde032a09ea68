//! The provider's [`KeyProvider`]: it loads no private key, since the client's stays on the SIM.

use alloc::string::String;
use alloc::sync::Arc;

use rustls::crypto::KeyProvider;
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use rustls::Error;
use zeroize::Zeroize;

/// Refuses every private key: the device key never leaves the SIM, which signs the handshake
/// through a card signer (a [`rustls::client::ResolvesClientCert`]) instead.
pub static NO_PRIVATE_KEYS: &dyn KeyProvider = &NoPrivateKeys;

#[derive(Debug)]
struct NoPrivateKeys;

impl KeyProvider for NoPrivateKeys {
    fn load_private_key(
        &self,
        mut key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, Error> {
        // A key handed over by mistake is wiped, not just dropped.
        key_der.zeroize();
        Err(Error::General(String::from(
            "iotsafe-soft loads no private keys: the client key stays on the SIM; give rustls a \
             certificate resolver that signs with the card instead",
        )))
    }
}
