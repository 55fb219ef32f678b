// Scalable Hello World: the live inbox. While it is on, one reliable read waits on the server for
// the chosen name (wait=20); each answer's hellos are shown, then confirmed, and the next read is
// sent at once. Loaded after app.js, whose api(), helloItem(), shown(), showError() and
// CONFIRM_RETRIES_MS it uses, and names.js (tokenFor()).
"use strict";

/** How long each read waits on the server for a hello: the most the API allows. */
const LIVE_WAIT_SECONDS = 20;
/**
 * The lease each live read asks for (ms), shorter than the server's default (30 s): the page
 * confirms as soon as it has painted, and a lease that runs out first costs nothing (the hellos
 * come again and are dropped by id). What it bounds: how late hellos come back whose
 * confirmation never went out (the tab closed between showing and confirming).
 */
const LIVE_LEASE_MS = 5000;
/** An empty answer this much sooner than the wait came early: the pod is stopping (see readLive). */
const LIVE_EARLY_MS = 2000;
/** After a failure: twice as long each time, from the first pause to the cap (ms), with jitter. */
const LIVE_BACKOFF_FIRST_MS = 1000;
const LIVE_BACKOFF_CAP_MS = 30000;
/** A Retry-After longer than this counts as this: the page should come back in reasonable time. */
const LIVE_RETRY_AFTER_CAP_MS = 120000;
/** Ids remembered to drop hellos delivered again, and entries kept on the page. */
const LIVE_REMEMBERED_IDS = 1000;
const LIVE_LISTED = 100;
/** Senders named in one announcement; more are counted, not read out. */
const LIVE_ANNOUNCED_NAMES = 5;

/**
 * Ids of the hellos already shown, oldest first (a Set keeps its insertion order). In memory only:
 * a reload starts afresh, and whatever was not confirmed before it is shown once more.
 */
const liveShown = new Set();

/**
 * The live inbox while it is on, else null: {name, controller, timer, ticker, failures,
 * notBefore, reason, connected, busy}. Turning it off, or on for another name, replaces it, and
 * whatever the old one still had in flight sees that and drops its answer.
 */
let liveRun = null;

function liveInbox(name) {
  return `hello/${encodeURIComponent(name)}/reads`;
}

function setLiveStatus(state, text) {
  const status = $("live-status");
  status.dataset.state = state;
  status.textContent = text;
}

function clearLiveTimers(run) {
  clearTimeout(run.timer);
  clearInterval(run.ticker);
  run.timer = run.ticker = null;
}

function startLive() {
  stopLive();
  const name = $("inbox-name").value.trim();
  $("live-error").hidden = true;
  clearErrors($("inbox-form"));
  if (!name) {
    $("live-toggle").checked = false;
    setLiveStatus("off", "Off.");
    showError("inbox-name-error", "inbox-name", "Enter the name whose inbox to follow live.");
    $("inbox-name").focus();
    return;
  }
  if ($("live-panel").dataset.name !== name) {
    // Another inbox: its own list. The remembered ids stay; they belong to hellos, not names.
    $("live-panel").dataset.name = name;
    $("live-title").textContent = `Live hellos for ${name}, newest first`;
    $("live-hellos").replaceChildren();
    $("live-empty").hidden = false;
  }
  $("live-panel").hidden = false;
  $("live-toggle").checked = true;
  liveRun = { name, controller: null, timer: null, ticker: null, failures: 0, notBefore: 0, reason: "", connected: false, busy: false };
  if (document.hidden) {
    setLiveStatus("paused", "Paused while this tab is hidden: it resumes when you come back.");
  } else {
    setLiveStatus("connecting", `Connecting to ${name}'s inbox…`);
    pumpLive(liveRun);
  }
}

/** Turns it off. A read in flight is aborted: its lease runs out and its hellos come again. */
function stopLive(state = "off", text = "Stopped.") {
  const run = liveRun;
  liveRun = null;
  if (run) {
    run.controller?.abort();
    clearLiveTimers(run);
    setLiveStatus(state, text);
  }
}

