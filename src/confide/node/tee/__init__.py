"""The node as a TEE participant: enclave host, data owner, and provenance verifier.

* ``verify``: a run's attestation checked against *this node's* ledger view (genesis root, trusted
  runtime + the task code on the ledger -> MRENCLAVE, REPORT_DATA binding, a recent block of its own
  chain).
* ``owner``: a data owner's node answers an enclave host's request for one input: every check, then
  only the task's columns of the granted version, encrypted to the enclave, in numbered frames.
* ``host``: a node with platform files launches enclaves, relays owners' frames, keeps sealed outputs
  and releases them only when the ledger says every owner approved.
* ``provenance``: the whole chain of a result, re-verified on any node.
"""
