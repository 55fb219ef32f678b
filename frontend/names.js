// Scalable Hello World: names this browser claimed, and their tokens. Loaded before app.js,
// which uses tokenFor() on every send and read and calls claimName() and renderOwned().
"use strict";

/** Where this browser keeps the tokens of names it claimed: local storage, nowhere else. */
const TOKENS_KEY = "hello.tokens";

/** The tokens this browser holds, by case-folded name: {key: {name, token}}. */
function heldTokens() {
  try {
    return JSON.parse(localStorage.getItem(TOKENS_KEY)) || {};
  } catch (error) {
    return {};
  }
}

function saveTokens(tokens) {
  localStorage.setItem(TOKENS_KEY, JSON.stringify(tokens));
  renderOwned();
}

function nameKey(name) {
  return name.normalize("NFC").toLowerCase();
}

/** The token of `name` if this browser holds it, else null. */
function tokenFor(name) {
  const held = heldTokens()[nameKey(name)];
  return held ? held.token : null;
}

/** Shows a token once, with where this browser keeps it. */
function showToken(output, name, token, what) {
  const ok = document.createElement("p");
  ok.className = "ok";
  ok.textContent = what;
  const shown = document.createElement("p");
  const code = document.createElement("code");
  code.className = "token";
  code.textContent = token;
  shown.append(`Token for ${name}, shown this once: `, code);
  const where = document.createElement("p");
  where.className = "hint";
  where.textContent = `This browser keeps it in local storage ("${TOKENS_KEY}"), to read ${name}'s inbox and send as ${name} from this page. Copy it to use it elsewhere (curl: Authorization: Bearer <token>).`;
  output.replaceChildren(ok, shown, where);
}

async function claimName(event) {
  event.preventDefault();
  const form = event.currentTarget;
  clearErrors(form);
  const name = $("claim-name").value.trim();
  const button = form.querySelector("button");
  button.disabled = true;
  const result = await api("POST", `names/${encodeURIComponent(name)}`);
  button.disabled = false;
  const output = $("claim-result");
  output.replaceChildren();
  if (!result.ok) {
    showProblem(result.body, { name: "claim-name" }, "claim-error");
    return;
  }
  const tokens = heldTokens();
  tokens[nameKey(result.body.name)] = { name: result.body.name, token: result.body.token };
  saveTokens(tokens);
  showToken(output, result.body.name, result.body.token, `${result.body.name} is yours.`);
}

/** New token, release, forget: what this browser can do with a name it holds. */
async function changeClaim(action, name) {
  const output = $("claim-result");
  const path = `names/${encodeURIComponent(name)}`;
  const tokens = heldTokens();
  const key = nameKey(name);
  if (action === "forget") {
    delete tokens[key];
    saveTokens(tokens);
    output.replaceChildren(note(`This browser no longer holds a token for ${name}.`));
    return;
  }
  if (action === "release" && !window.confirm(`Release ${name}? Anyone may claim it afterwards, and the hellos waiting for it are deleted.`)) {
    return;
  }
  const result = action === "rotate"
    ? await api("POST", `${path}/token`, undefined, tokenFor(name))
    : await api("DELETE", path, undefined, tokenFor(name));
  if (!result.ok) {
    const problem = document.createElement("p");
    problem.className = "error";
    problem.setAttribute("role", "alert");
    problem.textContent = result.body.detail || "That did not work.";
    output.replaceChildren(problem);
    return;
  }
  if (action === "rotate") {
    tokens[key] = { name, token: result.body.token };
    saveTokens(tokens);
    showToken(output, name, result.body.token, `${name} has a new token; the old one no longer works.`);
  } else {
    delete tokens[key];
    saveTokens(tokens);
    output.replaceChildren(note(`${name} is free again; its waiting hellos are deleted.`));
  }
}

function note(text) {
  const line = document.createElement("p");
  line.className = "ok";
  line.textContent = text;
  return line;
}

function actionButton(label, name, action) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "secondary";
  const hidden = document.createElement("span");
  hidden.className = "sr-only";
  hidden.textContent = ` for ${name}`;
  button.append(label, hidden);
  button.addEventListener("click", () => changeClaim(action, name));
  return button;
}

function renderOwned() {
  const held = Object.values(heldTokens());
  $("owned-empty").hidden = held.length > 0;
  $("owned-names").replaceChildren(
    ...held.map(({ name }) => {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.className = "owned-name";
      label.textContent = name;
      item.append(
        label,
        actionButton("New token", name, "rotate"),
        actionButton("Release", name, "release"),
        actionButton("Forget", name, "forget"),
      );
      return item;
    }),
  );
}
