"""Generates an EC key pair into the card's ephemeral slot and derives an ECDH secret with it,
once per peer point read from PEERS (one uncompressed point in hex per line), printing
`<CKA_EC_POINT hex> <CKA_VALUE hex>` for each, or `failed <error>`.

Usage: generate_derive.py MODULE PEERS
"""
import sys

import PyKCS11
from PyKCS11 import (
    CKA_CLASS, CKA_DERIVE, CKA_EC_PARAMS, CKA_EC_POINT, CKA_EXTRACTABLE, CKA_ID, CKA_KEY_TYPE,
    CKA_SENSITIVE, CKA_TOKEN, CKA_VALUE, CKA_VALUE_LEN, CKF_RW_SESSION, CKF_SERIAL_SESSION,
    CKK_EC, CKK_GENERIC_SECRET, CKM_EC_KEY_PAIR_GEN, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY,
    CKO_SECRET_KEY,
)

P256 = bytes.fromhex("06082a8648ce3d030107")

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
slot = lib.getSlotList(tokenPresent=True)[0]
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
for line in open(sys.argv[2]):
    peer = bytes.fromhex(line.strip())
    try:
        public, private = session.generateKeyPair(
            [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_EC_PARAMS, P256),
             (CKA_ID, (4,)), (CKA_DERIVE, True)],
            [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_KEY_TYPE, CKK_EC), (CKA_ID, (4,)),
             (CKA_DERIVE, True)],
            PyKCS11.Mechanism(CKM_EC_KEY_PAIR_GEN),
        )
        point = bytes(session.getAttributeValue(public, [CKA_EC_POINT])[0])
        secret = session.deriveKey(
            private,
            [(CKA_CLASS, CKO_SECRET_KEY), (CKA_KEY_TYPE, CKK_GENERIC_SECRET), (CKA_TOKEN, False),
             (CKA_VALUE_LEN, 32), (CKA_SENSITIVE, False), (CKA_EXTRACTABLE, True)],
            PyKCS11.ECDH1_DERIVE_Mechanism(list(peer)),
        )
        value = bytes(session.getAttributeValue(secret, [CKA_VALUE])[0])
        print(point.hex(), value.hex(), flush=True)
    except PyKCS11.PyKCS11Error as error:
        print("failed", error, flush=True)
session.closeSession()
