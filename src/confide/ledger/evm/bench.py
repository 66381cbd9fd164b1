"""``confide bench ledger --backend evm``: the same figures as the embedded benchmark, on an EVM chain.

What is timed: the clients' pre-signed txs go to a submitting node (``EvmBackend``: admission against
its state as the embedded orderer does, then one ``append`` chain transaction per block of at most
``block_txs``, each waited for until confirmed), while an independent node in a *separate process*
follows the same EVM log, derives the blocks, verifies them and every tx signature, replays the
contract and commits to its own store. The clock stops when that node has applied the last tx.
``orderer_tx_per_s`` is the submitting side (admission + appends confirmed). The EVM node is a local
ganache (``chain/evm``) unless ``rpc_url``/``account_key`` name another chain. Baseline in the same
run: raw signature verifications per second on one core.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

from ...crypto import Identity, load_identity
from ..bench import bench_txs, figures, setup_txs, verify_rate
from ..genesis import Genesis
from .backend import EvmBackend, log_tag
from .log import EvmLog

__all__ = ["run_evm_ledger_bench"]


def _follower_main(
    genesis_json: str, signer: str, rpc_url: str, key: str, store: str, txs: int, out: Any
) -> None:
    genesis = Genesis.model_validate_json(genesis_json)
    node = EvmBackend(genesis=genesis, orderer_identity=load_identity(signer), rpc_url=rpc_url,
                      account_key=key, path=store)  # fmt: skip
    base = sum(1 for _ in node.db.iter_txs())
    out.put(("ready", base))
    while True:
        node.sync()
        n = sum(1 for _ in node.db.iter_txs())
        if n >= base + txs:
            break
        time.sleep(0.01)
    out.put(("done", time.perf_counter(), node.replica.state_root()))


def run_evm_ledger_bench(
    *,
    txs: int,
    block_txs: int = 2000,
    workdir: Path | None = None,
    clients: int = 8,
    rpc_url: str | None = None,
    account_key: str | None = None,
) -> dict[str, Any]:
    from ...scenarios.evmchain import ganache

    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="confide-bench-evm-")
        workdir = Path(tmp.name)
    with contextlib.ExitStack() as stack:
        if rpc_url is None:
            print("starting a local EVM node (ganache) ...", flush=True)
            node = stack.enter_context(ganache(workdir / "ganache.log"))
            rpc_url, account_key = node.url, node.key
        assert account_key is not None
        print("measuring raw default signature verification on one core ...", flush=True)
        verify_per_s = verify_rate("default")
        # the other node's own key (a consortium node key: it signs the blocks it derives)
        orderer, tax, bank, other = (Identity.generate() for _ in range(4))
        other.save(workdir / "other-node.pem")
        log = EvmLog.deploy(rpc_url, account_key, log_tag("bench"))
        genesis = Genesis.model_validate(
            {
                "chain_id": "bench",
                "name": "bench",
                "genesis_time": int(time.time() * 1000) - 1000,
                "orderer_public_key": orderer.public_hex,
                "orgs": [
                    {
                        "id": "bank",
                        "name": "Bank",
                        "admin_public_key": bank.public_hex,
                        "node_public_key": other.public_hex,
                    },
                    {"id": "tax", "name": "Tax", "admin_public_key": tax.public_hex},
                ],
                "params": {"max_block_txs": block_txs},
                "ledger": {"backend": "evm", "evm": {"log_address": log.address}},
            }
        )
        submitter = EvmBackend(genesis=genesis, orderer_identity=orderer, rpc_url=rpc_url,
                               account_key=account_key, path=workdir / "submitter.sqlite")  # fmt: skip
        print(f"setting up and signing {txs} client txs ({clients} clients) ...", flush=True)
        analysts = [Identity.generate() for _ in range(clients)]
        setup_txs(submitter, tax, bank, analysts)
        t0 = time.perf_counter()
        signed = bench_txs(analysts, "bench", submitter.head().time, txs)
        sign_s = time.perf_counter() - t0
        start_height = submitter.head().height
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        proc = ctx.Process(
            target=_follower_main,
            args=(
                genesis.model_dump_json(),
                str(workdir / "other-node.pem"),
                rpc_url,
                account_key,
                str(workdir / "follower.sqlite"),
                txs,
                out,
            ),
        )
        proc.start()
        out.get(timeout=120)
        print(
            f"appending {txs} txs in blocks of {block_txs}; another node derives and verifies ...", flush=True
        )
        t_start = time.perf_counter()
        for i in range(0, txs, block_txs):
            results = submitter.submit_many(signed[i : i + block_txs])
            refused = [r for r in results if isinstance(r, Exception)]
            if refused:
                raise RuntimeError(f"bench txs refused: {refused[0]}")
            print(f"  appended and confirmed {min(i + block_txs, txs)}/{txs}", flush=True)
        t_ordered = time.perf_counter()
        msg = out.get(timeout=600)
        proc.join(timeout=60)
        total = msg[1] - t_start
        root = submitter.replica.state_root()
        blocks = submitter.head().height - start_height
        submitter.close()
    if tmp is not None:
        tmp.cleanup()
    result = figures(
        txs=txs,
        block_txs=block_txs,
        blocks=blocks,
        suite="default",
        ordered_s=t_ordered - t_start,
        total_s=total,
        sign_s=sign_s,
        verify_per_s=verify_per_s,
        roots_match=msg[2] == root,
    )
    return {"backend": "evm", **result}
