// thinkloop trace viewer: draws the runs embedded in #trace-data as a graph, a summary and a timeline.
// Model output is untrusted: every string from the trace reaches the page through textContent or an SVG
// attribute, never through innerHTML, and nothing here builds a link or loads anything.
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const timings = {};
  let clock = performance.now();
  function lap(name) { const now = performance.now(); timings[name] = Math.round(now - clock); clock = now; }
  const DATA = JSON.parse(document.getElementById("trace-data").textContent);
  lap("parse");
  const KIND_COLOURS = {
    question: "#64748b", generate: "#2563eb", expand: "#0891b2", evaluate: "#7c3aed", critique: "#db2777",
    revise: "#ea580c", vote: "#16a34a", verify: "#ca8a04", select: "#0d9488", prune: "#9ca3af",
    backtrack: "#dc2626", answer: "#15803d", decide: "#b45309",
  };
  const GREY = new Set(["pruned", "cancelled", "failed"]);
  const COL_W = 170, ROW_H = 22, PAD = 16, RADIUS = 6;
  const DRAW_ALL_UP_TO = 1500; // nodes (or calls): above this, only what is in view (and near it) is drawn
  const WIDE_JOIN = 32; // parents: a join with more shows its edges only while selected
  const RUNS_LISTED = 300;

  const state = { run: null, byId: new Map(), children: new Map(), selected: null, zoom: 1, width: 0, height: 0,
    pos: new Map(), edges: [], onPath: new Set(), drawn: 0, calls: [], tl: null, viewW: 0, viewH: 0, timelineW: 0,
    timelineH: 0 };

  // --- small DOM helpers: text always goes through text nodes ------------------------------------------
  function el(tag, cls, ...children) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }
  const byIdEl = (id) => document.getElementById(id);
  // Thousands separators by hand: the first toLocaleString call costs a tenth of a second (it loads locale data).
  const fmtInt = (n) => (n === null || n === undefined ? "—" : String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ","));
  function fmtSeconds(s) {
    if (s === null || s === undefined) return "—";
    if (DATA.clock !== "wall") return "#" + Math.round(s);
    return s < 1 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(2) + " s";
  }
  const fmtDollars = (d) => (d === null || d === undefined ? "unknown" : "$" + d.toFixed(d < 0.01 ? 5 : 4));
  function clip(text, n) {
    text = String(text).replace(/\s+/g, " ").trim();
    return text.length > n ? text.slice(0, n - 1) + "…" : text;
  }
  function reasonOf(node) {
    if (node.error) return node.error;
    if (node.data && node.data.pruned) return "pruned: " + node.data.pruned;
    if (node.status === "cancelled") return "cancelled (the run stopped or no longer needed it)";
    if (node.status === "pruned") return "pruned";
    return null;
  }

  // --- run picker ------------------------------------------------------------------------------------------
  const runText = DATA.runs.map((r) =>
    [r.id, r.question, r.answer, r.strategy, r.model, r.stop_reason].filter(Boolean).join(" ").toLowerCase());

  function renderRunList() {
    const query = byIdEl("run-search").value.trim().toLowerCase();
    const list = byIdEl("runs");
    const matches = [];
    for (let i = 0; i < DATA.runs.length; i++) {
      if (!query || runText[i].includes(query)) matches.push(i);
    }
    const items = matches.slice(0, RUNS_LISTED).map((i) => {
      const run = DATA.runs[i];
      const item = el("button", "run-item",
        el("span", "q", run.question === null ? run.id : clip(run.question, 60)),
        el("span", "meta", [run.strategy, run.stop_reason, run.answer === null ? "no answer" : "→ " + clip(run.answer, 16)]
          .filter(Boolean).join(" · ")));
      item.type = "button";
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", String(state.run === run));
      item.dataset.run = String(i);
      return item;
    });
    list.replaceChildren(...items);
    const shown = Math.min(matches.length, RUNS_LISTED);
    byIdEl("run-count").textContent = DATA.runs.length === 1 ? "1 run" :
      (query ? matches.length + " of " + DATA.runs.length + " runs match" : DATA.runs.length + " runs") +
      (shown < matches.length ? " (first " + shown + " listed)" : "");
  }

  // --- summary -------------------------------------------------------------------------------------------
  function totalItem(value, label) { return el("div", null, el("b", null, value), el("span", null, label)); }

  function meter(name, used, limit, format) {
    const share = limit > 0 ? Math.min(1, (used || 0) / limit) : 0;
    const fill = el("div", "fill" + (share >= 0.9 ? " high" : ""));
    fill.style.width = (share * 100).toFixed(1) + "%";
    return el("div", "meter", el("span", null, name), el("div", "track", fill),
      el("span", null, format(used) + " of " + format(limit) + " (" + Math.round(share * 100) + "%)"));
  }

  function voteNode(run) {
    for (let i = run.path.length - 1; i >= 0; i--) {
      const node = state.byId.get(run.path[i]);
      if (node && node.data && node.data.votes) return node;
    }
    for (let i = run.nodes.length - 1; i >= 0; i--) if (run.nodes[i].data && run.nodes[i].data.votes) return run.nodes[i];
    return null;
  }

  // One row per answer, and one for the samples that gave none, so the rows add up to the samples drawn.
  function tally(votes, winner, unanswered) {
    const entries = Object.entries(votes).sort((a, b) => b[1] - a[1]);
    const top = Math.max(entries.length ? entries[0][1] : 1, unanswered || 0);
    const box = el("div", "tally");
    const row = (label, cls, count) => {
      const bar = el("div", "bar-fill");
      bar.style.width = ((count / top) * 100).toFixed(1) + "%";
      box.append(el("span", cls, label), el("div", null, bar), el("span", null, String(count)));
    };
    for (const [answer, count] of entries) row(clip(answer, 40), answer === winner ? "win" : null, count);
    if (unanswered) row("(no answer)", "muted", unanswered);
    return box;
  }

  function tallyTitle(data) {
    const voted = Object.values(data.votes).reduce((a, b) => a + b, 0);
    const drawn = data.samples ?? voted + (data.unanswered || 0);
    let title = "Vote tally: " + voted + " vote" + (voted === 1 ? "" : "s") + " from " + drawn + " sample" + (drawn === 1 ? "" : "s");
    if (data.requested !== undefined && data.requested !== drawn) title += " of " + data.requested + " allowed";
    if (data.unanswered) title += "; " + data.unanswered + " gave no answer";
    return title;
  }

  // The result's warnings; a trace written before they were recorded still gets the pruned-answer one.
  function warningsOf(run) {
    const found = (run.warnings || []).slice();
    if (!found.some((w) => w.startsWith("the answer comes from a pruned branch"))) {
      const pruned = run.path.map((id) => state.byId.get(id)).find((n) => n && n.status === "pruned");
      if (pruned) {
        const why = pruned.data && pruned.data.pruned ? ": " + pruned.data.pruned : "";
        found.push("the answer comes from a pruned branch (node " + pruned.id + why + ")");
      }
    }
    return found;
  }

  function renderSummary(run) {
    const t = run.totals;
    const counts = { pruned: 0, cancelled: 0, failed: 0, backtrack: 0 };
    for (const node of run.nodes) {
      if (GREY.has(node.status)) counts[node.status]++;
      if (node.kind === "backtrack") counts.backtrack++;
    }
    const parts = [
      el("div", "question", run.question === null ? "(the trace has no question for this run)" : run.question),
      el("div", "answer-line",
        el("span", "answer" + (run.answer === null ? " none" : run.verdict === "failed" ? " failed" : ""),
          run.answer === null ? "no answer" : run.answer),
        run.verdict && run.verdict !== "unchecked"
          ? el("span", "badge verdict-" + run.verdict, run.verdict === "failed" ? "check failed" : "check passed") : null,
        el("span", "badge stop-" + run.stop_reason + (run.verdict === "failed" ? " stop-unmet" : warningsOf(run).length ? " stop-warned" : ""),
          "stop: " + run.stop_reason),
        el("span", "muted", [run.strategy, run.model, "run " + run.id].filter(Boolean).join(" · "))),
      run.stop_detail ? el("div", "stop-detail", run.stop_detail) : null,
      run.verdict === "failed" && run.feedback ? el("div", "feedback", "The check said: " + run.feedback) : null,
      ...warningsOf(run).map((w) => el("div", "warning", "warning: " + w)),
      run.error ? el("div", "error", run.error) : null,
      el("div", "totals",
        totalItem(fmtInt(t.calls) + (t.failed_calls ? " (" + t.failed_calls + " failed)" : ""), "calls"),
        totalItem(fmtInt(t.prompt_tokens), "prompt tokens"),
        totalItem(fmtInt(t.completion_tokens), "completion tokens"),
        totalItem(fmtInt(t.reasoning_tokens), "reasoning tokens"),
        totalItem(fmtInt(t.cached_prompt_tokens), "cached prompt tokens"),
        totalItem(fmtInt(t.tokens), "tokens in all"),
        totalItem(fmtDollars(t.dollars), "dollars"),
        totalItem(DATA.clock === "wall" ? fmtSeconds(run.seconds) : "—", "seconds"),
        totalItem(fmtInt(run.nodes.length), "nodes"),
        totalItem(counts.pruned + " / " + counts.cancelled + " / " + counts.failed, "pruned / cancelled / failed"),
        counts.backtrack ? totalItem(fmtInt(counts.backtrack), "backtracks") : null),
      t.calls_without_usage ? el("div", "muted", t.calls_without_usage + " calls reported no usage (not counted as free)") : null,
    ];
    const limits = run.limits || {};
    const used = { tokens: t.tokens, calls: t.calls, seconds: run.seconds, dollars: t.dollars };
    const formats = { tokens: fmtInt, calls: fmtInt, seconds: (s) => (s === null || s === undefined ? "—" : s.toFixed(1) + " s"),
      dollars: (d) => (d === null || d === undefined ? "—" : "$" + d.toFixed(4)) };
    const names = Object.keys(limits);
    if (names.length) {
      parts.push(el("h3", null, "Budget used"));
      for (const name of names) parts.push(meter(name, used[name], limits[name], formats[name]));
    } else {
      parts.push(el("div", "muted", "No budget limits were set for this run."));
    }
    const vote = voteNode(run);
    if (vote) {
      parts.push(el("h3", null, tallyTitle(vote.data)));
      parts.push(tally(vote.data.votes, vote.answer, vote.data.unanswered));
    }
    byIdEl("summary").replaceChildren(...parts.filter(Boolean));
  }

  // --- graph layout: first parents make a tree; nodes with several parents sit between them --------------
  function buildIndex(run) {
    state.byId = new Map();
    state.children = new Map();
    for (const node of run.nodes) { state.byId.set(node.id, node); state.children.set(node.id, []); }
    for (const node of run.nodes) {
      const parent = node.parents && node.parents.length ? node.parents[0] : null;
      if (parent !== null && state.children.has(parent)) state.children.get(parent).push(node.id);
    }
    state.onPath = new Set(run.path);
  }

  // Every node gets a place; only those in view are made into SVG elements when the graph is big, so a run of
  // ten thousand nodes paints as fast as a small one (scrolling draws the rest).
  function layout(run) {
    const pos = new Map();
    let row = 0;
    const roots = run.nodes.filter((n) => !(n.parents && n.parents.length && state.byId.has(n.parents[0])));
    for (const root of roots) {
      const stack = [[root.id, 0]];
      while (stack.length) {
        const top = stack[stack.length - 1];
        const kids = state.children.get(top[0]);
        if (top[1] < kids.length) { stack.push([kids[top[1]++], 0]); continue; }
        stack.pop();
        const r = kids.length ? (pos.get(kids[0]).row + pos.get(kids[kids.length - 1]).row) / 2 : row++;
        pos.set(top[0], { row: r, col: state.byId.get(top[0]).depth || 0 });
      }
    }
    // A join (a vote over samples, a beam's selection) with no children of its own sits among its parents.
    for (const node of run.nodes) {
      if (node.parents && node.parents.length > 1 && !state.children.get(node.id).length) {
        let sum = 0, count = 0;
        for (const parent of node.parents) { const p = pos.get(parent); if (p) { sum += p.row; count++; } }
        if (count) pos.get(node.id).row = sum / count;
      }
    }
    let maxCol = 0;
    for (const p of pos.values()) {
      if (p.col > maxCol) maxCol = p.col;
      p.x = PAD + p.col * COL_W;
      p.y = PAD + p.row * ROW_H;
    }
    state.pos = pos;
    state.width = PAD * 2 + maxCol * COL_W + COL_W;
    state.height = PAD * 2 + Math.max(row - 1, 0) * ROW_H + ROW_H;
    // Edges, each with its box, so drawing a window of the graph only walks a flat list.
    const edges = [];
    for (const node of run.nodes) {
      const p = pos.get(node.id);
      (node.parents || []).forEach((parent, index) => {
        const q = pos.get(parent);
        // A join of many parents (a beam's selection) would cross the whole graph: its other edges are
        // drawn while it is selected.
        const wide = index > 0 && node.parents.length > WIDE_JOIN ? node.id : null;
        if (q) edges.push({ a: q, b: p, cls: node.kind === "backtrack" ? 2 : index === 0 ? 0 : 1, wide });
      });
    }
    for (let i = 1; i < run.path.length; i++) {
      const a = pos.get(run.path[i - 1]), b = pos.get(run.path[i]);
      if (a && b) edges.push({ a, b, cls: 3 });
    }
    state.edges = edges;
  }

  function labelOf(node) {
    let text = node.kind;
    if (node.kind === "backtrack") text = "↩ backtrack";
    if (node.kind === "decide" && node.data && node.data.decision) text = "decide: " + clip(node.data.decision, 12);
    if (node.data && node.data.votes && node.answer !== undefined) {
      const votes = node.data.votes[node.answer];
      text += " → " + clip(node.answer, 18) + (votes !== undefined ? " (" + votes + "/" + (node.data.samples ?? "?") + ")" : "");
    } else if (node.answer !== undefined && node.answer !== null && node.kind !== "question") {
      text += " → " + clip(node.answer, 18);
    }
    if (node.score !== undefined && node.score !== null) text += " · " + Number(node.score).toFixed(2);
    if (node.status !== "done") text += " [" + node.status + "]";
    return text;
  }

  function edge(a, b) {
    const x1 = a.x + RADIUS, x2 = b.x - RADIUS, mid = (x1 + x2) / 2;
    return "M" + x1 + " " + a.y + "C" + mid + " " + a.y + " " + mid + " " + b.y + " " + x2 + " " + b.y;
  }

  // The part of the graph (in its own units) to draw: all of it when small, else the view and a margin.
  function graphWindow() {
    if (state.run.nodes.length <= DRAW_ALL_UP_TO) return null;
    const box = byIdEl("graph-scroll");
    const margin = 600 / state.zoom;
    const left = box.scrollLeft / state.zoom - margin, top = box.scrollTop / state.zoom - margin;
    return { left, top, right: left + state.viewW / state.zoom + 2 * margin, bottom: top + state.viewH / state.zoom + 2 * margin };
  }

  function drawGraph() {
    const run = state.run;
    const win = graphWindow();
    const inside = (x, y) => !win || (x >= win.left && x <= win.right && y >= win.top && y <= win.bottom);
    const paths = [[], [], [], []];
    for (const e of state.edges) {
      if (e.wide !== null && e.wide !== undefined && e.wide !== state.selected) continue;
      if (win && (Math.max(e.a.x, e.b.x) < win.left || Math.min(e.a.x, e.b.x) > win.right ||
        Math.max(e.a.y, e.b.y) < win.top || Math.min(e.a.y, e.b.y) > win.bottom)) continue;
      paths[e.cls].push(edge(e.a, e.b));
    }
    const layer = svg("g", {});
    ["edges", "joins", "backtracks", "path-edges"].forEach((cls, i) => layer.append(svg("path", { class: cls, d: paths[i].join("") })));
    let drawn = 0;
    for (const node of run.nodes) {
      const p = state.pos.get(node.id);
      if (!p || !inside(p.x, p.y)) continue;
      drawn++;
      const onPath = state.onPath.has(node.id);
      const classes = "node s-" + node.status + (onPath ? " on-path" : "") + (node.id === state.selected ? " selected" : "");
      const shape = node.kind === "verify" || node.kind === "vote" || node.kind === "select"
        ? svg("rect", { x: p.x - RADIUS, y: p.y - RADIUS, width: RADIUS * 2, height: RADIUS * 2, rx: 2 })
        : svg("circle", { cx: p.x, cy: p.y, r: node.kind === "question" ? RADIUS + 2 : RADIUS });
      shape.setAttribute("class", classes);
      shape.setAttribute("fill", KIND_COLOURS[node.kind] || "#6b7280");
      shape.setAttribute("data-id", node.id);
      shape.setAttribute("data-kind", node.kind);
      shape.setAttribute("data-status", node.status);
      const label = svg("text", { x: p.x + RADIUS + 4, y: p.y + 4,
        class: "label" + (GREY.has(node.status) ? " grey" : "") + (onPath ? " on-path" : "") });
      label.textContent = labelOf(node);
      layer.append(shape, label);
    }
    byIdEl("graph").replaceChildren(layer);
    state.drawn = drawn;
    if (window.thinkloopViewer) window.thinkloopViewer.drawn = drawn;
    byIdEl("graph-note").textContent = run.nodes.length + " nodes" +
      (win ? " (drawn as they scroll into view: " + drawn + " now)" : "");
    return drawn;
  }

  function renderGraph(run) {
    layout(run);
    const graph = byIdEl("graph");
    graph.setAttribute("viewBox", "0 0 " + state.width + " " + state.height);
    applyZoom();
    return drawGraph();
  }

  function applyZoom() {
    const graph = byIdEl("graph");
    graph.setAttribute("width", Math.max(1, state.width * state.zoom));
    graph.setAttribute("height", Math.max(1, state.height * state.zoom));
  }

  function zoomTo(z) {
    state.zoom = Math.min(4, Math.max(0.02, z));
    applyZoom();
    if (state.run.nodes.length > DRAW_ALL_UP_TO) drawGraph();
  }

  function scrollToNode(id) {
    const p = state.pos.get(id);
    if (!p) return;
    const box = byIdEl("graph-scroll");
    box.scrollLeft = Math.max(0, p.x * state.zoom - state.viewW / 2);
    box.scrollTop = Math.max(0, p.y * state.zoom - state.viewH / 2);
    if (state.run.nodes.length > DRAW_ALL_UP_TO) drawGraph(); // now, not a frame later: the node must be there
  }

  function legend() {
    const used = new Set(state.run.nodes.map((n) => n.kind));
    const items = Object.keys(KIND_COLOURS).filter((k) => used.has(k)).map((kind) => {
      const dot = el("i");
      dot.style.background = KIND_COLOURS[kind];
      return el("span", null, dot, kind);
    });
    const pathKey = el("i");
    pathKey.style.background = "var(--path)";
    const greyKey = el("i");
    greyKey.style.background = "#d1d5db";
    items.push(el("span", null, pathKey, "answer path"), el("span", null, greyKey, "pruned / cancelled / failed"));
    byIdEl("legend").replaceChildren(...items);
  }

  // --- timeline of calls: one bar per call, lanes packed so concurrency shows as stacked bars -------------
  function packLanes(calls) {
    // Greedy interval partitioning with a min-heap of lane ends: O(n log n) for any concurrency.
    const heap = []; // [end, lane]
    const push = (item) => {
      heap.push(item);
      let i = heap.length - 1;
      while (i > 0) { const j = (i - 1) >> 1; if (heap[j][0] <= heap[i][0]) break; [heap[i], heap[j]] = [heap[j], heap[i]]; i = j; }
    };
    const pop = () => {
      const top = heap[0], last = heap.pop();
      if (heap.length) {
        heap[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < heap.length && heap[l][0] < heap[m][0]) m = l;
          if (r < heap.length && heap[r][0] < heap[m][0]) m = r;
          if (m === i) break;
          [heap[i], heap[m]] = [heap[m], heap[i]]; i = m;
        }
      }
      return top;
    };
    let lanes = 0;
    const wall = DATA.clock === "wall";
    for (const call of calls) {
      // In event order a call's two events are whole steps apart; a lane is free once its call has ended.
      const free = heap.length && (wall ? heap[0][0] <= call.t0 : heap[0][0] < call.t0);
      call.lane = free ? pop()[1] : lanes++;
      push([Math.max(call.t1, call.t0), call.lane]);
    }
    return lanes;
  }

  function renderTimeline(run) {
    const calls = run.nodes.filter((n) => n.request).sort((a, b) => a.t0 - b.t0 || a.id - b.id);
    const box = byIdEl("timeline");
    state.calls = calls;
    if (!calls.length) {
      box.replaceChildren();
      box.setAttribute("height", 0);
      byIdEl("timeline-note").textContent = "no model calls in this run";
      return;
    }
    const lanes = packLanes(calls);
    const end = calls.reduce((m, c) => Math.max(m, c.t1), 0);
    const width = Math.max(600, state.timelineW - 4);
    const tl = { left: 46, top: 18, width, laneH: Math.max(3, Math.min(14, Math.floor(360 / lanes))), span: end > 0 ? end : 1 };
    tl.scale = (width - tl.left - 10) / tl.span;
    tl.height = tl.top + lanes * tl.laneH + 6;
    state.tl = tl;
    box.setAttribute("width", width);
    box.setAttribute("height", tl.height);
    box.setAttribute("viewBox", "0 0 " + width + " " + tl.height);
    byIdEl("timeline-scroll").scrollTop = 0;
    drawTimeline();
    byIdEl("timeline-note").textContent = calls.length + (calls.length === 1 ? " call" : " calls") + ", at most " + lanes + " at once" +
      (DATA.clock === "wall" ? "; grey: queued before the model call, colour: in the model" : "; in event order (this trace has no timestamps)");
  }

  function drawTimeline() {
    const tl = state.tl, calls = state.calls;
    let lo = -Infinity, hi = Infinity;
    if (calls.length > DRAW_ALL_UP_TO) {
      const scroller = byIdEl("timeline-scroll");
      lo = scroller.scrollTop - 200;
      hi = scroller.scrollTop + state.timelineH + 200;
    }
    const layer = svg("g", {});
    layer.append(svg("line", { class: "axis", x1: tl.left, y1: tl.top - 4, x2: tl.width - 10, y2: tl.top - 4 }));
    const step = niceStep(tl.span / 8);
    for (let t = 0; t <= tl.span + 1e-9; t += step) {
      const x = tl.left + t * tl.scale;
      const tick = svg("text", { x: x, y: tl.top - 7, class: "tick", "text-anchor": "middle" });
      tick.textContent = DATA.clock === "wall" ? (step < 1 ? (t * 1000).toFixed(0) + "ms" : t.toFixed(step < 10 ? 1 : 0) + "s") : String(Math.round(t));
      layer.append(tick, svg("line", { class: "axis", x1: x, y1: tl.top - 6, x2: x, y2: tl.top - 2 }));
    }
    const waits = [], bars = [];
    for (const call of calls) {
      const y = tl.top + call.lane * tl.laneH;
      if (y + tl.laneH < lo || y > hi) continue;
      const t1 = Math.max(call.t1, call.t0);
      const sent = DATA.clock === "wall" && call.latency_s !== undefined ? Math.max(call.t0, t1 - call.latency_s) : call.t0;
      if (sent > call.t0) {
        const w = (sent - call.t0) * tl.scale;
        waits.push("M" + (tl.left + call.t0 * tl.scale) + " " + y + "h" + w + "v" + (tl.laneH - 1) + "h" + (-w) + "z");
      }
      const bar = svg("rect", { x: tl.left + sent * tl.scale, y: y, width: Math.max(1.5, (t1 - sent) * tl.scale), height: tl.laneH - 1,
        fill: KIND_COLOURS[call.kind] || "#6b7280" });
      bar.setAttribute("class", "call s-" + call.status + (state.onPath.has(call.id) ? " on-path" : "") + (call.id === state.selected ? " selected" : ""));
      bar.setAttribute("data-id", call.id);
      bars.push(bar);
    }
    layer.append(svg("path", { class: "wait", d: waits.join("") }), ...bars);
    byIdEl("timeline").replaceChildren(layer);
  }

  function niceStep(raw) {
    if (!(raw > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (raw <= m * power) return m * power;
    return 10 * power;
  }

  // --- details of one node --------------------------------------------------------------------------------
  function kv(pairs) {
    const list = el("dl", "kv");
    for (const [key, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      list.append(el("dt", null, key), el("dd", null, value));
    }
    return list;
  }

  function nodeLinks(ids) {
    const box = el("div");
    for (const id of ids.slice(0, 60)) {
      const node = state.byId.get(id);
      const button = el("button", "link", "#" + id + (node ? " " + node.kind : ""));
      button.type = "button";
      button.dataset.go = String(id);
      box.append(button);
    }
    if (ids.length > 60) box.append(el("span", "muted", "and " + (ids.length - 60) + " more"));
    return box;
  }

  // A model that shows its reasoning inline (<think>…</think>) gets it shown apart from the answer.
  function splitReasoning(text) {
    const match = /^\s*<think>([\s\S]*?)(<\/think>|$)([\s\S]*)$/.exec(text);
    if (!match) return [null, text];
    return [match[1].trim(), match[3]];
  }

  const isWideJoin = (node) => Boolean(node && node.parents && node.parents.length > WIDE_JOIN);

  function showNode(id) {
    const node = state.byId.get(id);
    if (!node) return;
    const previous = state.byId.get(state.selected);
    state.selected = id;
    if (isWideJoin(node) || isWideJoin(previous)) drawGraph();
    for (const sel of ["#graph", "#timeline"]) {
      for (const old of document.querySelectorAll(sel + " .selected")) old.classList.remove("selected");
      const now = document.querySelector(sel + ' [data-id="' + id + '"]');
      if (now) now.classList.add("selected");
    }
    const parts = [el("h2", null, "#" + node.id + " " + node.kind),
      el("div", null, el("span", "badge stop-" + (node.status === "done" ? "completed" : node.status === "running" ? "running" : "error"), node.status),
        node.strategy ? el("span", "muted", " " + node.strategy) : null,
        state.onPath.has(node.id) ? el("span", "muted", " · on the answer path") : null)];
    const reason = reasonOf(node);
    if (reason) parts.push(el("div", "error", reason));
    const usage = node.usage || {};
    parts.push(kv([
      ["answer", node.answer], ["score", node.score === undefined ? null : String(node.score)], ["depth", String(node.depth || 0)],
      ["latency", node.latency_s === undefined ? null : fmtSeconds(node.latency_s)],
      [DATA.clock === "wall" ? "start → end" : "events", fmtSeconds(node.t0) + " → " + fmtSeconds(node.t1)],
      ["model", node.model],
      ["prompt tokens", usage.prompt_tokens === undefined ? null : fmtInt(usage.prompt_tokens)],
      ["completion tokens", usage.completion_tokens === undefined ? null : fmtInt(usage.completion_tokens)],
      ["reasoning tokens", usage.reasoning_tokens === undefined ? null :
        fmtInt(usage.reasoning_tokens) + (usage.reasoning_tokens_estimated ? " (estimated)" : "")],
      ["cached prompt tokens", usage.cached_prompt_tokens === undefined ? null : fmtInt(usage.cached_prompt_tokens)],
    ]));
    if (node.parents && node.parents.length) parts.push(el("h3", null, "Parents"), nodeLinks(node.parents));
    const children = state.run.nodes.filter((n) => n.parents && n.parents.includes(node.id));
    if (children.length) parts.push(el("h3", null, "Children"), nodeLinks(children.map((n) => n.id)));
    // Verdicts: the node's own (a verify node), or those of the verify nodes that judged it.
    const verdicts = node.kind === "verify" && !node.request ? [node] : children.filter((n) => n.kind === "verify" && n.data && "accepted" in n.data);
    for (const verdict of verdicts) {
      const data = verdict.data || {};
      parts.push(el("h3", null, "Verifier verdict" + (verdict === node ? "" : " (#" + verdict.id + ")")),
        el("div", data.accepted ? "verdict-ok" : "verdict-no", data.accepted ? "accepted" : "rejected",
          verdict.score !== undefined ? el("span", "muted", " score " + verdict.score) : null));
      if (data.feedback) parts.push(el("pre", null, data.feedback));
    }
    if (node.data && node.data.votes) parts.push(el("h3", null, tallyTitle(node.data)), tally(node.data.votes, node.answer, node.data.unanswered));
    // One choice of an n-sample call: its request is the call's, on the parent node.
    const caller = !node.request && node.data && node.data.choice !== undefined && node.parents && node.parents.length
      ? state.byId.get(node.parents[0]) : null;
    const requester = node.request ? node : caller && caller.request ? caller : null;
    if (requester) {
      const r = requester.request;
      const settings = ["temperature", "top_p", "max_tokens", "n", "seed", "stop", "logprobs"]
        .filter((k) => r[k] !== undefined).map((k) => k + "=" + JSON.stringify(r[k])).join(", ");
      parts.push(el("h3", null, "Request" + (requester === node ? "" : " (of call #" + requester.id + ", choice " +
        (node.data.choice + 1) + ")") + (settings ? " (" + settings + ")" : "")));
      for (const [role, text] of r.messages) parts.push(el("div", "msg-role", role), el("pre", null, DATA.texts[text]));
    }
    if (node.choices) {
      node.choices.forEach((choice, index) => {
        const [reasoning, answer] = choice.reasoning ? [choice.reasoning, choice.text] : splitReasoning(choice.text);
        parts.push(el("h3", null, "Completion" + (node.choices.length > 1 ? " " + (index + 1) + " of " + node.choices.length : "") +
          (choice.finish_reason ? " (finish: " + choice.finish_reason + ")" : "")));
        if (reasoning !== null) parts.push(el("div", "msg-role", "reasoning"), el("pre", "reasoning", reasoning), el("div", "msg-role", "answer"));
        parts.push(el("pre", "completion", answer));
      });
    }
    if (node.text !== undefined && node.text !== null) {
      const [reasoning, answer] = splitReasoning(node.text);
      parts.push(el("h3", null, node.kind === "question" ? "Question" : caller ? "Completion" + (node.data.finish_reason ?
        " (finish: " + node.data.finish_reason + ")" : "") : "Text"));
      if (reasoning !== null) parts.push(el("div", "msg-role", "reasoning"), el("pre", "reasoning", reasoning), el("div", "msg-role", "answer"));
      parts.push(el("pre", "completion", answer));
    }
    if (node.data) {
      const rest = Object.assign({}, node.data);
      delete rest.votes;
      if (Object.keys(rest).length) parts.push(el("h3", null, "Data"), el("pre", null, JSON.stringify(rest, null, 2)));
    }
    byIdEl("detail").replaceChildren(...parts.filter(Boolean));
  }

  function select(id, scroll) {
    showNode(id);
    if (scroll) scrollToNode(id);
  }

  // --- wiring ---------------------------------------------------------------------------------------------
  // Read the views' sizes once per run (before drawing), so no drawing step forces a layout of the page.
  function measureViews() {
    state.viewW = byIdEl("graph-scroll").clientWidth || 800;
    state.viewH = Math.ceil(window.innerHeight * 0.62);
    state.timelineW = byIdEl("timeline-scroll").clientWidth || 800;
    state.timelineH = Math.ceil(window.innerHeight * 0.36);
  }

  // Big graphs and timelines draw what scrolls into view, at most once a frame.
  function onScroll(draw, big) {
    let pending = false;
    return () => {
      if (!state.run || !big() || pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; draw(); });
    };
  }
  byIdEl("graph-scroll").addEventListener("scroll", onScroll(drawGraph, () => state.run.nodes.length > DRAW_ALL_UP_TO));
  byIdEl("timeline-scroll").addEventListener("scroll", onScroll(drawTimeline, () => state.calls.length > DRAW_ALL_UP_TO));
  window.addEventListener("resize", () => {
    if (!state.run) return;
    measureViews();
    if (state.run.nodes.length > DRAW_ALL_UP_TO) drawGraph();
  });

  function showRun(index) {
    const run = DATA.runs[index];
    if (!run) return;
    state.run = run;
    state.selected = null;
    state.zoom = 1;
    clock = performance.now();
    measureViews();
    buildIndex(run);
    document.title = "thinkloop · " + (run.question === null ? run.id : clip(run.question, 60));
    renderSummary(run);
    lap("summary");
    renderGraph(run);
    legend();
    lap("graph");
    renderTimeline(run);
    lap("timeline");
    for (const item of document.querySelectorAll(".run-item")) item.setAttribute("aria-selected", String(item.dataset.run === String(index)));
    const start = run.answer_node !== null && state.byId.has(run.answer_node) ? run.answer_node : (run.nodes.length ? run.nodes[0].id : null);
    if (start !== null) select(start, true);
    lap("detail");
    const viewer = { run: run.id, nodes: run.nodes.length, drawn: state.drawn, renderedAt: performance.now(), timings };
    window.thinkloopViewer = viewer;
    document.body.dataset.ready = run.id;
    // The frame after this one has been painted when a task queued from its animation callback runs.
    requestAnimationFrame(() => setTimeout(() => { viewer.paintedAt = performance.now(); }, 0));
  }

  byIdEl("run-search").addEventListener("input", renderRunList);
  byIdEl("runs").addEventListener("click", (event) => {
    const item = event.target.closest(".run-item");
    if (item) showRun(Number(item.dataset.run));
  });
  byIdEl("graph").addEventListener("click", (event) => {
    const target = event.target.closest("[data-id]");
    if (target) select(Number(target.getAttribute("data-id")), false);
  });
  byIdEl("timeline").addEventListener("click", (event) => {
    const target = event.target.closest("[data-id]");
    if (target) select(Number(target.getAttribute("data-id")), true);
  });
  byIdEl("detail").addEventListener("click", (event) => {
    const target = event.target.closest("[data-go]");
    if (target) select(Number(target.dataset.go), true);
  });
  byIdEl("zoom-in").addEventListener("click", () => zoomTo(state.zoom * 1.25));
  byIdEl("zoom-out").addEventListener("click", () => zoomTo(state.zoom / 1.25));
  byIdEl("zoom-fit").addEventListener("click", () => {
    const box = byIdEl("graph-scroll");
    zoomTo(Math.min(1, box.clientWidth / state.width, box.clientHeight / state.height));
  });
  byIdEl("zoom-answer").addEventListener("click", () => {
    if (state.run && state.run.answer_node !== null) select(state.run.answer_node, true);
  });

  const tooltip = el("div");
  tooltip.id = "tooltip";
  document.body.append(tooltip);
  for (const id of ["graph", "timeline"]) {
    byIdEl(id).addEventListener("mouseover", (event) => {
      const target = event.target.closest("[data-id]");
      if (!target) { tooltip.style.display = "none"; return; }
      const node = state.byId.get(Number(target.getAttribute("data-id")));
      if (!node) return;
      const reason = reasonOf(node);
      tooltip.textContent = "#" + node.id + " " + labelOf(node) + (reason ? "\n" + reason : "");
      tooltip.style.display = "block";
      tooltip.style.left = event.clientX + 12 + "px";
      tooltip.style.top = event.clientY + 12 + "px";
    });
    byIdEl(id).addEventListener("mouseleave", () => { tooltip.style.display = "none"; });
  }

  renderRunList();
  if (DATA.runs.length) showRun(0);
  else byIdEl("summary").replaceChildren(el("p", "muted", "This trace holds no runs."));
})();