/** Reads, one after another, while this run is on and the tab is shown; one loop per run. */
async function pumpLive(run) {
  if (run.busy) {
    return;
  }
  run.busy = true;
  try {
    while (liveRun === run && !document.hidden) {
      const pause = run.notBefore - Date.now();
      if (pause > 0) {
        waitLive(run, pause);
        return;
      }
      await readLive(run);
    }
  } finally {
    run.busy = false;
  }
}

/** Counts down to the next attempt, then reads again. */
function waitLive(run, pause) {
  clearLiveTimers(run);
  const tick = () => {
    const seconds = Math.max(1, Math.ceil((run.notBefore - Date.now()) / 1000));
    setLiveStatus("reconnecting", `Reconnecting in ${seconds} s: ${run.reason}.`);
  };
  tick();
  run.ticker = setInterval(tick, 1000);
  run.timer = setTimeout(() => {
    clearLiveTimers(run);
    pumpLive(run);
  }, pause);
}

async function readLive(run) {
  // The first read after (re)connecting does not wait: its answer says at once that the server
  // is there (the status can say "connected") and brings whatever came meanwhile.
  const wait = run.connected ? LIVE_WAIT_SECONDS : 0;
  if (run.failures > 0) {
    setLiveStatus("reconnecting", "Reconnecting…");
  }
  run.controller = new AbortController();
  const { signal } = run.controller;
  const token = tokenFor(run.name);
  const started = Date.now();
  const result = await api("POST", `${liveInbox(run.name)}?wait=${wait}&lease_ms=${LIVE_LEASE_MS}`, undefined, token, { signal, record: false });
  run.controller = null;
  if (signal.aborted || liveRun !== run) {
    return; // hidden or turned off: whatever this read took comes again when its lease runs out
  }
  const hellos = result.ok ? result.body?.hellos : null;
  if (Array.isArray(hellos)) {
    if (wait > 0 && hellos.length === 0 && Date.now() - started < wait * 1000 - LIVE_EARLY_MS) {
      // A stopping pod answers its waiting reads at once, with nothing: reading again at once
      // would ask it again and again until it is gone.
      failLive(run, "the pod is restarting", result.retryAfter);
      return;
    }
    run.failures = 0;
    run.connected = true;
    if (!document.hidden) {
      const where = result.pod ? ` to pod ${result.pod}` : "";
      setLiveStatus("connected", `Connected${where}: new hellos to ${run.name} show here as they arrive.`);
    }
    showLive(run, hellos);
    if (result.body.receipt) {
      await shown();
      await confirmLive(run, result.body.receipt, token);
    }
  } else if ((result.status === 401 || result.status === 403) && tokenFor(run.name) !== token) {
    // This page changed the token meanwhile (New token, Forget, Release), which ends a waiting
    // read with 401: read again with what it holds now.
    run.connected = false;
  } else if (result.status >= 400 && result.status < 500 && result.status !== 408 && result.status !== 429) {
    stopLiveWith(run, result, token);
  } else {
    failLive(run, failureReason(result), result.retryAfter ?? result.body?.retry_after);
  }
}

function failureReason(result) {
  if (result.status === 0) {
    return "the server could not be reached";
  }
  if (result.status === 429) {
    return "the server asked this page to slow down";
  }
  if (result.status === 502 || result.status === 504) {
    return "the server did not answer in time";
  }
  if (result.status === 503) {
    return "the service is unavailable for now";
  }
  return `the server answered ${result.status}`;
}

/** Schedules the next attempt: exponential backoff with jitter, never sooner than Retry-After. */
function failLive(run, reason, retryAfterSeconds) {
  run.failures += 1;
  run.connected = false;
  run.reason = reason;
  const backoff = Math.min(LIVE_BACKOFF_CAP_MS, LIVE_BACKOFF_FIRST_MS * 2 ** (run.failures - 1));
  // Jitter: the readers a restarting pod dropped together should not all come back together.
  let pause = backoff / 2 + (Math.random() * backoff) / 2;
  if (retryAfterSeconds != null && Number.isFinite(Number(retryAfterSeconds))) {
    const asked = Math.min(Number(retryAfterSeconds) * 1000, LIVE_RETRY_AFTER_CAP_MS);
    pause = Math.max(pause, asked * (1 + Math.random() * 0.2));
  }
  run.notBefore = Date.now() + pause;
}

