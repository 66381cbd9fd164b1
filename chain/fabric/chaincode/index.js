"use strict";
// The chaincode's entry point: fabric-chaincode-node loads the contracts listed here.
const { ConfideLog } = require("./lib/confideLog");

module.exports.ConfideLog = ConfideLog;
module.exports.contracts = [ConfideLog];
