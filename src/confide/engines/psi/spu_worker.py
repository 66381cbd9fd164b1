"""Out-of-process worker for SecretFlow SPU's PSI: run by the Python of SPU's own venv, not Confide's.

SPU pins numpy<2 and Python<3.12, so it lives in ``.spu-venv`` (``make spu-env``) and this file
imports nothing but the standard library and ``spu``. :mod:`confide.engines.psi.spu` starts it as
``<spu python> spu_worker.py`` and talks JSON lines over its stdin/stdout:

1. the worker imports SPU and prints ``{"ready": true, "spu": VERSION}``;
2. it reads the link: ``{"rank", "parties": [host:port, host:port], "link_id", "recv_timeout_ms",
   "window"}``; ``parties[rank]`` is where its own link server listens (``"auto"``: a loopback port
   it picks and prints as ``{"port": N}``), the other entry is where it reaches the peer (the
   Confide tunnel's local end when run by the engine, the peer worker itself when the bench calls
   SPU directly); it connects and prints ``{"linked": true}`` (the engine writes the input CSV
   meanwhile);
3. it reads the run: ``{"protocol": "RR22"|"KKRT"|"ECDH", "receiver_rank", "broadcast",
   "keys_unique", "input", "output"}``; while SPU runs it prints ``{"progress": PERCENT, "stage":
   TEXT}``;
4. then ``{"result": {"seconds", "original_count", "original_unique_count", "intersection_count"}}``
   or ``{"error": TEXT}`` and exits.

SPU's own log lines go to stderr (fd 1 is moved there first, so they cannot corrupt the protocol).
"""

from __future__ import annotations

import faulthandler
import json
import os
import socket
import sys
import time
from typing import Any

PORT_TRIES = 5


def _protocol_out() -> Any:
    """A text stream on the original stdout; fd 1 then points at stderr for C++ log lines."""
    fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(fd, "w", buffering=1)


def _emit(out: Any, obj: dict[str, Any]) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _link(job: dict[str, Any], out: Any) -> Any:
    """SPU's link. ``parties[rank] == "auto"``: this worker picks its own loopback port, says which
    (``{"port": N}``, the engine's tunnel connects there) and picks another if another process took
    it first (brpc's server then fails to start)."""
    import spu.libspu as libspu

    rank = int(job["rank"])
    parties = [str(p) for p in job["parties"]]
    auto = parties[rank] == "auto"
    for attempt in range(PORT_TRIES):
        if auto:
            port = _free_port()
            parties[rank] = f"127.0.0.1:{port}"
            _emit(out, {"port": port})
        desc = libspu.link.Desc()
        desc.id = str(job["link_id"])
        desc.recv_timeout_ms = int(job["recv_timeout_ms"])
        desc.connect_retry_times = 300
        desc.connect_retry_interval_ms = 100
        desc.throttle_window_size = int(job.get("window", 10))
        for i, host in enumerate(parties):
            desc.add_party(f"party{i}", host)
        try:
            return libspu.link.create_brpc(desc, rank)
        except RuntimeError as exc:
            if not auto or "server failed start" not in str(exc) or attempt == PORT_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def _run(lctx: Any, job: dict[str, Any], out: Any) -> dict[str, Any]:
    import spu.psi as psi

    protocol = {
        "RR22": psi.PsiProtocol.PROTOCOL_RR22,
        "KKRT": psi.PsiProtocol.PROTOCOL_KKRT,
        "ECDH": psi.PsiProtocol.PROTOCOL_ECDH,
    }[job["protocol"]]
    conf = psi.PsiProtocolConfig(
        protocol=protocol,
        receiver_rank=int(job["receiver_rank"]),
        broadcast_result=bool(job["broadcast"]),
        ecdh_params=psi.EcdhParams(curve=psi.EllipticCurveType.CURVE_25519),
    )
    config = psi.PsiExecuteConfig(
        protocol_conf=conf,
        input_params=psi.InputParams(
            path=job["input"], selected_keys=["id"], keys_unique=bool(job["keys_unique"])
        ),
        output_params=psi.OutputParams(path=job["output"], disable_alignment=True),
    )

    def hook(data: Any) -> None:
        _emit(out, {"progress": int(data.percentage), "stage": str(data.description)})

    start = time.perf_counter()
    try:
        # PSI's Init connects to the mesh again (link.create_brpc already did) with the same
        # seq-0 "connect_<rank>" message, and yacl silently drops one that arrives while the
        # first is still unread: a peer that races ahead loses its second message and both
        # sides time out (then SPU aborts, see docs/psi-mpc.md). A barrier first means each
        # side has read the peer's first message before either sends its second.
        lctx.barrier()
        report = psi.psi_execute(config, lctx, psi.ProgressParams(hook, 1000))
    finally:
        lctx.stop_link()
    return {
        "seconds": round(time.perf_counter() - start, 4),
        "original_count": int(report.original_count),
        "original_unique_count": int(report.original_unique_count),
        "intersection_count": int(report.intersection_count),
    }


def main() -> int:
    out = _protocol_out()
    # a fatal signal (SPU's native code aborting) dumps every thread's Python stack to stderr, the
    # worker's log: where in the run it died, which the engine then reports
    faulthandler.enable(all_threads=True)
    try:
        import spu

        _emit(out, {"ready": True, "spu": str(spu.__version__)})
    except Exception as exc:  # an SPU that does not import: say so, the engine reports it
        _emit(out, {"error": f"SPU does not import in this environment: {exc}"})
        return 2
    line = sys.stdin.readline()
    if not line:
        return 0  # a warm spare that was never used
    try:
        lctx = _link(json.loads(line), out)
        _emit(out, {"linked": True})
        line = sys.stdin.readline()
        if not line:
            return 0  # the engine gave up before the run
        _emit(out, {"result": _run(lctx, json.loads(line), out)})
    except Exception as exc:
        _emit(out, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
