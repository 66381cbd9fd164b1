"""Privacy-computing engines (tee, psi, mpc, fl), each a plugin hosted by a node."""
