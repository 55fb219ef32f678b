// Scalable Hello World: the page's behaviour. Plain JavaScript, no dependencies, no network
// beyond this site's own API (the Content-Security-Policy allows nothing else).
// names.js (names and tokens) and live.js (the live inbox) build on what is defined here.
"use strict";

const POD_HEADER = "X-Pod-Name";
const podCounts = new Map();

function $(id) {
  return document.getElementById(id);
}

/**
 * Calls the API; resolves to {ok, status, body, pod, retryAfter}. A problem+json body is parsed
 * too. A token goes in the Authorization header, the only place the API accepts one. `signal`
 * aborts the request (the live inbox's waiting read); `record: false` keeps the answer out of the
 * pod log, which a read held open every 20 s would flood (and its live region with it).
 */
async function api(method, path, body, token, { signal, record = true } = {}) {
  const options = { method, headers: { Accept: "application/json" }, signal };
  if (token) {
    options.headers.Authorization = `Bearer ${token}`;
  }
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    return { ok: false, status: 0, body: { detail: "The server could not be reached. Check your connection and retry." }, pod: null, retryAfter: null };
  }
  const pod = response.headers.get(POD_HEADER);
  let parsed = null;
  if (response.status !== 204) {
    try {
      parsed = await response.json();
    } catch (error) {
      parsed = { detail: `The server answered ${response.status} without a readable body.` };
    }
  }
  if (pod && record) {
    recordPod(pod, `${method} ${path} → ${response.status}`);
  }
  const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"));
  return { ok: response.ok, status: response.status, body: parsed, pod, retryAfter };
}

/** Retry-After in seconds (it may be a number of seconds or an HTTP date), or null. */
function retryAfterSeconds(value) {
  if (!value) {
    return null;
  }
  const seconds = /^\d+$/.test(value.trim()) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, seconds) : null;
}

function recordPod(pod, what) {
  podCounts.set(pod, (podCounts.get(pod) || 0) + 1);
  const log = $("pod-log");
  const item = document.createElement("li");
  const name = document.createElement("code");
  name.textContent = pod;
  item.append(name, ` answered ${what}`);
  log.prepend(item);
  while (log.children.length > 20) {
    log.lastElementChild.remove();
  }
  const counts = $("pod-counts");
  counts.replaceChildren(
    ...[...podCounts.entries()].map(([podName, count]) => {
      const chip = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = podName;
      chip.append(code, ` ${count} answer${count === 1 ? "" : "s"}`);
      return chip;
    }),
  );
}

/** Shows a message under a field (or the form) and marks the input invalid. */
function showError(elementId, inputId, message) {
  const element = $(elementId);
  element.textContent = message;
  element.hidden = false;
  if (inputId) {
    $(inputId).setAttribute("aria-invalid", "true");
  }
}

function clearErrors(form) {
  form.querySelectorAll(".error").forEach((element) => {
    element.hidden = true;
    element.textContent = "";
  });
  form.querySelectorAll("input").forEach((input) => input.removeAttribute("aria-invalid"));
}

/** Puts a problem's own message next to the field it names. */
function showProblem(problem, fieldInputs, formErrorId) {
  const message = problem.detail || problem.title || "Something went wrong.";
  const inputId = fieldInputs[problem.field];
  if (inputId) {
    showError(`${inputId}-error`, inputId, message);
    $(inputId).focus();
  } else {
    showError(formErrorId, null, message);
  }
}

function servedBy(pod) {
  const line = document.createElement("p");
  line.className = "served";
  const code = document.createElement("code");
  code.textContent = pod || "unknown";
  line.append("Served by pod ", code);
  return line;
}

