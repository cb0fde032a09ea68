//! What the standard prelude gives a `std` crate, from `alloc`, for the modules that build
//! without `std`.

pub(crate) use alloc::boxed::Box;
pub(crate) use alloc::format;
pub(crate) use alloc::string::{String, ToString};
pub(crate) use alloc::vec;
pub(crate) use alloc::vec::Vec;
