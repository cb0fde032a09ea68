#!/usr/bin/env python3
"""One-shot `iotsafe connect` processes on the `modem` latency preset, against their floor.

Each run is one whole process: `iotsafe --modem tcp://… connect` to `openssl s_server` (TLS 1.3,
client certificate required) through the virtual card's AT modem on loopback TCP, with the
typical-SIM latency behind a 115,200-baud UART (`iotsafe-vcard serve --latency modem`). Measured:
the process's wall time, first run (cold: no cache) and later runs (warm: the card's public data
and the modem's facts kept by the run before; also with the card's data alone), for T=1 and T=0,
with the card's sessions left open (the default) and closed after every operation
(`--close-sessions always`).

The floor of a run is what no host software can avoid: the latency model's card time for the
handshake's APDUs, the serial time of those APDUs' AT text at 115,200 baud (10 bits a byte, the
UART bytes the client counted), one network round trip (a TCP connect to the server) and a
process start (`iotsafe --version`).

Usage: cargo build --release -p iotsafe-cli -p iotsafe-vcard && scripts/oneshot.py [--runs N]
Needs openssl on the PATH. Prints a Markdown table (docs/performance.md#one-shot-runs).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAUD = 115_200
# Latency::typical_sim(): per APDU and per operation (ms); see docs/performance.md#latency-model.
APDU_MS, KEYGEN_MS, PUT_MS, DH_MS, SIGN_MS = 5, 250, 20, 120, 150


def wall(args, **kw):
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, **kw)
    return time.perf_counter() - started, done


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on port {port}")


def round_trip(port, n=50):
    times = []
    for _ in range(n):
        started = time.perf_counter()
        socket.create_connection(("127.0.0.1", port)).close()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def floor_of(card, rtt, start):
    """Model card time + serial time of the handshake's APDUs + one round trip + process start."""
    apdus = card["apdus"]
    card_ms = apdus * APDU_MS + KEYGEN_MS + PUT_MS + DH_MS + SIGN_MS
    uart = card["uart_bytes_sent"] + card["uart_bytes_received"]
    serial_ms = uart * 10 / BAUD * 1000
    return (card_ms + serial_ms) / 1000 + rtt + start, uart


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="warm runs per row (median)")
    parser.add_argument("--cold", type=int, default=7, help="cold runs per row (median)")
    parser.add_argument("--bin", default=str(ROOT / "target" / "release"))
    args = parser.parse_args()
    iotsafe, vcard = Path(args.bin) / "iotsafe", Path(args.bin) / "iotsafe-vcard"
    for program in (iotsafe, vcard):
        if not program.is_file():
            sys.exit(f"{program} missing: cargo build --release -p iotsafe-cli -p iotsafe-vcard")
    work = Path(tempfile.mkdtemp(prefix="iotsafe-oneshot-"))
    children = []
    try:
        subprocess.run(
            [vcard, "provision", "--state", work / "card.json", "--pki-out", work / "pki"],
            check=True,
            capture_output=True,
        )
        pki = work / "pki"
        tls_port = free_port()
        children.append(
            subprocess.Popen(
                ["openssl", "s_server", "-accept", f"127.0.0.1:{tls_port}", "-tls1_3",
                 "-cert", pki / "server.pem", "-key", pki / "server.key",
                 "-CAfile", pki / "ca.pem", "-Verify", "1", "-verify_return_error", "-quiet"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )
        wait_for_port(tls_port)
        rtt = round_trip(tls_port)
        start = statistics.median(wall([iotsafe, "--version"])[0] for _ in range(30))
        print(f"process start {start * 1000:.1f} ms, round trip {rtt * 1000:.2f} ms\n")
        print("| transport | sessions | run | process wall (median) | floor | ratio | APDUs | UART bytes |")
        print("|---|---|---|---|---|---|---|---|")
        for transport in ("t1", "t0"):
            modem_port = free_port()
            modem = subprocess.Popen(
                [vcard, "serve", "--state", work / "card.json", "--latency", "modem",
                 "--profile", transport, "--at-tcp", f"127.0.0.1:{modem_port}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            children.append(modem)
            wait_for_port(modem_port)
            for closing in ("unless-refused", "always"):
                cache = work / f"cache-{transport}-{closing}"
                command = [
                    iotsafe, "--json", "--modem", f"tcp://127.0.0.1:{modem_port}",
                    "--close-sessions", closing,
                    "connect", f"127.0.0.1:{tls_port}", "--ca", pki / "ca.pem",
                    "--server-name", "localhost", "--wait-ms", "0",
                ]
                env = dict(os.environ, IOTSAFE_CACHE_DIR=str(cache))
                rows = [("cold", args.cold), ("warm", args.runs)]
                if closing == "unless-refused":
                    # What the modem's facts buy on top of the card's data.
                    rows.insert(1, ("warm, card data only", args.runs))
                for label, runs in rows:
                    walls, floors, card = [], [], None
                    for _ in range(runs):
                        if label == "cold":
                            shutil.rmtree(cache, ignore_errors=True)
                        if label == "warm, card data only":
                            for facts in cache.glob("*.port"):
                                facts.unlink()
                        took, done = wall(command, env=env)
                        if done.returncode != 0:
                            sys.exit(f"iotsafe failed: {done.stderr}")
                        card = json.loads(done.stdout)["card"]
                        floor, uart = floor_of(card, rtt, start)
                        walls.append(took)
                        floors.append(floor)
                    median_wall, floor = statistics.median(walls), statistics.median(floors)
                    print(
                        f"| T={transport[1]} | {closing} | {label} | {median_wall * 1000:.0f} ms "
                        f"| {floor * 1000:.0f} ms | {median_wall / floor:.3f} | {card['apdus']} "
                        f"| {card['uart_bytes_sent']} / {card['uart_bytes_received']} |",
                        flush=True,
                    )
            modem.terminate()
            modem.wait()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