function formatTime(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** One hello as a list item: who, a badge when verified, when. Its id goes along (data-hello-id). */
function helloItem(hello) {
  const item = document.createElement("li");
  item.dataset.helloId = hello.id;
  const who = document.createElement("span");
  who.textContent = hello.from;
  if (hello.verified) {
    const badge = document.createElement("span");
    badge.className = "verified";
    badge.textContent = "verified";
    who.append(" ", badge);
  }
  const when = document.createElement("time");
  when.dateTime = hello.at;
  when.textContent = formatTime(hello.at);
  item.append(who, when);
  return item;
}

async function sendHello(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const from = $("send-from").value.trim();
  const to = $("send-to").value.trim();
  const button = form.querySelector("button");
  button.disabled = true;
  // Sending as a name this browser claimed: its token makes the hello verified.
  const result = await api("POST", `hello/${encodeURIComponent(to)}`, { from }, tokenFor(from));
  button.disabled = false;
  const output = $("send-result");
  output.replaceChildren();
  if (!result.ok) {
    showProblem(result.body, { from: "send-from", to: "send-to", body: "send-from" }, "send-error");
    return;
  }
  const ok = document.createElement("p");
  ok.className = "ok";
  const verified = result.body.verified ? "Verified hello" : "Hello";
  ok.textContent = `${verified} from ${result.body.from} to ${result.body.to} stored at ${formatTime(result.body.at)}.`;
  output.append(ok, servedBy(result.pod));
}

async function checkInbox(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const name = $("inbox-name").value.trim();
  const button = form.querySelector("button");
  button.disabled = true;
  // A reliable read: the hellos stay in the inbox, hidden from other readers, until this page
  // confirms it has shown them. If the page is closed, reloaded or loses the network first,
  // they come back when the lease runs out instead of being lost.
  const inbox = `hello/${encodeURIComponent(name)}/reads`;
  const token = tokenFor(name);
  const result = await api("POST", inbox, undefined, token);
  button.disabled = false;
  const output = $("inbox-result");
  output.replaceChildren();
  if (!result.ok) {
    showProblem(result.body, { name: "inbox-name", to: "inbox-name", limit: "inbox-name" }, "inbox-error");
    return;
  }
  const hellos = result.body.hellos || [];
  if (hellos.length === 0) {
    const empty = document.createElement("p");
    empty.className = "empty";
    empty.textContent = `Nothing new for ${result.body.name}.`;
    output.append(empty);
  } else {
    const heading = document.createElement("p");
    heading.className = "ok";
    heading.textContent = `${hellos.length} new hello${hellos.length === 1 ? "" : "s"} for ${result.body.name}, oldest first:`;
    const list = document.createElement("ul");
    list.className = "hellos";
    list.append(...hellos.map(helloItem));
    output.append(heading, list);
    if (result.body.remaining > 0) {
      const more = document.createElement("p");
      more.className = "hint";
      more.textContent = `${result.body.remaining} more waiting: check again to get them.`;
      output.append(more);
    }
  }
  output.append(servedBy(result.pod));
  if (result.body.receipt) {
    await shown();
    await confirmRead(`${inbox}/${encodeURIComponent(result.body.receipt)}`, result.body, output, token);
  }
}

/** Resolves once the browser has painted what was just added to the page. */
function shown() {
  return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}

/** How often a confirmation is tried, and the pause before each retry (ms). */
const CONFIRM_RETRIES_MS = [500, 1000];

/**
 * Confirms a reliable read; if that fails, says when the hellos will show again. Confirming
 * twice is safe, so a failed confirmation is repeated a few times: a network blip, or a pod of an
 * older release without reliable reads during a rolling update, should not show them twice. Not
 * when the answer is final: the lease ran out (410) or the receipt is unknown.
 */
async function confirmRead(path, read, output, token) {
  let confirmed = await api("DELETE", path, undefined, token);
  for (const pause of CONFIRM_RETRIES_MS) {
    const final = confirmed.ok || confirmed.status === 410
      || confirmed.body?.type === "/problems/receipt-not-found";
    if (final) {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    confirmed = await api("DELETE", path, undefined, token);
  }
  if (confirmed.ok) {
    return;
  }
  const note = document.createElement("p");
  note.className = "hint";
  const until = read.lease_expires_at ? ` after ${formatTime(read.lease_expires_at)}` : "";
  note.textContent = confirmed.status === 410
    ? "These took too long to confirm: they will show again when you check."
    : `These could not be confirmed yet, so nothing is lost: they will show again${until}.`;
  output.append(note);
}

function fact(term, value) {
  const wrapper = document.createElement("div");
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  wrapper.append(dt, dd);
  return wrapper;
}

function cell(text, className, label) {
  const td = document.createElement("td");
  if (label) {
    td.dataset.label = label; // shown before the value when a phone stacks the table
  }
  if (className) {
    const badge = document.createElement("span");
    badge.className = `source ${className}`;
    badge.textContent = text;
    td.append(badge);
  } else {
    td.textContent = text;
  }
  return td;
}

function sourceClass(source) {
  return `source-${String(source).toLowerCase().replace(/[^a-z]+/g, "-")}`;
}

async function loadInfo() {
  const error = $("info-error");
  const result = await api("GET", "info");
  // A deployment shared on the internet does not serve /info to the public (the `public`
  // component): then there is nothing to show, and the panel goes away.
  const section = $("info-title").closest("section");
  section.hidden = result.status === 404;
  if (section.hidden) {
    return;
  }
  if (!result.ok) {
    error.textContent = result.body.detail || "The pod information could not be loaded.";
    error.hidden = false;
    return;
  }
  error.hidden = true;
  const info = result.body;
  const world = info.world || {};
  $("info-pod").replaceChildren(
    fact("Pod", info.pod.name),
    fact("Pod IP", info.pod.ip),
    fact("Node", info.pod.node),
    fact("Version", info.version),
    fact("Up for", `${info.uptime_seconds} s`),
    fact("Store", world.store || (world.error ? "unreachable" : "unknown")),
  );
  const configRows = [];
  const secretRows = [];
  for (const [service, part] of [["hello", info], ["world", world]]) {
    for (const entry of part.config || []) {
      const row = document.createElement("tr");
      row.append(
        cell(service, null, "Service"),
        cell(entry.key, null, "Key"),
        cell(entry.value, null, "Value"),
        cell(entry.source, sourceClass(entry.source), "Source"),
      );
      configRows.push(row);
    }
    for (const entry of part.secrets || []) {
      const row = document.createElement("tr");
      row.append(
        cell(service, null, "Service"),
        cell(entry.key, null, "Key"),
        cell(entry.source, sourceClass(entry.source), "Source"),
      );
      secretRows.push(row);
    }
  }
  $("info-config").tBodies[0].replaceChildren(...configRows);
  $("info-secrets").tBodies[0].replaceChildren(...secretRows);
  const banner = (info.config || []).find((entry) => entry.key === "banner");
  $("banner").hidden = !banner;
  $("banner").textContent = banner ? banner.value : "";
}

document.addEventListener("DOMContentLoaded", () => {
  $("claim-form").addEventListener("submit", claimName);
  renderOwned();
  $("send-form").addEventListener("submit", sendHello);
  $("inbox-form").addEventListener("submit", checkInbox);
  $("info-refresh").addEventListener("click", loadInfo);
  loadInfo();
  setInterval(loadInfo, 10000);
});
