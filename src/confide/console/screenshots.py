"""``make screenshots``: each main console page as a PNG under ``docs/screenshots/``.

Starts a credit-scenario network (``stage``), clicks the whole scenario through the console in a
headless Chromium (``walkthrough``) in Chinese and then in English, and saves
``<lang>-<page>.png`` for the catalog, a dataset page, the approvals inbox, the task form, a run,
the owner's release review, the result with its charts, the provenance graph, the block explorer
and the consortium page; then the marketing scenario clicked through (``marketing_walkthrough``): the
mpc task form and the segment heat maps (``<lang>-mpc_task.png``, ``<lang>-segments.png``).
Progress is printed; the networks are stopped at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .browser import Browser, chromium
from .stage import start_marketing_stage, start_stage
from .walkthrough import credit_walkthrough, marketing_walkthrough

__all__ = ["main"]


def _shooter(b: Browser, out: Path, tag: str, started: float) -> Callable[[str], None]:
    """What a walkthrough calls on each main page: save ``<tag>-<name>.png`` and say so."""

    def shot(name: str) -> None:
        path = out / f"{tag}-{name}.png"
        b.screenshot(path)
        print(f"screenshots: {path} ({time.monotonic() - started:.0f} s)", flush=True)

    return shot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write console screenshots (headless Chromium).")
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--enterprises", type=int, default=600)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print("screenshots: starting a credit-scenario network (orderer + 3 org nodes)", flush=True)
    with tempfile.TemporaryDirectory(prefix="confide-screens-") as tmp:
        stage = start_stage(Path(tmp) / "consortium", enterprises=args.enterprises, say=lambda _: None)
        try:
            for lang, tag in (("zh-CN", "zh"), ("en-US", "en")):
                with chromium(lang) as b:
                    credit_walkthrough(stage, b, _shooter(b, args.out, tag, started))
        finally:
            stage.net.stop_all()
        print("screenshots: the marketing scenario (psi and mpc tasks created in the console)", flush=True)
        for lang, tag in (("zh-CN", "zh"), ("en-US", "en")):
            market = start_marketing_stage(Path(tmp) / f"marketing-{tag}", customers=2000, runs=False)
            try:
                with chromium(lang) as b:
                    marketing_walkthrough(market, b, _shooter(b, args.out, tag, started))
            finally:
                market.net.stop_all()
    print(f"screenshots: done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
