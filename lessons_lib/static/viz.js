// Live views of lessons_lib.viz (attention explorer, softmax/scale explorer, positional-encoding explorer).
//
// An anywidget ES module: plain DOM + SVG, no imports, nothing fetched. The Python side sends, once,
//   kind   "attention" | "softmax" | "positional"   (which renderer below)
//   spec   static JSON data (tokens, labels, sizes, title)
//   values float32 little-endian bytes (attention weights [L, H, T_q, T_k] or encodings [max_len, d_model])
//   state  the selection; written here on every click/slide (model.save_changes) and redrawn when Python sets it.
// Hover only changes local highlighting, so it never talks to the kernel.
// Stable CSS hooks for tests and styling all start with "lv-".

const SVGNS = "http://www.w3.org/2000/svg";
// matplotlib's "Blues" (ColorBrewer), the same stops as lessons_lib/viz/_base.py BLUES
const BLUES = [[247, 251, 255], [222, 235, 247], [198, 219, 239], [158, 202, 225], [107, 174, 214],
  [66, 146, 198], [33, 113, 181], [8, 81, 156], [8, 48, 107]];
const HIGHLIGHT = "#e8590c";
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
const BLOCKED = "#e6e6e6";

// ---------------------------------------------------------------------------------------------- helpers
function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  return node;
}

