// Charts of the console pages. Each <canvas data-chart="ID"> draws the Chart.js spec in the
// JSON block <script type="application/json" id="ID"> (data, not code: the CSP allows no inline
// script). Series differ by line dash and point shape as well as colour (readable without it).
"use strict";

const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
const SHAPES = ["circle", "rect", "triangle", "crossRot", "star", "rectRot", "cross"];
const DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3], [1, 3], [10, 4], [4, 4]];

function styleDatasets(spec) {
  (spec.data.datasets || []).forEach((set, i) => {
    const colour = set.color || PALETTE[i % PALETTE.length];
    set.borderColor = set.borderColor || colour;
    if (spec.type === "bar") {
      set.backgroundColor = set.backgroundColor || colour + "cc";
      set.borderWidth = set.borderWidth ?? 1;
    } else {
      set.backgroundColor = set.backgroundColor || colour + "55";
      set.pointStyle = set.pointStyle || SHAPES[i % SHAPES.length];
      if (spec.type === "line") set.borderDash = set.borderDash || DASHES[i % DASHES.length];
    }
  });
  return spec;
}

function drawCharts(root) {
  if (typeof Chart === "undefined") return;
  root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
    const block = document.getElementById(canvas.dataset.chart);
    if (!block || canvas.dataset.rendered) return;
    const spec = styleDatasets(JSON.parse(block.textContent));
    spec.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false },
                                 spec.options || {});
    const chart = new Chart(canvas, spec);
    canvas.dataset.rendered = String(chart.data.datasets.reduce((n, s) => n + s.data.length, 0));
  });
}

// Buttons that ask before they act: <button data-confirm="text">.
function confirmButtons(root) {
  root.querySelectorAll("[data-confirm]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });
}

// A fetch to the console with the session's CSRF token; JSON either way.
async function consoleFetch(path, body) {
  const response = await fetch(document.body.dataset.base + path, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      "X-CSRF-Token": document.body.dataset.csrf || "",
      "X-Requested-With": "fetch",
    },
    body: JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = { detail: response.statusText }; }
  return { status: response.status, data };
}
window.consoleFetch = consoleFetch;

document.addEventListener("DOMContentLoaded", () => {
  drawCharts(document);
  confirmButtons(document);
});
