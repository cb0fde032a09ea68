//! The built module loaded as a C program loads it (`dlopen`, `C_GetFunctionList`), its function
//! list called with raw `cryptoki-sys` types. Only for tests: `unsafe` throughout.
#![allow(
    unsafe_code,
    dead_code,
    clippy::missing_safety_doc,
    clippy::macro_metavars_in_unsafe
)]

use cryptoki_sys::*;
use std::ptr::{null, null_mut};

/// The module, loaded, and its function list.
pub struct Raw {
    _library: libloading::Library,
    list: *const CK_FUNCTION_LIST,
}

// The function list is a static table inside the module, and the module is thread-safe
// (CKF_OS_LOCKING_OK): tests call it from several threads.
unsafe impl Send for Raw {}
unsafe impl Sync for Raw {}

/// Calls a function of the list: `call!(raw, C_Name(args…))`. Every call in these tests is an
/// unsafe FFI call by design (raw pointers, some deliberately wrong), hence the unsafe block
/// around the caller's arguments.
#[macro_export]
macro_rules! call {
    ($raw:expr, $f:ident($($arg:expr),* $(,)?)) => {
        unsafe { ($raw.functions().$f.expect(stringify!($f)))($($arg),*) }
    };
}

impl Raw {
    /// Loads the module built for these tests.
    pub fn load() -> Raw {
        let path = super::module_path();
        let library = unsafe { libloading::Library::new(&path) }.expect("dlopen the module");
        let get: libloading::Symbol<'_, unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV> =
            unsafe { library.get(b"C_GetFunctionList\0") }.expect("C_GetFunctionList");
        let mut list = null_mut();
        assert_eq!(unsafe { get(&mut list) }, CKR_OK);
        assert!(!list.is_null());
        let list = list.cast_const();
        Raw {
            _library: library,
            list,
        }
    }

    /// The function list.
    pub fn functions(&self) -> &CK_FUNCTION_LIST {
        unsafe { &*self.list }
    }

    /// `C_Initialize` with `CKF_OS_LOCKING_OK`.
    pub fn initialize(&self) -> CK_RV {
        let mut args = init_args(CKF_OS_LOCKING_OK, null_mut());
        call!(
            self,
            C_Initialize((&mut args as *mut CK_C_INITIALIZE_ARGS).cast())
        )
    }

    /// `C_Finalize`.
    pub fn finalize(&self) -> CK_RV {
        call!(self, C_Finalize(null_mut()))
    }

    /// A read/write session on slot 0.
    pub fn session(&self) -> CK_SESSION_HANDLE {
        let mut h = 0;
        let rv = call!(
            self,
            C_OpenSession(
                0,
                CKF_SERIAL_SESSION | CKF_RW_SESSION,
                null_mut(),
                None,
                &mut h
            )
        );
        assert_eq!(rv, CKR_OK, "C_OpenSession");
        h
    }

    /// Every object matching `template`.
    pub fn find(
        &self,
        session: CK_SESSION_HANDLE,
        template: &mut [CK_ATTRIBUTE],
    ) -> Vec<CK_OBJECT_HANDLE> {
        let rv = call!(
            self,
            C_FindObjectsInit(session, template.as_mut_ptr(), template.len() as CK_ULONG)
        );
        assert_eq!(rv, CKR_OK, "C_FindObjectsInit");
        let mut out = Vec::new();
        loop {
            let mut batch = [0 as CK_OBJECT_HANDLE; 3];
            let mut n = 0;
            let rv = call!(self, C_FindObjects(session, batch.as_mut_ptr(), 3, &mut n));
            assert_eq!(rv, CKR_OK, "C_FindObjects");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&batch[..n as usize]);
        }
        assert_eq!(call!(self, C_FindObjectsFinal(session)), CKR_OK);
        out
    }

    /// The object of `class` labelled `label`.
    pub fn object(
        &self,
        session: CK_SESSION_HANDLE,
        class: CK_OBJECT_CLASS,
        label: &str,
    ) -> CK_OBJECT_HANDLE {
        let mut class = class;
        let mut label = label.as_bytes().to_vec();
        let mut template = [
            attribute(CKA_CLASS, &mut class),
            CK_ATTRIBUTE {
                type_: CKA_LABEL,
                pValue: label.as_mut_ptr().cast(),
                ulValueLen: label.len() as CK_ULONG,
            },
        ];
        let found = self.find(session, &mut template);
        assert_eq!(
            found.len(),
            1,
            "one object labelled {:?}",
            String::from_utf8_lossy(&label)
        );
        found[0]
    }

    /// One attribute: its value, or the `CKR_*` of the size query.
    pub fn attribute(
        &self,
        session: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        kind: CK_ATTRIBUTE_TYPE,
    ) -> Result<Vec<u8>, CK_RV> {
        let mut a = CK_ATTRIBUTE {
            type_: kind,
            pValue: null_mut(),
            ulValueLen: 0,
        };
        let rv = call!(self, C_GetAttributeValue(session, object, &mut a, 1));
        if rv != CKR_OK {
            // A refused attribute says so in its length; a refused call (bad handle) leaves it.
            if rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID {
                assert_eq!(
                    a.ulValueLen, CK_UNAVAILABLE_INFORMATION,
                    "length of a refused attribute"
                );
            }
            return Err(rv);
        }
        let mut value = vec![0u8; a.ulValueLen as usize];
        a.pValue = value.as_mut_ptr().cast();
        let rv = call!(self, C_GetAttributeValue(session, object, &mut a, 1));
        assert_eq!(rv, CKR_OK, "attribute {kind:#x} after its size query");
        assert_eq!(a.ulValueLen as usize, value.len());
        Ok(value)
    }

    /// `C_SignInit` + `C_Sign` in one go; the signature or the failing `CKR_*`.
    pub fn sign(
        &self,
        session: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        key: CK_OBJECT_HANDLE,
        data: &[u8],
    ) -> Result<Vec<u8>, CK_RV> {
        let mut m = CK_MECHANISM {
            mechanism,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        let rv = call!(self, C_SignInit(session, &mut m, key));
        if rv != CKR_OK {
            return Err(rv);
        }
        let mut data = data.to_vec();
        let mut out = [0u8; 64];
        let mut len = out.len() as CK_ULONG;
        let rv = call!(
            self,
            C_Sign(
                session,
                data.as_mut_ptr(),
                data.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len
            )
        );
        if rv != CKR_OK {
            return Err(rv);
        }
        Ok(out[..len as usize].to_vec())
    }
}

