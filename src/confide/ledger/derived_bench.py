"""``confide bench ledger --backend evm|etcd|fabric|chainmaker``: the embedded benchmark's figures on a
derived chain.

What is timed: the clients' pre-signed txs go to a submitting node (admission against its state as
the embedded orderer does, then one log batch per block of at most ``block_txs`` — an EVM chain
transaction, each waited for until mined, an etcd key, each replicated to a majority, or a Fabric
``Append`` transaction, endorsed, ordered and validated by the Gateway stand-in — ), while an
independent node in a *separate process* reads the same log, derives the blocks, verifies them and
every tx signature, replays the contract and commits to its own store. The clock stops when that
node has applied the last tx. ``orderer_tx_per_s`` is the submitting side. The log is a local
ganache (``chain/evm``), a local three-member etcd cluster unless an endpoint is given, or the Fabric
or ChainMaker stand-in. Baseline in the same run: raw signature verifications per second on one core.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

from ..crypto import Identity, load_identity
from .backend import open_backend
from .bench import bench_txs, figures, setup_txs, verify_rate
from .derived import LogBackend
from .genesis import Genesis
from .ordered_log import log_tag

__all__ = ["run_derived_ledger_bench"]


def _follower_main(
    name: str, genesis_json: str, signer: str, store: str, txs: int, kw: dict[str, Any], out: Any
) -> None:
    genesis = Genesis.model_validate_json(genesis_json)
    node = open_backend(name, genesis=genesis, orderer_identity=load_identity(signer), path=store, **kw)
    assert isinstance(node, LogBackend)
    base = sum(1 for _ in node.db.iter_txs())
    out.put(("ready", base))
    while True:
        node.sync()
        if sum(1 for _ in node.db.iter_txs()) >= base + txs:
            break
        time.sleep(0.01)
    out.put(("done", time.perf_counter(), node.replica.state_root()))


def _genesis(ledger: dict[str, Any], block_txs: int, keys: dict[str, Identity]) -> Genesis:
    return Genesis.model_validate(
        {
            "chain_id": "bench",
            "name": "bench",
            "genesis_time": int(time.time() * 1000) - 1000,
            "orderer_public_key": keys["orderer"].public_hex,
            "orgs": [
                {
                    "id": "bank",
                    "name": "Bank",
                    "admin_public_key": keys["bank"].public_hex,
                    "node_public_key": keys["other"].public_hex,
                },
                {"id": "tax", "name": "Tax", "admin_public_key": keys["tax"].public_hex},
            ],
            "params": {"max_block_txs": block_txs},
            "ledger": ledger,
        }
    )


def _chain(
    name: str, stack: contextlib.ExitStack, workdir: Path, rpc_url: str | None, account_key: str | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(genesis ledger config, submitter's backend kwargs, follower's backend kwargs)."""
    if name == "evm":
        from ..scenarios.evmchain import ganache
        from .evm import EvmLog

        if rpc_url is None:
            print("starting a local EVM node (ganache) ...", flush=True)
            node = stack.enter_context(ganache(workdir / "ganache.log"))
            rpc_url, account_key = node.url, node.key
        assert account_key is not None
        log = EvmLog.deploy(rpc_url, account_key, log_tag("bench"))
        kw = {"rpc_url": rpc_url, "account_key": account_key}
        return {"backend": "evm", "evm": {"log_address": log.address}}, kw, kw
    if name == "chainmaker":
        from ..scenarios.chainmakerchain import chainmaker_standin

        if rpc_url is not None:
            raise ValueError("--backend chainmaker runs against the local stand-in only (no endpoint)")
        print("starting the ChainMaker stand-in (official SDK, py-evm) ...", flush=True)
        cm = stack.enter_context(chainmaker_standin(workdir / "chainmaker"))
        cm.deploy("bench", log_tag("bench")).close()
        cfg = {"backend": "chainmaker", "chainmaker": {"chain_id": cm.chain_id, "contract_name": "bench"}}
        return cfg, {"sdk_config": cm.sdk_config(0)}, {"sdk_config": cm.sdk_config(1)}
    if name == "fabric":
        from ..scenarios.fabricnet import fabric_network
        from .fabric.gateway import FabricGateway
        from .fabric.log import FabricLog

        if rpc_url is not None:
            raise ValueError("--backend fabric runs against the local Gateway stand-in only (no endpoint)")
        print("starting the Fabric Gateway stand-in and the chaincode server ...", flush=True)
        net = stack.enter_context(
            fabric_network(workdir / "fabric", ["BankMSP", "TaxMSP"], chaincodes=["bench"])
        )
        FabricLog(FabricGateway(net.endpoint, net.identity("BankMSP"), net.channel, "bench")).init(
            log_tag("bench")
        )
        cfg = {"backend": "fabric", "fabric": {"channel": net.channel, "chaincode": "bench"}}
        return (
            cfg,
            {"gateway": net.endpoint, "fabric_identity": net.identity("BankMSP")},
            {"gateway": net.endpoint, "fabric_identity": net.identity("TaxMSP")},
        )
    from ..scenarios.etcdcluster import etcd_cluster

    if rpc_url is None:
        print("starting a local three-member etcd cluster ...", flush=True)
        cluster = stack.enter_context(etcd_cluster(workdir / "etcd"))
        return {"backend": "etcd"}, {"endpoints": [cluster.url(0)]}, {"endpoints": [cluster.url(1)]}
    return {"backend": "etcd"}, {"endpoints": [rpc_url]}, {"endpoints": [rpc_url]}


