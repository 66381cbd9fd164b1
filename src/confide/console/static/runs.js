// psi and mpc runs driven from the browser, as confide.interfaces.psi.run_psi_task and
// confide.interfaces.mpc.run_mpc_task do it: the user signs run.start, this node does the engine's
// work with the other parties' nodes, the user signs run.finish with the output digest.

import { ApiError } from "./api.js";
import { inputDigests } from "./tee.js";

/** One run of a psi or mpc task; `say(step, detail)` reports progress. Resolves to the node's answer. */
export async function runEngine(api, task, say) {
  const path = task.engine === "psi" ? "/v1/psi/runs" : "/v1/mpc/runs";
  const digests = await inputDigests(api, task);
  say("start");
  const start = await api.submit("run.start", { task: task.id, input_digests: digests });
  const run = start.tx_id;
  let done = false;
  const poll = (async () => {
    while (!done && task.engine === "psi") {
      await new Promise((r) => setTimeout(r, 700));
      if (done) break;
      try {
        const live = ((await api.call("GET", `/v1/psi/runs/${run}`)).live || [])[0];
        if (live) say("engine", live.total ? `${live.state}: ${live.done}/${live.total}` : live.state);
      } catch {
        /* not started yet, or ended */
      }
    }
  })();
  let out;
  try {
    out = await api.call("POST", path, { body: { run, min_height: start.height } });
  } catch (exc) {
    done = true;
    const reason = exc instanceof ApiError ? `${exc.code}: ${exc.message}` : String(exc.message);
    await api.submit("run.finish", { run, status: "failed", output_digest: null, reason: reason.slice(0, 2000) }).catch(() => {});
    throw exc;
  }
  done = true;
  await poll;
  say("finish");
  await api.submit("run.finish", { run, status: "succeeded", output_digest: out.output_digest, reason: "" });
  return { run, ...out };
}