function append(node, children) {
  for (const c of [].concat(children ?? [])) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function h(tag, attrs, children) {
  const node = append(setAttrs(document.createElement(tag), attrs), children);
  // JupyterLab/Notebook 7 bind the arrow keys (and letters) to notebook commands on *any* focused element of a
  // notebook in command mode; this attribute (checked from the focused element upwards) keeps them for our controls
  if (tag === "input" || tag === "select" || tag === "button") node.setAttribute("data-lm-suppress-shortcuts", "true");
  return node;
}

function s(tag, attrs, children) {
  return append(setAttrs(document.createElementNS(SVGNS, tag), attrs), children);
}

function blues(w) {
  const x = Math.min(Math.max(Number.isFinite(w) ? w : 0, 0), 1) * (BLUES.length - 1);
  const i = Math.min(Math.floor(x), BLUES.length - 2);
  const t = x - i;
  const c = BLUES[i].map((a, k) => Math.round(a + (BLUES[i + 1][k] - a) * t));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function ink(w) {
  return w > 0.55 ? "#ffffff" : "#222222";
}

// fixed-point without "-0.000" (the Python side formats the same way)
function fmt(x, d = 3) {
  const str = Number(x).toFixed(d);
  return /^-0\.?0*$/.test(str) ? str.slice(1) : str;
}

function short(text, width = 12) {
  const t = String(text);
  return t.length <= width ? t : t.slice(0, width - 1) + "…";
}

function shown(text) {
  return String(text).replace(/\n/g, "\\n").replace(/\t/g, "\\t");
}

function floats(value) {
  if (!value) return new Float32Array(0);
  if (value instanceof DataView || ArrayBuffer.isView(value)) {
    return new Float32Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  }
  if (value instanceof ArrayBuffer) return new Float32Array(value.slice(0));
  return Float32Array.from(value);
}

function uid(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

function textWidth(str, px = 11) {
  return Math.ceil(String(str).length * px * 0.62);
}

function topIndices(row, k) {
  const order = Array.from(row, (_, j) => j);
  order.sort((a, b) => (row[b] - row[a]) || (a - b));
  return order.slice(0, k);
}

function softmax(xs) {
  const m = Math.max(...xs);
  const e = xs.map((v) => Math.exp(v - m));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

function entropy(p) {
  let H = 0;
  for (const v of p) if (v > 0) H -= v * Math.log(v);
  return Math.max(H, 0);
}

// || diag(p) - p p^T ||_F  =  sqrt( sum p^2 - 2 sum p^3 + (sum p^2)^2 )
function jacobianNorm(p) {
  let s2 = 0;
  let s3 = 0;
  for (const v of p) {
    s2 += v * v;
    s3 += v * v * v;
  }
  return Math.sqrt(Math.max(s2 - 2 * s3 + s2 * s2, 0));
}

function titleNode(spec) {
  return spec.title ? h("div", { class: "lv-title", text: spec.title }) : null;
}

function linePath(points) {
  return points.map(([x, y], i) => `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`).join("");
}

// ---------------------------------------------------------------------------------------------- attention
function renderAttention({ model, el }) {
  const spec = model.get("spec");
  const W = floats(model.get("values"));
  const L = spec.layers;
  const H = spec.heads;
  const TQ = spec.tq;
  const TK = spec.tk;
  const qTok = spec.q_tokens.map(shown);
  const kTok = spec.k_tokens.map(shown);
  const allowed = spec.mask; // flat [TQ * TK] of 0/1, or null
  const hatch = uid("lv-hatch");
  const at = (l, hd, q, k) => W[((l * H + hd) * TQ + q) * TK + k];
  const isBlocked = (q, k) => allowed !== null && allowed !== undefined && allowed[q * TK + k] === 0;
  let hover = null;

  const state = () => model.get("state");
  const update = (patch) => {
    model.set("state", { ...state(), ...patch });
    model.save_changes();
  };
  const activeQuery = () => (hover !== null ? hover : (state().query ?? null));

  const cell = Math.max(9, Math.min(34, Math.round(300 / Math.max(TQ, TK))));
  const maxQ = Math.max(...qTok.map((t) => textWidth(short(t, 10))));
  const maxK = Math.max(...kTok.map((t) => textWidth(short(t, 10))));
  const left = maxQ + 10;
  const top = Math.round(maxK * 0.87) + 12;
  const right = Math.round(maxK * 0.5) + 6;

  function heatmap(layer, head, showMask) {
    const width = left + TK * cell + right;
    const height = top + TQ * cell + 4;
    const root = s("svg", { class: "lv-heatmap", width, height, viewBox: `0 0 ${width} ${height}`,
      "data-layer": layer, "data-head": head, role: "img",
      "aria-label": `attention weights of layer ${layer}, head ${head}` });
    root.append(s("defs", {}, [s("pattern", { id: hatch, width: 6, height: 6, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)" }, [s("rect", { width: 6, height: 6, fill: BLOCKED }),
      s("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#bdbdbd", "stroke-width": 2 })])]));
    const grid = s("g", { transform: `translate(${left},${top})` });
    for (let q = 0; q < TQ; q++) {
      for (let k = 0; k < TK; k++) {
        const w = at(layer, head, q, k);
        const blocked = showMask && isBlocked(q, k);
        const rect = s("rect", { class: blocked ? "lv-cell lv-blocked" : "lv-cell", x: k * cell, y: q * cell,
          width: cell, height: cell, fill: blocked ? `url(#${hatch})` : blues(w), "data-q": q, "data-k": k,
          "data-w": fmt(w, 4) });
        rect.append(s("title", { text: `query ${q} “${qTok[q]}” → key ${k} “${kTok[k]}”: ` +
          (blocked ? "blocked by the mask" : fmt(w)) }));
        grid.append(rect);
        if (cell >= 28 && !blocked) {
          grid.append(s("text", { class: "lv-cell-text", x: k * cell + cell / 2, y: q * cell + cell / 2 + 3.5,
            "text-anchor": "middle", style: `fill:${ink(w)}`, text: fmt(w, 2).replace(/^0\./, ".") }));
        }
      }
    }
    grid.append(s("rect", { class: "lv-frame", x: 0, y: 0, width: TK * cell, height: TQ * cell, fill: "none" }));
    grid.append(s("rect", { class: "lv-row-highlight", x: -2, y: 0, width: TK * cell + 4, height: cell,
      fill: "none", stroke: HIGHLIGHT, "stroke-width": 2.5, visibility: "hidden", "pointer-events": "none" }));
    for (let q = 0; q < TQ; q++) {
      grid.append(s("text", { class: "lv-qlabel", x: -5, y: q * cell + cell / 2 + 4, "text-anchor": "end",
        "data-q": q, text: short(qTok[q], 10) }));
    }
    for (let k = 0; k < TK; k++) {
      const x = k * cell + cell / 2 + 3;
      grid.append(s("text", { class: "lv-klabel", x, y: -6, "text-anchor": "start", "data-k": k,
        transform: `rotate(-60 ${x} -6)`, text: short(kTok[k], 10) }));
    }
    root.append(grid);
    root.addEventListener("mouseover", (ev) => {
      const q = ev.target?.getAttribute?.("data-q");
      if (q !== null && q !== undefined && Number(q) !== hover) {
        hover = Number(q);
        refresh();
      }
    });
    root.addEventListener("mouseleave", () => {
      hover = null;
      refresh();
    });
    root.addEventListener("click", (ev) => {
      const q = ev.target?.getAttribute?.("data-q");
      if (q !== null && q !== undefined) pin(Number(q));
    });
    return root;
  }

  function pin(q) {
    hover = null;
    update({ query: state().query === q ? null : q });
  }

  function render() {
    const st = state();
    const heads = [...st.heads].sort((a, b) => a - b);
    el.replaceChildren();
    el.dataset.layer = st.layer;
    el.dataset.heads = heads.join(",");

    const layerSelect = h("select", { class: "lv-layer", "aria-label": "layer", disabled: L === 1,
      onchange: (ev) => update({ layer: Number(ev.target.value) }) },
    Array.from({ length: L }, (_, l) => h("option", { value: l, selected: l === st.layer, text: `layer ${l}` })));
    const headButtons = Array.from({ length: H }, (_, hd) => h("button", {
      class: heads.includes(hd) ? "lv-head lv-on" : "lv-head", type: "button", "data-head": hd,
      "aria-pressed": heads.includes(hd) ? "true" : "false", title: "show/hide this head",
      onclick: () => {
        const cur = new Set(state().heads);
        if (cur.has(hd)) {
          if (cur.size > 1) cur.delete(hd);
        } else cur.add(hd);
        update({ heads: [...cur].sort((a, b) => a - b) });
      },
    }, `head ${hd}`));
    const allButton = H > 1 ? h("button", { class: "lv-heads-all", type: "button", title: "show every head",
      onclick: () => update({ heads: Array.from({ length: H }, (_, i) => i) }) }, "all") : null;
    const hasMask = allowed !== null && allowed !== undefined;
    const maskBox = h("input", { type: "checkbox", class: "lv-mask-toggle", checked: hasMask && st.show_mask,
      disabled: !hasMask, onchange: (ev) => update({ show_mask: ev.target.checked }) });
    const maskLabel = hasMask ? `show the ${spec.mask_kind === "causal" ? "causal " : ""}mask` : "no mask";

    el.append(...[titleNode(spec),
      h("div", { class: "lv-controls" }, [
        h("label", { class: "lv-control" }, ["Layer ", layerSelect]),
        h("span", { class: "lv-control lv-heads" }, ["Heads ", ...headButtons, allButton]),
        h("label", { class: "lv-control" }, [maskBox, ` ${maskLabel}`]),
      ]),
      h("div", { class: "lv-queries" }, [h("span", { class: "lv-hint", text: "Query: " }),
        ...qTok.map((t, q) => h("button", { class: "lv-qtok", type: "button", "data-q": q,
          title: `query ${q} “${t}” (click to pin, click again to release)`,
          onclick: () => pin(q), onmouseenter: () => { hover = q; refresh(); },
          onmouseleave: () => { hover = null; refresh(); } }, [short(t, 12), h("sub", { text: q })]))]),
      h("div", { class: "lv-panels" }, heads.map((hd) => h("figure", { class: "lv-panel", "data-layer": st.layer,
        "data-head": hd }, [h("figcaption", { text: `layer ${st.layer} · head ${hd}` }),
        heatmap(st.layer, hd, hasMask && st.show_mask)]))),
      h("div", { class: "lv-rowview" }),
      h("div", { class: "lv-readout", "aria-live": "polite" }),
    ].filter(Boolean));
    refresh();
  }

  function refresh() {
    const st = state();
    const q = activeQuery();
    const heads = [...st.heads].sort((a, b) => a - b);
    el.dataset.query = q === null ? "" : String(q);
    el.dataset.pinned = st.query === null || st.query === undefined ? "" : String(st.query);
    for (const r of el.querySelectorAll(".lv-row-highlight")) {
      if (q === null) r.setAttribute("visibility", "hidden");
      else {
        r.setAttribute("visibility", "visible");
        r.setAttribute("y", String(q * cell));
      }
      r.setAttribute("data-q", q === null ? "" : String(q));
    }
    for (const node of el.querySelectorAll(".lv-qtok, .lv-qlabel")) {
      const n = Number(node.getAttribute("data-q"));
      node.classList.toggle("lv-active", n === q);
      node.classList.toggle("lv-pinned", n === st.query);
    }
    const rowview = el.querySelector(".lv-rowview");
    const readout = el.querySelector(".lv-readout");
    if (!rowview || !readout) return;
    rowview.replaceChildren();
    if (q === null) {
      rowview.append(h("div", { class: "lv-hint",
        text: "Hover over or click a query token (a row) to see which keys it attends to." }));
      readout.textContent = `layer ${st.layer} · head${heads.length > 1 ? "s" : ""} ${heads.join(", ")} · ` +
        "no query selected";
      return;
    }
    const showMask = st.show_mask && allowed !== null && allowed !== undefined;
    const lines = [];
    for (const hd of heads) {
      const row = Array.from({ length: TK }, (_, k) => at(st.layer, hd, q, k));
      const best = topIndices(row, 3);
      rowview.append(h("div", { class: "lv-rowline", "data-head": hd }, [
        h("span", { class: "lv-rowhead", text: `head ${hd}` }),
        ...row.map((w, k) => {
          const blocked = showMask && isBlocked(q, k);
          return h("span", { class: `lv-key${blocked ? " lv-blocked" : ""}${k === best[0] ? " lv-top" : ""}`,
            "data-k": k, "data-w": fmt(w, 4),
            style: blocked ? "" : `background:${blues(w)};color:${ink(w)}`,
            title: blocked ? "blocked by the mask" : `weight ${fmt(w)}` },
          [short(kTok[k], 12), h("b", { text: blocked ? "—" : fmt(w, 2) })]);
        }),
      ]));
      const tops = best.filter((k, i) => i === 0 || row[k] >= 5e-4).map((k) => `${k}:${kTok[k]} ${fmt(row[k])}`);
      lines.push(`layer ${st.layer} · head ${hd} · query ${q} “${qTok[q]}” → ${tops.join(", ")}`);
    }
    readout.textContent = lines.join("\n");
  }

  // keyboard: with the focus inside the view, ArrowUp/ArrowDown move the pinned query
  el.tabIndex = 0;
  el.addEventListener("keydown", (ev) => {
    if (ev.key !== "ArrowUp" && ev.key !== "ArrowDown") return;
    if (ev.target instanceof HTMLSelectElement || ev.target instanceof HTMLInputElement) return;
    const cur = state().query ?? -1;
    const next = Math.min(TQ - 1, Math.max(0, cur + (ev.key === "ArrowDown" ? 1 : -1)));
    ev.preventDefault();
    hover = null;
    update({ query: next });
  });

  // a new query only moves highlights; a new layer, set of heads or mask setting redraws the panels
  const layoutKey = () => {
    const st = state();
    return JSON.stringify([st.layer, [...st.heads].sort((a, b) => a - b), !!st.show_mask]);
  };
  let drawn = layoutKey();
  render();
  const onState = () => {
    const key = layoutKey();
    if (key !== drawn) {
      drawn = key;
      render();
    } else refresh();
  };
  model.on("change:state", onState);
  return () => model.off("change:state", onState);
}

// ---------------------------------------------------------------------------------------------- softmax
function renderSoftmax({ model, el }) {
  const spec = model.get("spec");
  const rows = spec.rows;
  const labels = spec.labels.map(shown);
  const choices = spec.dk_choices;
  const state = () => model.get("state");
  const update = (patch) => {
    model.set("state", { ...state(), ...patch });
    model.save_changes();
  };
  const logMin = Math.log10(spec.t_min);
  const logMax = Math.log10(spec.t_max);

  const rowSelect = rows.length > 1 ? h("select", { class: "lv-row-select", "aria-label": "row",
    onchange: (ev) => update({ row: Number(ev.target.value) }) },
  spec.row_labels.map((name, i) => h("option", { value: i, text: name }))) : null;
  const temp = h("input", { type: "range", class: "lv-temp", min: logMin, max: logMax, step: 0.01,
    "aria-label": "log10 temperature",
    oninput: (ev) => update({ temperature: Number((10 ** Number(ev.target.value)).toPrecision(4)) }) });
  const tempValue = h("span", { class: "lv-temp-value" });
  const dk = h("input", { type: "range", class: "lv-dk", min: 0, max: choices.length - 1, step: 1,
    "aria-label": "d_k", oninput: (ev) => update({ d_k: choices[Number(ev.target.value)] }) });
  const dkValue = h("span", { class: "lv-dk-value" });
  const scale = h("input", { type: "checkbox", class: "lv-scale",
    onchange: (ev) => update({ scale: ev.target.checked }) });
  const reset = h("button", { type: "button", class: "lv-reset", title: "temperature 1",
    onclick: () => update({ temperature: 1 }) }, "τ = 1");
  const bars = h("div", { class: "lv-bars-box" });
  const curve = h("div", { class: "lv-curve-box" });
  const logits = h("div", { class: "lv-logits" });
  const readout = h("div", { class: "lv-readout", "aria-live": "polite" });
  const badge = h("div", { class: "lv-badge lv-saturated", text:
    "saturated: one key takes (almost) all the weight, and the gradient through the softmax (nearly) vanishes" });

  el.replaceChildren(...[titleNode(spec),
    h("div", { class: "lv-controls" }, [
      rowSelect ? h("label", { class: "lv-control" }, ["Row ", rowSelect]) : null,
      h("label", { class: "lv-control" }, ["Temperature τ ", temp, " ", tempValue, " ", reset]),
      h("label", { class: "lv-control" }, ["d_k ", dk, " ", dkValue]),
      h("label", { class: "lv-control" }, [scale, " divide by √d_k"]),
    ].filter(Boolean)),
    h("div", { class: "lv-softmax-body" }, [bars, curve]), logits, readout, badge].filter(Boolean));

  function probs(st, temperature) {
    const row = rows[st.row];
    const div = temperature * (st.scale ? Math.sqrt(st.d_k) : 1);
    return softmax(row.map((v) => v / div));
  }

  function drawBars(p, sat) {
    const n = p.length;
    const bw = Math.max(14, Math.min(48, Math.floor(420 / n)));
    const labelH = Math.min(70, Math.max(...labels.map((t) => textWidth(short(t, 10), 10))) * 0.75 + 14);
    const width = n * bw + 40;
    const height = 170 + labelH;
    const plotH = 150;
    const svg = s("svg", { class: "lv-bars", width, height, viewBox: `0 0 ${width} ${height}` });
    const g = s("g", { transform: "translate(30,12)" });
    g.append(s("line", { x1: 0, x2: n * bw, y1: plotH, y2: plotH, stroke: "#999" }));
    g.append(s("line", { x1: 0, x2: 0, y1: 0, y2: plotH, stroke: "#999" }));
    for (const v of [0, 0.5, 1]) {
      g.append(s("text", { class: "lv-axis", x: -4, y: plotH - v * plotH + 3, "text-anchor": "end", text: v }));
    }
    const uy = plotH - plotH / n;
    g.append(s("line", { class: "lv-uniform", x1: 0, x2: n * bw, y1: uy, y2: uy, stroke: "#888",
      "stroke-dasharray": "4 3" }));
    p.forEach((v, i) => {
      const bh = v * plotH;
      const bar = s("rect", { class: "lv-bar", x: i * bw + 2, y: plotH - bh, width: bw - 4, height: Math.max(bh, 0),
        fill: v >= spec.saturated ? blues(0.95) : blues(0.7), "data-i": i, "data-p": fmt(v, 4) });
      bar.append(s("title", { text: `${labels[i]}: ${fmt(v, 4)}` }));
      g.append(bar);
      if (n <= 24) {
        g.append(s("text", { class: "lv-bar-value", x: i * bw + bw / 2, y: plotH - bh - 3, "text-anchor": "middle",
          text: fmt(v, 2) }));
      }
      const x = i * bw + bw / 2 + 3;
      g.append(s("text", { class: "lv-klabel", x, y: plotH + 10, "text-anchor": "end",
        transform: `rotate(-40 ${x} ${plotH + 10})`, text: short(labels[i], 10) }));
    });
    svg.append(g);
    svg.classList.toggle("lv-is-saturated", sat);
    bars.replaceChildren(svg);
  }

  function drawCurve(st, H) {
    const n = rows[st.row].length;
    const width = 260;
    const height = 170;
    const pw = 200;
    const ph = 120;
    const maxH = Math.log(n);
    const xOf = (lt) => ((lt - logMin) / (logMax - logMin)) * pw;
    const yOf = (v) => ph - (v / maxH) * ph;
    const pts = [];
    const raw = [];
    for (let i = 0; i <= 120; i++) {
      const lt = logMin + ((logMax - logMin) * i) / 120;
      pts.push([xOf(lt), yOf(entropy(probs(st, 10 ** lt)))]);
      if (st.scale && st.d_k > 1) raw.push([xOf(lt), yOf(entropy(probs({ ...st, scale: false }, 10 ** lt)))]);
    }
    const svg = s("svg", { class: "lv-entropy-curve", width, height, viewBox: `0 0 ${width} ${height}` });
    const g = s("g", { transform: "translate(44,10)" });
    g.append(s("rect", { x: 0, y: 0, width: pw, height: ph, fill: "none", stroke: "#bbb" }));
    g.append(s("line", { x1: 0, x2: pw, y1: 0, y2: 0, stroke: "#888", "stroke-dasharray": "4 3" }));
    if (raw.length) g.append(s("path", { d: linePath(raw), fill: "none", stroke: "#999", "stroke-dasharray": "2 3" }));
    g.append(s("path", { class: "lv-curve", d: linePath(pts), fill: "none", stroke: blues(0.8), "stroke-width": 2 }));
    g.append(s("circle", { class: "lv-marker", cx: xOf(Math.log10(st.temperature)), cy: yOf(H), r: 5,
      fill: HIGHLIGHT }));
    g.append(s("text", { class: "lv-axis", x: -4, y: 4, "text-anchor": "end", text: fmt(maxH, 2) }));
    g.append(s("text", { class: "lv-axis", x: -4, y: ph + 3, "text-anchor": "end", text: "0" }));
    for (const lt of [-2, -1, 0, 1, 2]) {
      if (lt < logMin || lt > logMax) continue;
      g.append(s("text", { class: "lv-axis", x: xOf(lt), y: ph + 13, "text-anchor": "middle", text: 10 ** lt }));
    }
    g.append(s("text", { class: "lv-axis", x: pw / 2, y: ph + 27, "text-anchor": "middle",
      text: "temperature τ (log scale)" }));
    g.append(s("text", { class: "lv-axis", x: -32, y: ph / 2, "text-anchor": "middle",
      transform: `rotate(-90 -32 ${ph / 2})`, text: "entropy (nats)" }));
    svg.append(g);
    curve.replaceChildren(svg);
  }

  function refresh() {
    const st = state();
    if (rowSelect) rowSelect.value = String(st.row);
    temp.value = String(Math.log10(st.temperature));
    tempValue.textContent = fmt(st.temperature, st.temperature < 0.1 ? 3 : 2);
    dk.value = String(Math.max(0, choices.indexOf(st.d_k)));
    dkValue.textContent = `${st.d_k} (√d_k = ${fmt(Math.sqrt(st.d_k))})`;
    scale.checked = !!st.scale;
    const row = rows[st.row];
    const div = st.temperature * (st.scale ? Math.sqrt(st.d_k) : 1);
    const p = probs(st, st.temperature);
    const H = entropy(p);
    const top = Math.max(...p);
    const sat = top >= spec.saturated;
    drawBars(p, sat);
    drawCurve(st, H);
    logits.textContent = `scores: ${row.map((v) => fmt(v, 2)).join("  ")}\n` +
      `logits = scores / ${st.scale ? "(τ·√d_k)" : "τ"} = scores / ${fmt(div)}: ` +
      `${row.map((v) => fmt(v / div, 2)).join("  ")}`;
    readout.textContent = `entropy ${fmt(H)} nats (max log ${p.length} = ${fmt(Math.log(p.length))}) · ` +
      `top weight ${fmt(top)} · effective keys e^H = ${fmt(Math.exp(H), 2)} · ` +
      `‖diag(p) − ppᵀ‖ = ${fmt(jacobianNorm(p))}`;
    badge.hidden = !sat;
    el.dataset.entropy = fmt(H, 4);
    el.dataset.saturated = sat ? "true" : "false";
  }

  refresh();
  model.on("change:state", refresh);
  return () => model.off("change:state", refresh);
}

// ---------------------------------------------------------------------------------------------- positional
function renderPositional({ model, el }) {
  const spec = model.get("spec");
  const PE = floats(model.get("values"));
  const N = spec.max_len;
  const D = spec.d_model;
  const pe = (p, d) => PE[p * D + d];
  const state = () => model.get("state");
  const update = (patch) => {
    model.set("state", { ...state(), ...patch });
    model.save_changes();
  };
  const dot = (a, b) => {
    let total = 0;
    for (let d = 0; d < D; d++) total += pe(a, d) * pe(b, d);
    return total;
  };

  const dimButtons = Array.from({ length: D }, (_, d) => h("button", { class: "lv-dim", type: "button",
    "data-dim": d, title: `dimension ${d}: ${d % 2 === 0 ? "sin" : "cos"}, pair ${Math.floor(d / 2)}`,
    onclick: () => {
      const cur = new Set(state().dims);
      if (cur.has(d)) {
        if (cur.size > 1) cur.delete(d);
      } else if (cur.size < spec.max_dims) cur.add(d);
      update({ dims: [...cur].sort((a, b) => a - b) });
    } }, String(d)));
  const ref = h("input", { type: "range", class: "lv-ref", min: 0, max: N - 1, step: 1, "aria-label": "reference",
    oninput: (ev) => update({ reference: Number(ev.target.value) }) });
  const refValue = h("span", { class: "lv-ref-value" });
  const pos = h("input", { type: "range", class: "lv-pos", min: 0, max: N - 1, step: 1, "aria-label": "position",
    oninput: (ev) => update({ position: Number(ev.target.value) }) });
  const posValue = h("span", { class: "lv-pos-value" });
  const waves = h("div", { class: "lv-waves-box" });
  const dots = h("div", { class: "lv-dots-box" });
  const readout = h("div", { class: "lv-readout", "aria-live": "polite" });

  el.replaceChildren(...[titleNode(spec),
    h("div", { class: "lv-controls" }, [
      h("span", { class: "lv-control lv-dims" }, [
        h("span", { class: "lv-hint", text: `Dimensions (even = sin, odd = cos; up to ${spec.max_dims}): ` }),
        ...dimButtons]),
    ]),
    h("div", { class: "lv-controls" }, [
      h("label", { class: "lv-control" }, ["Reference p ", ref, " ", refValue]),
      h("label", { class: "lv-control" }, ["Position q ", pos, " ", posValue]),
    ]),
    h("div", { class: "lv-pos-body" }, [waves, dots]), readout].filter(Boolean));

  function axes(g, pw, ph, xs, ys, xlabel, ylabel) {
    g.append(s("rect", { x: 0, y: 0, width: pw, height: ph, fill: "none", stroke: "#bbb" }));
    for (const [x, label] of xs) {
      g.append(s("text", { class: "lv-axis", x, y: ph + 13, "text-anchor": "middle", text: label }));
    }
    for (const [y, label] of ys) {
      g.append(s("text", { class: "lv-axis", x: -4, y: y + 3, "text-anchor": "end", text: label }));
    }
    g.append(s("text", { class: "lv-axis", x: pw / 2, y: ph + 28, "text-anchor": "middle", text: xlabel }));
    g.append(s("text", { class: "lv-axis", x: -34, y: ph / 2, "text-anchor": "middle",
      transform: `rotate(-90 -34 ${ph / 2})`, text: ylabel }));
  }

  function refresh() {
    const st = state();
    const dims = [...st.dims].sort((a, b) => a - b);
    for (const b of dimButtons) {
      const d = Number(b.dataset.dim);
      const i = dims.indexOf(d);
      b.classList.toggle("lv-on", i >= 0);
      b.setAttribute("aria-pressed", i >= 0 ? "true" : "false");
      b.style.borderColor = i >= 0 ? PALETTE[i] : "";
      b.style.boxShadow = i >= 0 ? `inset 0 -3px 0 ${PALETTE[i]}` : "";
    }
    ref.value = String(st.reference);
    pos.value = String(st.position);
    refValue.textContent = String(st.reference);
    posValue.textContent = String(st.position);
    el.dataset.dims = dims.join(",");

    // waves
    const pw = 380;
    const ph = 150;
    const xOf = (p) => (N === 1 ? pw / 2 : (p / (N - 1)) * pw);
    const yOf = (v) => ph / 2 - v * (ph / 2 - 6);
    const svgW = s("svg", { class: "lv-waves", width: pw + 60, height: ph + 40, viewBox: `0 0 ${pw + 60} ${ph + 40}` });
    const g = s("g", { transform: "translate(46,6)" });
    const ticks = [0, Math.round((N - 1) / 2), N - 1].map((p) => [xOf(p), p]);
    axes(g, pw, ph, ticks, [[yOf(1), "1"], [yOf(0), "0"], [yOf(-1), "−1"]], "position", "PE value");
    g.append(s("line", { class: "lv-ref-line", x1: xOf(st.reference), x2: xOf(st.reference), y1: 0, y2: ph,
      stroke: "#333" }));
    g.append(s("line", { class: "lv-pos-line", x1: xOf(st.position), x2: xOf(st.position), y1: 0, y2: ph,
      stroke: HIGHLIGHT, "stroke-dasharray": "5 3" }));
    dims.forEach((d, i) => {
      const pts = Array.from({ length: N }, (_, p) => [xOf(p), yOf(pe(p, d))]);
      const path = s("path", { class: "lv-wave", d: linePath(pts), fill: "none", stroke: PALETTE[i],
        "stroke-width": 1.8, "data-dim": d });
      path.append(s("title", { text: `dimension ${d} (${d % 2 === 0 ? "sin" : "cos"})` }));
      g.append(path);
      g.append(s("circle", { cx: xOf(st.position), cy: yOf(pe(st.position, d)), r: 3.5, fill: PALETTE[i] }));
    });
    svgW.append(g);
    waves.replaceChildren(svgW);

    // dot product against distance
    const qw = 300;
    const xd = (k) => ((k + (N - 1)) / Math.max(2 * (N - 1), 1)) * qw;
    const half = D / 2;
    const yd = (v) => ph / 2 - (v / half) * (ph / 2 - 6);
    const svgD = s("svg", { class: "lv-dots", width: qw + 60, height: ph + 40, viewBox: `0 0 ${qw + 60} ${ph + 40}` });
    const g2 = s("g", { transform: "translate(46,6)" });
    axes(g2, qw, ph, [[xd(-(N - 1)), -(N - 1)], [xd(0), 0], [xd(N - 1), N - 1]],
      [[yd(half), fmt(half, 0)], [yd(0), "0"], [yd(-half), `−${fmt(half, 0)}`]],
      `distance q − p (p = ${st.reference})`, "PE[p] · PE[q]");
    g2.append(s("line", { x1: 0, x2: qw, y1: yd(0), y2: yd(0), stroke: "#ddd" }));
    const values = Array.from({ length: N }, (_, q) => dot(st.reference, q));
    const pts = values.map((v, q) => [xd(q - st.reference), yd(v)]);
    g2.append(s("path", { class: "lv-dot-curve", d: linePath(pts), fill: "none", stroke: blues(0.8),
      "stroke-width": 1.8 }));
    const v = values[st.position];
    g2.append(s("circle", { class: "lv-marker", cx: xd(st.position - st.reference), cy: yd(v), r: 5,
      fill: HIGHLIGHT, "data-value": fmt(v) }));
    svgD.append(g2);
    dots.replaceChildren(svgD);

    const parts = dims.slice(0, 4).map((d) => `PE[${st.reference},${d}] = ${fmt(pe(st.reference, d))} / ` +
      `PE[${st.position},${d}] = ${fmt(pe(st.position, d))}`);
    readout.textContent = `PE[${st.reference}]·PE[${st.position}] = ${fmt(v)} at distance ` +
      `${st.position - st.reference} (PE[p]·PE[p] = d_model/2 = ${fmt(half)})\n${parts.join(", ")}`;
  }

  refresh();
  model.on("change:state", refresh);
  return () => model.off("change:state", refresh);
}

// ---------------------------------------------------------------------------------------------- entry point
const RENDERERS = { attention: renderAttention, softmax: renderSoftmax, positional: renderPositional };

export default {
  render({ model, el }) {
    const kind = model.get("kind");
    el.classList.add("lv-root", `lv-${kind}`);
    // arrows pressed on the focused view itself (ArrowUp/Down move the attention explorer's query) are ours too
    el.setAttribute("data-lm-suppress-shortcuts", "true");
    const renderer = RENDERERS[kind];
    if (!renderer) {
      el.textContent = `lessons_lib.viz: unknown view kind ${JSON.stringify(kind)}`;
      return undefined;
    }
    try {
      return renderer({ model, el });
    } catch (err) {
      el.replaceChildren(h("pre", { class: "lv-error", text: `lessons_lib.viz could not draw this view: ${err}` }));
      console.error(err);
      return undefined;
    }
  },
};