def run_derived_ledger_bench(
    name: str,
    *,
    txs: int,
    block_txs: int = 2000,
    workdir: Path | None = None,
    clients: int = 8,
    endpoint: str | None = None,
    account_key: str | None = None,
) -> dict[str, Any]:
    """``name``: evm, etcd, fabric or chainmaker. ``endpoint``: the chain's JSON-RPC URL or one etcd
    member's client URL (default: start a local ganache, a three-member cluster, or a stand-in)."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"confide-bench-{name}-")
        workdir = Path(tmp.name)
    with contextlib.ExitStack() as stack:
        ledger, mine, theirs = _chain(name, stack, workdir, endpoint, account_key)
        print("measuring raw default signature verification on one core ...", flush=True)
        verify_per_s = verify_rate("default")
        keys = {k: Identity.generate() for k in ("orderer", "bank", "tax", "other")}
        keys["other"].save(workdir / "other-node.pem")  # the other node's key: it signs what it derives
        genesis = _genesis(ledger, block_txs, keys)
        submitter = open_backend(name, genesis=genesis, orderer_identity=keys["orderer"],
                                 path=workdir / "submitter.sqlite", **mine)  # fmt: skip
        assert isinstance(submitter, LogBackend)
        print(f"setting up and signing {txs} client txs ({clients} clients) ...", flush=True)
        analysts = [Identity.generate() for _ in range(clients)]
        setup_txs(submitter, keys["tax"], keys["bank"], analysts)
        t0 = time.perf_counter()
        signed = bench_txs(analysts, "bench", submitter.head().time, txs)
        sign_s = time.perf_counter() - t0
        start_height = submitter.head().height
        ctx = mp.get_context("spawn")
        out = ctx.Queue()
        args = (name, genesis.model_dump_json(), str(workdir / "other-node.pem"),
                str(workdir / "follower.sqlite"), txs, theirs, out)  # fmt: skip
        proc = ctx.Process(target=_follower_main, args=args)
        proc.start()
        out.get(timeout=120)
        print(
            f"appending {txs} txs in blocks of {block_txs}; another node derives and verifies ...", flush=True
        )
        t_start = time.perf_counter()
        for i in range(0, txs, block_txs):
            refused = [
                r for r in submitter.submit_many(signed[i : i + block_txs]) if isinstance(r, Exception)
            ]
            if refused:
                raise RuntimeError(f"bench txs refused: {refused[0]}")
            print(f"  appended and applied {min(i + block_txs, txs)}/{txs}", flush=True)
        t_ordered = time.perf_counter()
        msg = out.get(timeout=600)
        proc.join(timeout=60)
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
        total_s=msg[1] - t_start,
        sign_s=sign_s,
        verify_per_s=verify_per_s,
        roots_match=msg[2] == root,
    )
    return {"backend": name, **result}
