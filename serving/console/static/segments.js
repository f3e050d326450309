// The segment editor's live preview: the definition is sent (debounced) to the console's
// /segments/preview, which validates and evaluates it exactly as POST /v1/segments/preview does.
// A problem is shown under the text area with its JSON path, the offending line with carets
// under the offending part, and a button that selects that part in the text area.
"use strict";

(function () {
  const DEBOUNCE_MS = 400;

  // Character spans [start, end) of every value of a JSON text by the JSON path the server
  // names them with (definition.children[1].window.seconds); members span "key": value.
  function spansOf(text) {
    const spans = new Map();
    let i = 0;
    const fail = () => { throw new Error("not JSON at " + i); };
    const ws = () => { while (i < text.length && " \t\r\n".includes(text[i])) i++; };
    const expect = (c) => { ws(); if (text[i] !== c) fail(); i++; };
    function string() {
      const start = i;
      if (text[i] !== '"') fail();
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      if (i >= text.length) fail();
      i++;
      return JSON.parse(text.slice(start, i));
    }
    function value(path) {
      ws();
      const start = i;
      if (text[i] === "{") {
        i++; ws();
        if (text[i] === "}") i++;
        else for (;;) {
          ws();
          const keyStart = i;
          const key = string();
          expect(":");
          const end = value(path + "." + key);
          spans.set(path + "." + key, [keyStart, end]);
          ws();
          if (text[i] === ",") { i++; continue; }
          expect("}");
          break;
        }
      } else if (text[i] === "[") {
        i++; ws();
        if (text[i] === "]") i++;
        else for (let n = 0; ; n++) {
          value(path + "[" + n + "]");
          ws();
          if (text[i] === ",") { i++; continue; }
          expect("]");
          break;
        }
      } else if (text[i] === '"') {
        string();
      } else {
        while (i < text.length && !",]} \t\r\n".includes(text[i])) i++;
        if (i === start) fail();
      }
      spans.set(path, [start, i]);
      return i;
    }
    try { value("definition"); } catch (e) { /* a partial map is still useful */ }
    return spans;
  }

  // The span of the named part, or of its nearest existing parent (a missing field).
  function spanOf(text, field, pos) {
    if (Number.isInteger(pos)) return [pos, Math.min(pos + 1, text.length)];
    const spans = spansOf(text);
    let path = field;
    while (path) {
      if (spans.has(path)) return spans.get(path);
      const shorter = path.replace(/(\.[^.[\]]*|\[\d+\])$/, "");
      if (shorter === path) break;
      path = shorter;
    }
    return null;
  }

  function init() {
    const area = document.getElementById("definition");
    const box = document.getElementById("definition-problem");
    if (!area || !box) return;
    const count = document.getElementById("preview-count");
    const sample = document.getElementById("preview-sample");
    const state = document.getElementById("preview-state");
    const base = document.body.dataset.base || "";
    let timer = null;
    let asked = 0;

    function showProblem(problem, select) {
      box.replaceChildren();
      if (!problem) {
        area.removeAttribute("aria-invalid");
        delete box.dataset.field;
        return;
      }
      area.setAttribute("aria-invalid", "true");
      box.dataset.field = problem.field || "";
      const path = document.createElement("span");
      path.className = "path";
      path.textContent = problem.field || "definition";
      const what = document.createElement("span");
      what.className = "what";
      what.textContent = problem.problem;
      box.append(path, ": ", what);
      const text = area.value;
      const span = spanOf(text, problem.field || "", problem.pos);
      if (!span) return;
      const lineStart = text.lastIndexOf("\n", span[0] - 1) + 1;
      let lineEnd = text.indexOf("\n", span[0]);
      if (lineEnd < 0) lineEnd = text.length;
      const line = text.slice(0, span[0]).split("\n").length;
      const excerpt = document.createElement("pre");
      excerpt.className = "excerpt";
      const width = Math.max(1, Math.min(span[1], lineEnd) - span[0]);
      excerpt.textContent = `${line} | ${text.slice(lineStart, lineEnd)}\n` +
        " ".repeat(String(line).length + 3 + span[0] - lineStart) + "^".repeat(width);
      const show = document.createElement("button");
      show.type = "button";
      show.className = "secondary show-problem";
      show.textContent = "Select it in the definition";
      show.addEventListener("click", () => { area.focus(); area.setSelectionRange(span[0], span[1]); });
      box.append(excerpt, show);
      if (select) { area.focus(); area.setSelectionRange(span[0], span[1]); }
    }

    function showPreview(answer) {
      count.textContent = answer.count.toLocaleString("en");
      sample.replaceChildren(...answer.sample.map((user) => {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = `${base}/customers/${encodeURIComponent(user)}`;
        a.textContent = user;
        li.append(a);
        return li;
      }));
      if (!answer.sample.length) sample.replaceChildren(document.createElement("li"));
      if (!answer.sample.length) sample.firstChild.textContent = "No customer matches now.";
    }

    async function run() {
      const mine = ++asked;
      state.textContent = "Checking…";
      let reply;
      try {
        reply = await window.consoleFetch("/segments/preview", { definition: area.value });
      } catch (e) {
        if (mine === asked) state.textContent = "The preview could not be fetched; retrying on the next change.";
        return;
      }
      if (mine !== asked) return; // a newer text is being checked
      if (reply.status === 200) {
        showProblem(null);
        showPreview(reply.data);
        state.textContent = "Matches now (nothing is saved until you save):";
      } else {
        const detail = reply.data && reply.data.detail;
        const problem = Array.isArray(detail) ? detail[0] : { field: "", problem: String(detail) };
        showProblem(problem, false);
        count.textContent = "-";
        sample.replaceChildren();
        state.textContent = "The definition is not valid yet:";
      }
    }

    area.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(run, DEBOUNCE_MS);
    });
    // A problem the server found on save: point at it, then preview what is there.
    if (box.dataset.field !== undefined) {
      const pos = box.dataset.pos === undefined ? undefined : Number(box.dataset.pos);
      const what = box.querySelector(".what");
      showProblem({ field: box.dataset.field, problem: what ? what.textContent : "", pos }, true);
    }
    if (area.value.trim()) run();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
