"use strict";
// Renders /api/openapi.json: every operation by tag, with parameters, body, answers and
// schemas. Only DOM text nodes are made from the document (never HTML), so nothing in it runs.
(function () {
  const main = document.getElementById("main");
  const toc = document.getElementById("toc");
  const METHODS = ["get", "post", "put", "patch", "delete"];
  let doc = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }

  // Inline `code` spans of a description become <code>; the rest stays text.
  function prose(text) {
    const p = el("p");
    String(text || "").split(/(`[^`]*`)/).forEach((part) => {
      if (part.startsWith("`") && part.endsWith("`") && part.length > 1) p.append(el("code", {}, part.slice(1, -1)));
      else if (part) p.append(document.createTextNode(part));
    });
    return p;
  }

  function refName(ref) { return ref.split("/").pop(); }

  function schemaId(name) { return "schema-" + name.replace(/[^A-Za-z0-9_-]/g, "_"); }

  // A one-line type of a schema: `string`, `integer (int64)`, `[Group]`, `Group | null`.
  function typeOf(s) {
    if (!s) return document.createTextNode("any");
    if (s.$ref) {
      const name = refName(s.$ref);
      return el("a", { href: "#" + schemaId(name) }, name);
    }
    const variants = s.oneOf || s.anyOf;
    if (variants) {
      const span = el("span");
      variants.forEach((v, i) => { if (i) span.append(" | "); span.append(typeOf(v)); });
      return span;
    }
    let type = s.type;
    if (Array.isArray(type)) type = type.join(" | ");
    if (s.type === "array" || (Array.isArray(s.type) && s.type.includes("array"))) {
      const span = el("span", {}, "[");
      span.append(typeOf(s.items), "]");
      if (Array.isArray(s.type) && s.type.includes("null")) span.append(" | null");
      return span;
    }
    if (s.type === "object" && s.additionalProperties && !s.properties) {
      const span = el("span", {}, "{string: ");
      span.append(typeOf(s.additionalProperties), "}");
      return span;
    }
    const words = [type || "any"];
    if (s.format) words.push("(" + s.format + ")");
    return document.createTextNode(words.join(" "));
  }

  function limits(s) {
    if (!s || s.$ref) return "";
    const out = [];
    if (s.minimum !== undefined) out.push("≥ " + s.minimum);
    if (s.maximum !== undefined) out.push("≤ " + s.maximum);
    if (s.minLength !== undefined) out.push("length ≥ " + s.minLength);
    if (s.maxLength !== undefined) out.push("length ≤ " + s.maxLength);
    if (s.maxItems !== undefined) out.push("≤ " + s.maxItems + " items");
    if (s.pattern) out.push("pattern " + s.pattern);
    if (s.enum) out.push("one of " + s.enum.join(", "));
    return out.join("; ");
  }

  // The fields of an object schema as a table (nested objects are linked by name).
  function fields(s) {
    if (!s || s.$ref || !s.properties) {
      const p = el("p", {}, "Type: ");
      p.append(typeOf(s));
      return p;
    }
    const required = new Set(s.required || []);
    const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "field"), el("th", { scope: "col" }, "type"), el("th", { scope: "col" }, "description"))));
    const body = el("tbody");
    for (const [name, prop] of Object.entries(s.properties)) {
      const desc = el("td", {}, prop.description || "");
      const lim = limits(prop);
      if (lim) desc.append(el("div", { class: "muted" }, lim));
      body.append(el("tr", {}, el("td", {}, el("code", {}, name), required.has(name) ? "" : el("span", { class: "muted" }, " optional")), el("td", {}, typeOf(prop)), desc));
    }
    table.append(body);
    if (s.additionalProperties === false) return el("div", {}, table, el("p", { class: "muted" }, "No other fields allowed."));
    return table;
  }

  function content(c) {
    const div = el("div");
    for (const [type, media] of Object.entries(c || {})) {
      div.append(el("p", { class: "muted" }, type));
      if (media.schema) div.append(fields(media.schema));
      if (media.example !== undefined) div.append(el("pre", {}, JSON.stringify(media.example, null, 2)));
    }
    return div;
  }

  function operation(path, method, op) {
    const id = op.operationId || method + path;
    const summary = el("summary", {}, el("span", { class: "method " + method }, method.toUpperCase()), " ", el("code", {}, path), " ", op.summary || "");
    if (op.security && op.security.some((r) => Object.keys(r).length)) summary.append(el("span", { class: "lock" }, " (token)"));
    const details = el("details", { class: "op", id: "op-" + id }, summary);
    details.dataset.search = (method + " " + path + " " + (op.summary || "") + " " + (op.description || "")).toLowerCase();
    if (op.description) details.append(prose(op.description));
    const params = op.parameters || [];
    if (params.length) {
      details.append(el("h4", {}, "Parameters"));
      const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "name"), el("th", { scope: "col" }, "in"), el("th", { scope: "col" }, "type"), el("th", { scope: "col" }, "description"))));
      const body = el("tbody");
      for (const p of params) {
        const desc = el("td", {}, p.description || "");
        const lim = limits(p.schema);
        if (lim) desc.append(el("div", { class: "muted" }, lim));
        body.append(el("tr", {}, el("td", {}, el("code", {}, p.name), p.required ? "" : el("span", { class: "muted" }, " optional")), el("td", {}, p.in), el("td", {}, typeOf(p.schema)), desc));
      }
      table.append(body);
      details.append(table);
    }
    if (op.requestBody) {
      details.append(el("h4", {}, "Request body" + (op.requestBody.required ? "" : " (optional)")));
      details.append(content(op.requestBody.content));
    }
    details.append(el("h4", {}, "Answers"));
    const table = el("table", {}, el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "status"), el("th", { scope: "col" }, "meaning"), el("th", { scope: "col" }, "body"))));
    const body = el("tbody");
    for (const [status, r] of Object.entries(op.responses || {}).sort()) {
      const cell = el("td");
      for (const [type, media] of Object.entries(r.content || {})) {
        cell.append(typeOf(media.schema), el("span", { class: "muted" }, " " + type));
      }
      body.append(el("tr", {}, el("td", {}, el("code", {}, status)), el("td", {}, r.description || ""), cell));
    }
    table.append(body);
    details.append(table);
    return details;
  }

  function render() {
    document.getElementById("title").textContent = doc.info.title;
    document.title = doc.info.title;
    document.getElementById("version").textContent = "OpenAPI " + doc.openapi + " · version " + doc.info.version;
    main.replaceChildren();
    if (doc.info.description) main.append(prose(doc.info.description));
    const schemes = (doc.components && doc.components.securitySchemes) || {};
    for (const [name, s] of Object.entries(schemes)) {
      const p = prose("Authentication (" + name + "): " + (s.description || s.scheme || s.type));
      main.append(p);
    }
    const tags = (doc.tags || []).map((t) => t.name);
    const byTag = new Map(tags.map((t) => [t, []]));
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const m of METHODS) {
        if (!item[m]) continue;
        const tag = (item[m].tags && item[m].tags[0]) || "other";
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push([path, m, item[m]]);
      }
    }
    const list = el("ul");
    for (const [tag, ops] of byTag) {
      if (!ops.length) continue;
      const info = (doc.tags || []).find((t) => t.name === tag);
      const section = el("section", { "aria-labelledby": "tag-" + tag }, el("h2", { id: "tag-" + tag }, tag));
      if (info && info.description) section.append(prose(info.description));
      for (const [path, m, op] of ops) {
        const node = operation(path, m, op);
        section.append(node);
        list.append(el("li", {}, el("a", { href: "#" + node.id }, m.toUpperCase() + " " + path)));
      }
      main.append(section);
    }
    toc.replaceChildren(list);
    const schemas = (doc.components && doc.components.schemas) || {};
    const section = el("section", { "aria-labelledby": "schemas" }, el("h2", { id: "schemas" }, "Schemas"));
    for (const [name, s] of Object.entries(schemas).sort()) {
      const block = el("div", { id: schemaId(name) }, el("h3", {}, name));
      if (s.description) block.append(prose(s.description));
      block.append(fields(s));
      if (s.example !== undefined) block.append(el("pre", {}, JSON.stringify(s.example, null, 2)));
      section.append(block);
    }
    main.append(section);
    openFromHash();
  }

  function openFromHash() {
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === "DETAILS") target.open = true;
  }

  document.getElementById("filter").addEventListener("input", (e) => {
    const words = e.target.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const op of document.querySelectorAll("details.op")) {
      op.classList.toggle("hidden", !words.every((w) => op.dataset.search.includes(w)));
    }
  });
  window.addEventListener("hashchange", openFromHash);

  fetch("openapi.json", { headers: { Accept: "application/json" } })
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then((d) => { doc = d; render(); })
    .catch((e) => { document.getElementById("status").textContent = "Could not load openapi.json: " + e.message; });
})();
