"""The ``etcd`` ledger backend: an etcd cluster (Raft, one member per org) orders the signed txs."""

from .log import EtcdError, EtcdLog, EtcdReader

__all__ = ["EtcdError", "EtcdLog", "EtcdReader"]
