// Compile ConfideLog.sol with solc-js (pinned in package-lock.json), deterministically, into the
// artifact the Python backend loads: ABI, creation bytecode, compiler version and source digest.
// evmVersion "paris" (no PUSH0) so the same bytecode runs on Besu, FISCO BCOS, Quorum and
// ChainMaker's EVM runtime. Usage: node compile.mjs OUT.json
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");
const source = readFileSync(new URL("./ConfideLog.sol", import.meta.url), "utf8");
const input = {
  language: "Solidity",
  sources: { "ConfideLog.sol": { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "paris",
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const c = out.contracts["ConfideLog.sol"].ConfideLog;
const artifact = {
  contract: "ConfideLog",
  solc: solc.version(),
  evm_version: "paris",
  source_sha256: createHash("sha256").update(source).digest("hex"),
  abi: c.abi,
  bytecode: "0x" + c.evm.bytecode.object,
  deployed_bytecode: "0x" + c.evm.deployedBytecode.object,
};
writeFileSync(process.argv[2], JSON.stringify(artifact, null, 1) + "\n");
console.log(`compiled ConfideLog with solc ${artifact.solc} -> ${process.argv[2]}`);
