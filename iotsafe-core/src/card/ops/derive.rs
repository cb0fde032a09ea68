//! Secrets computed on the card: COMPUTE DH, HKDF and PRF, and GET RANDOM.

use super::Op;
use crate::card::Card;
use crate::commands::{self, HashAlgorithm};
use crate::error::{CommandKind, Error};
use crate::link::Secrecy;
use crate::objects::ObjectRef;
use crate::prelude::*;
use crate::stats::Operation;
use zeroize::Zeroizing;

impl Card {
    /// COMPUTE DH between a private key and a public key already on the card; returns the x
    /// coordinate (32 bytes for P-256).
    pub fn compute_dh(
        &self,
        private: &ObjectRef,
        public: &ObjectRef,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.lock().run(Operation::Dh, |op| op.dh(private, public))
    }

    /// COMPUTE HKDF (extract) on the card.
    pub fn hkdf_extract(
        &self,
        ikm: &[u8],
        salt: &[u8],
        hash: HashAlgorithm,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.lock().run(Operation::Hkdf, |op| {
            let cmd = commands::hkdf_extract(op.cla, ikm, salt, hash, op.case4_le())?;
            op.exchange_ok(&cmd, CommandKind::ComputeHkdf, Secrecy::Both)
        })
    }

    /// COMPUTE PRF (TLS 1.2 P_SHA256) on the card, general mode.
    pub fn prf(
        &self,
        secret: &[u8],
        label_and_seed: &[u8],
        length: u8,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.lock().run(Operation::Prf, |op| {
            let cmd = commands::prf(op.cla, secret, label_and_seed, length, op.case4_le())?;
            let out = op.exchange_ok(&cmd, CommandKind::ComputePrf, Secrecy::Both)?;
            if out.len() != usize::from(length) {
                return Err(Error::Malformed {
                    command: CommandKind::ComputePrf,
                    expected: "as many bytes as asked",
                    got: format!("{} bytes for {length} asked", out.len()),
                });
            }
            Ok(out)
        })
    }

    /// GET RANDOM: `len` bytes from the card's generator.
    pub fn get_random(&self, len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.lock().run(Operation::Random, |op| {
            let mut out = Zeroizing::new(Vec::with_capacity(len));
            while out.len() < len {
                let n = (len - out.len()).min(256) as u16;
                let data = op.exchange_ok(
                    &commands::get_random(op.cla, n)?,
                    CommandKind::GetRandom,
                    Secrecy::Response,
                )?;
                if data.is_empty() {
                    return Err(Error::malformed(
                        CommandKind::GetRandom,
                        "random bytes",
                        &[],
                    ));
                }
                let take = data.len().min(len - out.len());
                out.extend_from_slice(&data[..take]);
            }
            Ok(out)
        })
    }
}

impl Op<'_> {
    /// COMPUTE DH; the shared secret is the x coordinate (32 bytes for P-256).
    pub(super) fn dh(
        &mut self,
        private: &ObjectRef,
        public: &ObjectRef,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let cmd = commands::compute_dh(self.cla, private, public, self.case4_le())?;
        let data = self.exchange_ok(&cmd, CommandKind::ComputeDh, Secrecy::Response)?;
        Ok(Zeroizing::new(commands::parse_shared_secret(&data, 32)?))
    }
}
