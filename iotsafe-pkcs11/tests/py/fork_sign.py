"""A prefork server's life with the module: C_Initialize and a signature in the parent, fork, the
child initializes the module again (PKCS#11 v2.40 §6.7.7) and signs, the parent signs after.

Usage: fork_sign.py MODULE. Prints `parent|child|after <signature hex>` and `child exit <code>`.
"""
import os
import sys

import PyKCS11
from PyKCS11 import CKA_CLASS, CKA_LABEL, CKF_SERIAL_SESSION, CKM_ECDSA, CKO_PRIVATE_KEY

DIGEST = bytes(32)


def sign(lib):
    slot = lib.getSlotList(tokenPresent=True)[0]
    session = lib.openSession(slot, CKF_SERIAL_SESSION)
    key = session.findObjects([(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_LABEL, "device")])[0]
    signature = bytes(session.sign(key, DIGEST, PyKCS11.Mechanism(CKM_ECDSA)))
    session.closeSession()
    return signature


lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
print("parent", sign(lib).hex(), flush=True)
pid = os.fork()
if pid == 0:
    try:
        # The same function list, as a C program has it after fork.
        rv = lib.lib.C_Initialize()
        if rv != PyKCS11.CKR_OK:
            raise PyKCS11.PyKCS11Error(rv)
        print("child", sign(lib).hex(), flush=True)
        os._exit(0)
    except Exception as error:  # the child's failure is the test's finding: report it
        print("child failed:", error, flush=True)
        os._exit(1)
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
print("after", sign(lib).hex(), flush=True)
