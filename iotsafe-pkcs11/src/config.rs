//! Which cards the module offers, one slot each: from the environment, as the `iotsafe` CLI reads
//! it (`IOTSAFE_READER`, `IOTSAFE_MODEM`, `IOTSAFE_VCARD`, `IOTSAFE_AID`, and
//! `IOTSAFE_TOKEN_LABEL`), or from the file `IOTSAFE_PKCS11_CONF` names (one `[card]` section per
//! slot). Card selection is the `iotsafe-select` crate's, shared with the CLI: the module links
//! what opens a card, not the command-line tool.

pub use iotsafe_select::config::{cards, CardSpec, ConfigError};
