// The graph explorer: reads the graph from the page's JSON, lays it out in layers, draws it as
// SVG, and answers clicks, the search box and the backward-steps slider. Every name and value is
// set as text (textContent), never as markup.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("graph-data").textContent);
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const groups = new Map(data.groups.map((g) => [g.id, g]));
  const collapsed = new Set(data.collapsed);
  const svg = document.getElementById("canvas");
  const viewport = document.getElementById("viewport");
  const details = document.getElementById("details");
  const NS = "http://www.w3.org/2000/svg";
  const view = { x: 20, y: 20, k: 1 };
  let positions = new Map(); // visible id -> {x, y, w, h}
  let selected = null;
  let step = 0; // backward steps shown (0: the forward graph)

  // ------------------------------------------------------------ what is visible
  function representative(node) {
    return node.group && collapsed.has(node.group) ? "group:" + node.group : node.id;
  }

  function visibleGraph() {
    const nodes = new Map();
    for (const n of data.nodes) {
      const id = representative(n);
      if (!nodes.has(id)) {
        nodes.set(id, id === n.id ? n : { id, kind: "group", group: groups.get(n.group) });
      }
    }
    const seen = new Set();
    const edges = [];
    for (const [a, b] of data.edges) {
      const from = representative(byId.get(a));
      const to = representative(byId.get(b));
      const key = from + "\u0000" + to;
      if (from !== to && !seen.has(key)) {
        seen.add(key);
        edges.push([from, to]);
      }
    }
    return { nodes, edges };
  }

  // ------------------------------------------------------------ layered layout
  function layout(graph) {
    const preds = new Map();
    const succs = new Map();
    for (const id of graph.nodes.keys()) {
      preds.set(id, []);
      succs.set(id, []);
    }
    for (const [a, b] of graph.edges) {
      succs.get(a).push(b);
      preds.get(b).push(a);
    }
    const rank = new Map();
    const waiting = new Map([...preds].map(([id, p]) => [id, p.length]));
    const queue = [...graph.nodes.keys()].filter((id) => waiting.get(id) === 0);
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i];
      if (!rank.has(id)) rank.set(id, 0);
      for (const next of succs.get(id)) {
        rank.set(next, Math.max(rank.get(next) || 0, rank.get(id) + 1));
        waiting.set(next, waiting.get(next) - 1);
        if (waiting.get(next) === 0) queue.push(next);
      }
    }
    let deepest = 0;
    for (const r of rank.values()) deepest = Math.max(deepest, r);
    for (const id of graph.nodes.keys()) if (!rank.has(id)) rank.set(id, ++deepest); // a cycle
    const rows = [];
    for (const id of graph.nodes.keys()) (rows[rank.get(id)] = rows[rank.get(id)] || []).push(id);
    const place = new Map();
    positions = new Map();
    let y = 0;
    for (const row of rows) {
      if (!row) continue;
      const centre = (id) => {
        const xs = preds.get(id).filter((p) => place.has(p)).map((p) => place.get(p));
        return xs.length ? xs.reduce((s, v) => s + v, 0) / xs.length : Infinity;
      };
      row.sort((a, b) => centre(a) - centre(b));
      let x = 0;
      for (const id of row) {
        const size = boxSize(graph.nodes.get(id));
        const wanted = centre(id);
        x = Math.max(x, Number.isFinite(wanted) ? wanted - size.w / 2 : x);
        positions.set(id, { x, y, w: size.w, h: size.h });
        place.set(id, x + size.w / 2);
        x += size.w + 24;
      }
      y += 70;
    }
  }

  function title(node) {
    if (node.kind === "group") return `${node.group.label} (${node.group.size} nodes)`;
    if (node.kind === "op") return node.name;
    return (node.name ? node.name + "  " : "") + `(${node.shape.join(", ")}) ${node.dtype}`;
  }

  function boxSize(node) {
    return { w: Math.min(260, 16 + 7 * title(node).length), h: 30 };
  }

  // ------------------------------------------------------------ drawing
  function draw() {
    const graph = visibleGraph();
    layout(graph);
    const fragment = document.createDocumentFragment();
    for (const [a, b] of graph.edges) {
      const p = positions.get(a);
      const q = positions.get(b);
      const line = document.createElementNS(NS, "line");
      line.setAttribute("x1", p.x + p.w / 2);
      line.setAttribute("y1", p.y + p.h);
      line.setAttribute("x2", q.x + q.w / 2);
      line.setAttribute("y2", q.y);
      line.setAttribute("class", "edge");
      fragment.appendChild(line);
    }
    for (const [id, node] of graph.nodes) {
      const p = positions.get(id);
      const g = document.createElementNS(NS, "g");
      g.setAttribute("class", "node " + (node.kind === "tensor" ? node.role : node.kind));
      g.setAttribute("transform", `translate(${p.x},${p.y})`);
      g.dataset.id = id;
      const shape = document.createElementNS(NS, "rect");
      shape.setAttribute("width", p.w);
      shape.setAttribute("height", p.h);
      shape.setAttribute("rx", node.kind === "op" ? 15 : 5);
      const text = document.createElementNS(NS, "text");
      text.setAttribute("x", p.w / 2);
      text.setAttribute("y", 19);
      text.textContent = title(node);
      g.append(shape, text);
      fragment.appendChild(g);
    }
    viewport.replaceChildren(fragment);
    document.getElementById("count").textContent =
      `${graph.nodes.size} of ${data.nodes.length} nodes shown`;
    drawGroups();
    showStep();
    mark();
  }

  function applyView() {
    viewport.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
  }

  function drawGroups() {
    const list = document.getElementById("groups");
    list.replaceChildren();
    for (const group of data.groups) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.textContent = collapsed.has(group.id) ? "expand" : "collapse";
      button.addEventListener("click", () => toggle(group.id));
      const label = document.createElement("span");
      label.textContent = ` ${group.label} (${group.kind}, ${group.size} nodes)`;
      item.append(button, label);
      list.appendChild(item);
    }
  }

  function toggle(groupId) {
    if (collapsed.has(groupId)) collapsed.delete(groupId);
    else collapsed.add(groupId);
    draw();
  }

  function mark() {
    for (const g of viewport.querySelectorAll("g.node")) {
      g.classList.toggle("selected", g.dataset.id === selected);
    }
  }

  // ------------------------------------------------------------ details of a node
  function line(parent, label, value) {
    const row = document.createElement("div");
    const key = document.createElement("b");
    key.textContent = label + ": ";
    row.append(key, document.createTextNode(value));
    parent.appendChild(row);
    return row;
  }

  function summary(parent, label, s) {
    if (!s) return line(parent, label, "none");
    line(parent, label, `min ${s.min}, max ${s.max}, mean ${s.mean}, norm ${s.norm}`);
    const bars = "▁▂▃▄▅▆▇█";
    const top = Math.max(1, ...s.hist);
    line(parent, "  histogram", s.hist.map((c) => bars[Math.round((c / top) * 7)]).join(""));
    if (s.preview) line(parent, "  first values", s.preview.join(", "));
  }

  function show(id) {
    selected = id;
    mark();
    details.replaceChildren();
    if (id.startsWith("group:")) {
      const group = groups.get(id.slice(6));
      line(details, group.kind, group.label);
      line(details, "nodes inside", String(group.size));
      line(details, "click the box again", "to expand it");
      return;
    }
    const node = byId.get(id);
    const heading = document.createElement("h3");
    heading.textContent = node.kind === "op" ? `op ${node.name}` : node.name || `tensor ${node.id}`;
    details.appendChild(heading);
    if (node.group) line(details, groups.get(node.group).kind, groups.get(node.group).label);
    if (node.kind === "op") {
      for (const formula of node.formulas) line(details, "rule", formula);
      line(details, "made at", node.origin || "(run under autodiff.detect_anomaly() to record)");
      return;
    }
    line(details, "shape", `(${node.shape.join(", ")})`);
    line(details, "dtype", node.dtype);
    line(details, "kind", node.role);
    summary(details, "values", node.value);
    summary(details, "gradient", node.grad);
    const maker = data.nodes.find((n) => n.kind === "op" && n.output === node.id);
    if (maker) {
      line(details, "made by", maker.name);
      for (const formula of maker.formulas) line(details, "its rule", formula);
      if (maker.origin) line(details, "at", maker.origin);
    }
  }

  // ------------------------------------------------------------ search, and centring
  function centre(id) {
    const p = positions.get(id);
    const box = svg.getBoundingClientRect();
    view.x = box.width / 2 - (p.x + p.w / 2) * view.k;
    view.y = box.height / 2 - (p.y + p.h / 2) * view.k;
    applyView();
  }

  function search(text) {
    const query = text.trim().toLowerCase();
    if (!query) return;
    const found = data.nodes.find((n) => (n.name || "").toLowerCase().includes(query));
    const status = document.getElementById("found");
    if (!found) {
      status.textContent = "not found";
      return;
    }
    status.textContent = "";
    if (found.group && collapsed.has(found.group)) {
      collapsed.delete(found.group);
      draw();
    }
    show(found.id);
    centre(found.id);
  }

  // ------------------------------------------------------------ backward steps
  function showStep() {
    const known = new Set(data.backward.slice(0, step));
    const current = step ? data.backward[step - 1] : null;
    for (const g of viewport.querySelectorAll("g.node")) {
      const id = g.dataset.id;
      g.classList.toggle("known", known.has(id));
      g.classList.toggle("current", id === current);
    }
    document.getElementById("step").textContent = step
      ? `step ${step} of ${data.backward.length}: the gradient of ${current} is complete`
      : "the forward graph (move the slider to walk the backward pass)";
    if (current && positions.has(current)) show(current);
  }

  // ------------------------------------------------------------ events
  svg.addEventListener("click", (event) => {
    const g = event.target.closest("g.node");
    if (!g) return;
    const id = g.dataset.id;
    if (id.startsWith("group:") && selected === id) toggle(id.slice(6));
    else show(id);
  });
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const factor = Math.exp(-event.deltaY / 500);
    const box = svg.getBoundingClientRect();
    const mx = event.clientX - box.left;
    const my = event.clientY - box.top;
    view.x = mx - (mx - view.x) * factor;
    view.y = my - (my - view.y) * factor;
    view.k *= factor;
    applyView();
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX - view.x, y: event.clientY - view.y };
  });
  window.addEventListener("pointermove", (event) => {
    if (!drag || !event.buttons) return;
    view.x = event.clientX - drag.x;
    view.y = event.clientY - drag.y;
    applyView();
  });
  window.addEventListener("pointerup", () => { drag = null; });
  document.getElementById("search").addEventListener("keydown", (event) => {
    if (event.key === "Enter") search(event.target.value);
  });
  const slider = document.getElementById("steps");
  slider.max = data.backward.length;
  slider.addEventListener("input", () => {
    step = Number(slider.value);
    showStep();
  });

  draw();
  applyView();
  document.body.dataset.ready = "true";
})();
