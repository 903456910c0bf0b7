// foretell's dashboard: each page fetches its JSON document (/ui/api/PAGE) and draws it; nothing else is loaded.
// Hand-written, no library: tables, a few buttons, and inline SVG line charts for the Live page.
"use strict";

const PAGE = document.body.dataset.page;
const KEY = "foretell-api-key";
const PENDING_MS = 1000;
const REFRESH_MS = { jobs: 2000, live: 1000, store: 5000, rollout: 2000, monitor: 10000, models: 5000 };

// -- fetching, with the API key kept in this tab's sessionStorage ---------------------------------

function headers() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: "Bearer " + key } : {};
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers() });
  if (response.status === 401) {
    askForKey();
    throw new Error("this server needs an API key");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function postJson(path, payload) {
  const response = await fetch(path, {
    method: "POST",
    headers: { ...headers(), "Content-Type": "application/json" },
    body: JSON.stringify(payload || {}),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status}: ${body.error || response.statusText}`);
  return body;
}

function askForKey() {
  const form = document.getElementById("key-form");
  form.hidden = false;
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, document.getElementById("key-input").value.trim());
  document.getElementById("key-form").hidden = true;
  refresh();
});

// -- building the DOM ------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "-";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return Math.abs(value) >= 100 ? value.toFixed(1) : Number(value.toPrecision(4)).toString();
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

function table(columns, rows, testid) {
  return el("table", { "data-testid": testid },
    el("thead", {}, el("tr", {}, columns.map(([title]) => el("th", {}, title)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([, pick]) => {
      const value = pick(row);
      return value instanceof Node ? el("td", {}, value) : el("td", { class: typeof value === "number" ? "num" : null }, fmt(value));
    })))));
}

// Any JSON value as nested tables and lists: for the documents whose every figure the page shows as is.
function anyValue(value, depth = 0) {
  if (value === null || typeof value !== "object") return fmt(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return "-";
    if (value.every((v) => v && typeof v === "object" && !Array.isArray(v))) {
      const columns = [...new Set(value.flatMap((v) => Object.keys(v)))];
      return table(columns.map((c) => [c, (row) => nested(row[c], depth)]), value);
    }
    return value.map(fmt).join(", ");
  }
  return el("dl", {}, Object.entries(value).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, nested(v, depth))]));
}

function nested(value, depth) {
  if (value !== null && typeof value === "object" && depth >= 3) return JSON.stringify(value);
  const shown = anyValue(value, depth + 1);
  return shown instanceof Node ? shown : String(shown);
}

function section(title, ...children) {
  return el("section", {}, el("h2", {}, title), ...children);
}

// -- pages -----------------------------------------------------------------------------------------

const PAGES = {
  async models(doc) {
    return doc.models.map((model) => section(model.name,
      el("p", {}, model.description || ""),
      el("p", {}, Object.entries(model.aliases).map(([a, v]) => el("span", { class: "tag", "data-testid": `alias-${model.name}-${a}` }, `@${a} → v${v}`))),
      table([
        ["version", (v) => v.version],
        ["flavor", (v) => v.flavor],
        ["aliases", (v) => v.aliases.join(", ")],
        ["created", (v) => v.created_at],
        ["size (bytes)", (v) => v.size_bytes],
        ["sha256", (v) => v.sha256.slice(0, 12)],
        ["signature", (v) => `${v.signature.inputs.length} inputs → ${v.signature.outputs.map((o) => o.name).join(", ")}`],
        ["predictor", (v) => compiled(v.compiled)],
        ["profile", (v) => v.profile ? `${fmt(v.profile.rows)} rows (${v.profile.source})` : "none"],
        ["", (v) => aliasButtons(model, v)],
      ], model.versions, `versions-${model.name}`),
    ));
  },

  async jobs(doc) {
    return [
      section("Batch jobs", table([
        ["job", (j) => j.id],
        ["status", (j) => el("span", { class: j.status }, j.status)],
        ["model", (j) => `${j.model_uri} (v${j.model_version})`],
        ["rows", (j) => j.status === "running" && j.progress ? progress(j.progress) : j.rows],
        ["scored", (j) => j.scored],
        ["rejected", (j) => j.rejected],
        ["seconds", (j) => j.seconds],
        ["started", (j) => j.started_at.slice(0, 19)],
        ["message", (j) => j.message || ""],
      ], doc.jobs, "jobs")),
      ...doc.jobs.filter((j) => j.rejects_sample && j.rejects_sample.length).map((j) =>
        section(`Rejected rows of ${j.id} (first ${j.rejects_sample.length} of ${fmt(j.rejected)})`, anyValue(j.rejects_sample))),
      section("Schedules", table([
        ["name", (s) => s.name],
        ["cron (UTC)", (s) => s.cron],
        ["command", (s) => s.command],
        ["next run", (s) => s.next_fire],
        ["last run", (s) => s.last_run ? `${s.last_run.status} (${s.last_run.fire_time})` : "-"],
      ], doc.schedules, "schedules")),
    ];
  },

  async live(doc) {
    if (!doc.running) return [section("Live", el("p", { class: "note", "data-testid": "no-server" }, doc.note))];
    const names = Object.keys(doc.models);
    if (names.length === 0) return [section("Live", el("p", { class: "note" }, "no request yet"))];
    return names.map((name) => {
      const points = doc.models[name].points;
      return section(`${name} · last ${Math.round(points.length * doc.interval_seconds)} s`,
        el("p", {}, `since start: ${fmt(doc.models[name].totals.requests)} requests, ${fmt(doc.models[name].totals.rejected)} rejected`),
        el("div", { class: "charts", "data-testid": `live-${name}` },
          chart("requests/s", points, ["requests_per_second"]),
          chart("latency ms (p50, p99)", points, ["p50_ms", "p99_ms"]),
          chart("mean batch size", points, ["mean_batch_size"]),
          chart("in flight", points, ["in_flight"]),
          chart("rejected/s", points, ["rejected_per_second"])));
    });
  },

  async store(doc) {
    const ledger = doc.ledger ? doc.ledger.models : {};
    return [
      section("Generations", table([
        ["model", (g) => g.model],
        ["generation", (g) => g.generation],
        ["published", (g) => g.published_at],
        ["age", (g) => age(g.published_at)],
        ["rows", (g) => g.rows],
        ["live rows since", (g) => g.live_rows],
        ["open generations", (g) => g.open_generations.join(", ") || "-"],
        ["precomputed answers", (g) => source(ledger, g.model, "precomputed")],
        ["live fallbacks", (g) => source(ledger, g.model, "live-fallback")],
        ["event refreshes", (g) => source(ledger, g.model, "event-refresh")],
      ], doc.generations, "generations")),
      section("Entity tables", doc.entities.length ? anyValue(doc.entities) : el("p", { class: "note" }, "none loaded")),
      section("Ledger", doc.ledger ? anyValue(doc.ledger) : el("p", { class: "note" }, "no ledger yet")),
    ];
  },

  async rollout(doc) {
    const names = Object.keys(doc.rollouts);
    if (names.length === 0) return [section("Rollouts", el("p", { class: "note" }, "no model has had a rollout"))];
    return names.map((name) => {
      const shown = doc.rollouts[name];
      const plan = shown.rollout;
      const active = plan.state === "active";
      return section(`${name}: ${plan.mode} ${plan.percent}% · v${plan.challenger} against v${plan.champion} · ${plan.state}`,
        el("p", { "data-testid": `verdict-${name}` }, `verdict: ${shown.verdict.action}`, shown.verdict.reasons.length ? ` (${shown.verdict.reasons.join("; ")})` : ""),
        active ? el("p", {},
          el("button", { "data-testid": `promote-${name}`, onclick: () => act(`promote the challenger v${plan.challenger} of ${name} to @${plan.alias}?`, `/ui/api/rollout/${name}/promote`) }, "Promote"), " ",
          el("button", { class: "danger", "data-testid": `abort-${name}`, onclick: () => act(`abort the rollout of ${name} (the alias stays on v${plan.champion})?`, `/ui/api/rollout/${name}/abort`) }, "Abort")) : null,
        el("h3", {}, "arms"), anyValue({ champion: shown.figures.champion, challenger: shown.figures.challenger }),
        el("h3", {}, "guards"), anyValue(shown.guards),
        el("h3", {}, "quality"), anyValue(shown.quality),
        el("h3", {}, "plan"), anyValue(plan));
    });
  },

  async monitor(doc) {
    return Object.entries(doc.monitors).map(([name, report]) => {
      if (report.error) return section(name, el("p", { class: "note" }, report.error));
      if (report.pending) {
        return section(name, el("p", { class: "note", "data-testid": `monitor-pending-${name}` },
          `computing the monitor over the last ${doc.window_hours} h of the ledger` +
          (report.started_at ? ` (begun ${age(report.started_at)} ago)` : "") + "; the figures appear here when it is done"));
      }
      return section(`${name} · v${report.version} · last ${doc.window_hours} h · computed ${age(report.generated_at)} ago`,
        el("p", { "data-testid": `monitor-verdict-${name}`, class: report.verdict.status }, `${report.verdict.status}: ${report.verdict.reasons.join(" ")}`),
        el("h3", {}, "drift per feature"),
        report.drift && report.drift.features ? table([
          ["feature", (f) => f.name],
          ["kind", (f) => f.kind],
          ["rows", (f) => f.rows],
          ["PSI", (f) => f.psi],
          ["KS", (f) => f.ks],
          ["missing", (f) => f.missing_rate],
          ["status", (f) => el("span", { class: f.status }, f.status)],
        ], report.drift.features, `drift-${name}`) : el("p", { class: "note" }, "no drift figures"),
        el("h3", {}, "traffic"), anyValue(report.traffic && report.traffic.by_source),
        el("h3", {}, "quality per source"), anyValue(report.quality),
        el("h3", {}, "agreement between batch and live"), anyValue(report.agreement));
    });
  },
};

function compiled(found) {
  if (!found) return "not compiled";
  if (found.status !== "passed") return `${found.compiler ? found.compiler + ": " : ""}${found.status}${found.reason ? " (" + found.reason + ")" : ""}`;
  const parity = found.parity ? ` · parity on ${fmt(found.parity.rows)} rows` : "";
  const speed = found.speed && found.speed.speedup ? ` · one row ${fmt(found.speed.speedup.single_row)}× faster` : "";
  return `${found.compiler}${parity}${speed}`;
}

function age(moment) {
  if (!moment) return "-";
  const seconds = (Date.now() - Date.parse(moment)) / 1000;
  if (seconds < 120) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function source(ledger, model, name) {
  const found = ledger[model];
  return found && found.rows_by_source ? (found.rows_by_source[name] || 0) : "-";
}

function progress(p) {
  return el("span", { "data-testid": "progress" }, `${fmt(p.rows)} rows in ${fmt(p.chunks)} chunks`);
}

function aliasButtons(model, version) {
  const aliases = Object.keys(model.aliases).length ? Object.keys(model.aliases) : ["production"];
  return el("span", {}, aliases.filter((a) => model.aliases[a] !== version.version).map((alias) =>
    el("button", {
      "data-testid": `move-${model.name}-${alias}-${version.version}`,
      onclick: () => act(`move ${model.name}@${alias} to version ${version.version}?`,
        `/ui/api/models/${model.name}/alias`, { alias, version: version.version }),
    }, `@${alias} → v${version.version}`)));
}

async function act(question, path, payload) {
  if (!window.confirm(question)) return;
  try {
    await postJson(path, payload);
    say(`done: ${question.replace(/\?$/, "")}`, false, true);
    await refresh();
  } catch (error) {
    say(`refused: ${error.message}`, true, true);
  }
}

// -- the Live page's charts: one polyline per series, inline SVG ----------------------------------

function chart(title, points, fields) {
  const width = 300, height = 90, pad = 4;
  const values = points.flatMap((p) => fields.map((f) => p[f])).filter((v) => v !== null && v !== undefined);
  const top = Math.max(1e-9, ...values);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const colours = ["#2e62c9", "#b3261e"];
  fields.forEach((field, i) => {
    const coords = points.map((p, x) => [x, p[field]]).filter(([, v]) => v !== null && v !== undefined)
      .map(([x, v]) => `${(pad + (x / Math.max(1, points.length - 1)) * (width - 2 * pad)).toFixed(1)},${(height - pad - (v / top) * (height - 2 * pad)).toFixed(1)}`);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", coords.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colours[i % colours.length]);
    line.setAttribute("stroke-width", "1.5");
    svg.append(line);
  });
  const last = points.length ? points[points.length - 1] : {};
  return el("div", { class: "chart" },
    el("div", { class: "label" }, title, ": ", el("span", { class: "now" }, fields.map((f) => fmt(last[f])).join(" / "))),
    svg);
}

// -- the loop --------------------------------------------------------------------------------------

let soon = null; // the one early refresh while figures are being computed
let saidUntil = 0; // an action's outcome stays in view a few seconds, whatever the refreshes say

function say(text, bad, hold) {
  if (!hold && Date.now() < saidUntil) return;
  if (hold) saidUntil = Date.now() + 5000;
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = bad ? "error" : "";
}

async function refresh() {
  try {
    const doc = await getJson(`/ui/api/${PAGE}`);
    const drawn = await PAGES[PAGE](doc);
    document.getElementById("main").replaceChildren(...drawn);
    document.body.dataset.loaded = "true";
    say(`updated ${new Date().toLocaleTimeString()}`);
    if (doc.pending && doc.pending.length && soon === null) { // figures being computed: look again soon, once
      soon = setTimeout(() => { soon = null; refresh(); }, PENDING_MS);
    }
  } catch (error) {
    say(error.message, true);
  }
}

for (const link of document.querySelectorAll("nav a")) {
  if (link.dataset.for === PAGE) link.classList.add("here");
}
refresh();
setInterval(refresh, REFRESH_MS[PAGE] || 5000);
