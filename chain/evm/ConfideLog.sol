// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title ConfideLog: an append-only log of signed Confide transactions.
/// @notice The chain orders and keeps the bytes; every Confide node replays them through the
/// platform contract (a Python state machine), which verifies each signature and decides. This
/// contract interprets nothing: it numbers each appended transaction and emits it.
/// @dev One chain transaction may carry many Confide transactions (a batch). `tag` binds the log to
/// one consortium (SHA-256 of its genesis), so a node never follows another consortium's log.
contract ConfideLog {
    bytes32 public immutable tag;
    uint64 public count;

    /// @notice Confide transaction number `seq` (0, 1, 2, ... over the whole log), as signed bytes.
    event Appended(uint64 indexed seq, bytes signedTx);

    constructor(bytes32 consortiumTag) {
        tag = consortiumTag;
    }

    /// @notice Append a batch of signed Confide transactions, in order.
    function append(bytes[] calldata signedTxs) external {
        uint64 n = count;
        for (uint256 i = 0; i < signedTxs.length; i++) {
            emit Appended(n, signedTxs[i]);
            n++;
        }
        count = n;
    }
}