/** A final refusal (401, 403, 404, 400): retrying would not help, so say what would. */
function stopLiveWith(run, result, token) {
  stopLive("stopped", "Stopped.");
  $("live-toggle").checked = false;
  const detail = (result.body?.detail || result.body?.title || `The server answered ${result.status}.`).replace(/\.?$/, ".");
  let advice = "";
  if (result.status === 401 || result.status === 403) {
    advice = token
      ? `The token this browser holds for ${run.name} is no longer accepted (it was replaced, or the name was released): use the page where its current token is kept, or claim the name again below if it is free.`
      : `Only the holder of ${run.name}'s token may read its inbox: claim the name below if it is free, or open this page in the browser that holds its token.`;
  } else if (result.status === 404) {
    advice = "Check the name; if it is right, this server does not offer live reads: use Check inbox.";
  } else if (result.body?.field) {
    showError("inbox-name-error", "inbox-name", detail);
    advice = "Correct the name above.";
  }
  const error = $("live-error");
  error.textContent = `Live inbox stopped. ${detail} ${advice} Then turn the live inbox on again.`.replace(/\s+/g, " ");
  error.hidden = false;
}

/** Lists the hellos not shown before, and announces them: only them, not the whole list again. */
function showLive(run, hellos) {
  const fresh = hellos.filter((hello) => !liveShown.has(hello.id));
  for (const hello of fresh) {
    liveShown.add(hello.id);
    if (liveShown.size > LIVE_REMEMBERED_IDS) {
      liveShown.delete(liveShown.values().next().value);
    }
  }
  if (fresh.length === 0) {
    return;
  }
  const list = $("live-hellos");
  for (const hello of fresh) {
    list.prepend(helloItem(hello)); // each batch comes oldest first: the newest ends on top
  }
  while (list.children.length > LIVE_LISTED) {
    list.lastElementChild.remove();
  }
  $("live-empty").hidden = true;
  const senders = fresh.slice(0, LIVE_ANNOUNCED_NAMES).map((hello) => `from ${hello.from}`);
  const more = fresh.length > LIVE_ANNOUNCED_NAMES ? ` and ${fresh.length - LIVE_ANNOUNCED_NAMES} more` : "";
  const count = `${fresh.length} new hello${fresh.length === 1 ? "" : "s"}`;
  // A new element each time: a screen reader may skip a change to the same words as before.
  const news = document.createElement("p");
  news.textContent = `${count} for ${run.name}: ${senders.join(", ")}${more}.`;
  $("live-announce").replaceChildren(news);
}

/**
 * Confirms a live read once its hellos are on the screen. If that keeps failing (the pod went
 * away, the lease ran out), nothing is lost nor shown twice: the hellos come again when the
 * lease runs out, are dropped by id, and that read is confirmed instead. So a few quick retries
 * (a network blip), then it is left.
 */
async function confirmLive(run, receipt, token) {
  const path = `${liveInbox(run.name)}/${encodeURIComponent(receipt)}`;
  for (const pause of [0, ...CONFIRM_RETRIES_MS]) {
    if (pause) {
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
    const result = await api("DELETE", path, undefined, token, { record: false });
    if (result.status !== 0 && result.status !== 429 && result.status < 500) {
      return; // confirmed, or final (410: it comes again; 404: unknown)
    }
  }
}

/**
 * A hidden tab keeps no read open: it would hold a connection and a place among the pod's
 * waiting reads for nobody to see. Aborting costs nothing (the read's lease runs out, its hellos
 * come again, and those already shown are dropped by id); on return, reading resumes.
 */
function liveVisibilityChanged() {
  const run = liveRun;
  if (!run) {
    return;
  }
  if (document.hidden) {
    run.controller?.abort();
    clearLiveTimers(run);
    run.connected = false;
    setLiveStatus("paused", "Paused while this tab is hidden: it resumes when you come back.");
  } else {
    setLiveStatus("connecting", `Connecting to ${run.name}'s inbox…`);
    pumpLive(run);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("live-toggle").addEventListener("change", (event) => (event.currentTarget.checked ? startLive() : stopLive()));
  // Another name while it is on: follow that inbox instead.
  $("inbox-name").addEventListener("change", () => liveRun && startLive());
  document.addEventListener("visibilitychange", liveVisibilityChanged);
});