/// The P-256 curve's `CKA_EC_PARAMS`.
pub const P256: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];

impl Raw {
    /// `C_GenerateKeyPair` with EC_PARAMS `params` (none when empty) and the private key's
    /// `CKA_ID` and `CKA_DERIVE`: the public and private key handles, or the `CKR_*`.
    pub fn generate(
        &self,
        s: CK_SESSION_HANDLE,
        params: &mut [u8],
        id: u8,
        derive: bool,
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), CK_RV> {
        let mut mechanism = CK_MECHANISM {
            mechanism: CKM_EC_KEY_PAIR_GEN,
            pParameter: null_mut(),
            ulParameterLen: 0,
        };
        let (mut id, mut yes, mut flag) = ([id], CK_TRUE, if derive { CK_TRUE } else { CK_FALSE });
        let mut public = vec![bytes(CKA_ID, &mut id)];
        if !params.is_empty() {
            public.push(bytes(CKA_EC_PARAMS, params));
        }
        let mut private = [
            bytes(CKA_ID, &mut id),
            attribute(CKA_SENSITIVE, &mut yes),
            attribute(CKA_DERIVE, &mut flag),
        ];
        let (mut p, mut k) = (0, 0);
        let rv = call!(
            self,
            C_GenerateKeyPair(
                s,
                &mut mechanism,
                public.as_mut_ptr(),
                public.len() as CK_ULONG,
                private.as_mut_ptr(),
                3,
                &mut p,
                &mut k
            )
        );
        if rv == CKR_OK {
            Ok((p, k))
        } else {
            Err(rv)
        }
    }
}

/// A `CK_ATTRIBUTE` over a byte buffer.
pub fn bytes(kind: CK_ATTRIBUTE_TYPE, value: &mut [u8]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: kind,
        pValue: value.as_mut_ptr().cast(),
        ulValueLen: value.len() as CK_ULONG,
    }
}

/// `CK_C_INITIALIZE_ARGS` without mutex functions.
pub fn init_args(flags: CK_FLAGS, reserved: *mut std::ffi::c_void) -> CK_C_INITIALIZE_ARGS {
    CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags,
        pReserved: reserved,
    }
}

/// A `CK_ATTRIBUTE` pointing at `value`.
pub fn attribute<T>(kind: CK_ATTRIBUTE_TYPE, value: &mut T) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE {
        type_: kind,
        pValue: (value as *mut T).cast(),
        ulValueLen: std::mem::size_of::<T>() as CK_ULONG,
    }
}

/// A null pointer of any type, for the argument checks.
pub fn nil<T>() -> *mut T {
    null::<T>().cast_mut()
}

/// A provisioned virtual card state for the module to open in-process (`IOTSAFE_VCARD`), shared
/// by the tests of one binary, and the lock that runs them one at a time (the module's state is
/// per process).
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The provisioning report (device certificate and public key).
    pub report: iotsafe_vcard::ProvisionReport,
    /// The device key's scalar, read from the state file: what must never come out.
    pub device_scalar: Vec<u8>,
    /// The module.
    pub raw: Raw,
}

impl Fixture {
    /// The device key's verifying key, as provisioned.
    pub fn device_key(&self) -> p256::ecdsa::VerifyingKey {
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.report.device_public_key)
            .expect("the provisioned device key")
    }
}

/// The binary's fixture, made on first use, and the lock of the module.
pub fn fixture() -> (&'static Fixture, std::sync::MutexGuard<'static, ()>) {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let f = FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("card.json");
        let report = iotsafe_vcard::provision(
            &state,
            &dir.path().join("pki"),
            iotsafe_vcard::CardOptions::default(),
        )
        .expect("provision a card");
        let store = iotsafe_vcard::state::load(&state).expect("the state file");
        let device_scalar = store
            .private_keys
            .iter()
            .find(|k| k.id == [1])
            .and_then(|k| k.scalar.as_ref())
            .expect("the device key's scalar")
            .expose()
            .to_vec();
        // Set once, before the module first reads it, while no other test thread of this
        // binary runs (they all wait for LOCK).
        for var in super::CARD_VARIABLES {
            std::env::remove_var(var);
        }
        std::env::set_var("IOTSAFE_VCARD", &state);
        Fixture {
            _dir: dir,
            report,
            device_scalar,
            raw: Raw::load(),
        }
    });
    // Each test starts with the module not initialized, whatever the one before left (a test
    // that failed half way).
    let _ = f.raw.finalize();
    (f, guard)
}
