"""``confide client ...``: drive an org node's API through ``confide.Client``.

Commands live in ``client_read_cmd`` and ``client_write_cmd``; importing them
registers them on :data:`client_app`.
"""

from __future__ import annotations

from . import client_read_cmd as _reads  # noqa: F401
from . import client_tee_cmd as _tee  # noqa: F401
from . import client_write_cmd as _writes  # noqa: F401
from ._client_common import client_app

__all__ = ["client_app"]
