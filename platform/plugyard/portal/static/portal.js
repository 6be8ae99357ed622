// Plugyard portal: small progressive enhancements. Every form works without this file.
"use strict";

// Ask before destructive actions (forms marked data-confirm).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// Uploads: drag and drop a folder or files; keep each file's relative path in a `paths` field.
function setupUpload(form) {
  const zone = form.querySelector("[data-dropzone]");
  const list = form.querySelector("[data-filelist]");
  const inputs = Array.from(form.querySelectorAll('input[type="file"]'));
  let dropped = null; // [{file, path}]

  function show(entries) {
    list.replaceChildren(...entries.map((e) => {
      const li = document.createElement("li");
      li.textContent = `${e.path} (${e.file.size} bytes)`;
      return li;
    }));
  }
  function picked() {
    return inputs.flatMap((input) => Array.from(input.files || []).map((file) => ({
      file, path: file.webkitRelativePath || file.name,
    })));
  }
  inputs.forEach((input) => input.addEventListener("change", () => { dropped = null; show(picked()); }));

  async function walk(entry, prefix, out) {
    if (out.length > 500) return;
    if (entry.isFile) {
      const file = await new Promise((ok, ko) => entry.file(ok, ko));
      out.push({ file, path: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (let i = 0; i < 100; i++) {
        const batch = await new Promise((ok, ko) => reader.readEntries(ok, ko));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
      }
    }
  }
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (e) => {
    e.preventDefault(); zone.classList.add("over");
  }));
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const out = [];
    for (const item of Array.from(e.dataTransfer.items || [])) {
      const entry = item.webkitGetAsEntry && item.webkitGetAsEntry();
      if (entry) await walk(entry, "", out);
    }
    dropped = out;
    inputs.forEach((input) => { input.value = ""; });
    show(out);
  });
  form.addEventListener("submit", (e) => {
    const entries = dropped || picked();
    if (!entries.some((x) => x.file.webkitRelativePath) && !dropped) return; // plain files: no help needed
    e.preventDefault();
    const data = new FormData();
    for (const [key, value] of new FormData(form).entries()) if (key !== "files") data.append(key, value);
    for (const x of entries) { data.append("files", x.file, x.path); data.append("paths", x.path); }
    fetch(form.action, { method: "POST", body: data, credentials: "same-origin" }).then(async (r) => {
      if (r.redirected) { window.location.assign(r.url); return; }
      document.open(); document.write(await r.text()); document.close();
    });
  });
}
document.querySelectorAll("form[data-upload]").forEach(setupUpload);

// Live checks: route patterns and "which plugin serves this URL".
document.querySelectorAll("input[data-check-url]").forEach((input) => {
  const target = document.getElementById(input.getAttribute("aria-describedby").split(" ").find((id) => id.endsWith("-live")));
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!input.value.trim()) { target.replaceChildren(); return; }
      const url = `${input.dataset.checkUrl}?${input.dataset.checkParam}=${encodeURIComponent(input.value)}`;
      const r = await fetch(url, { headers: { "x-portal-fragment": "1" }, credentials: "same-origin" });
      target.innerHTML = await r.text(); // server-rendered, escaped fragment
    }, 250);
  });
});

// Experiment weights: sliders that always sum to 100 %.
document.querySelectorAll("[data-weights]").forEach((box) => {
  const sliders = Array.from(box.querySelectorAll('input[type="range"]'));
  const numbers = Array.from(box.querySelectorAll('input[type="number"][data-weight]'));
  const total = box.querySelector("[data-weight-total]");
  function render(values) {
    sliders.forEach((s, i) => { s.value = values[i]; });
    numbers.forEach((n, i) => { n.value = values[i]; });
    box.querySelectorAll("output[data-share]").forEach((o, i) => { o.textContent = `${values[i]} %`; });
    if (total) total.textContent = `${values.reduce((a, b) => a + b, 0)} %`;
  }
  function rebalance(changed, value) {
    const values = sliders.map((s) => Math.round(Number(s.value)));
    value = Math.max(0, Math.min(100, Math.round(value)));
    values[changed] = value;
    const others = values.map((_, i) => i).filter((i) => i !== changed);
    let rest = 100 - value;
    const before = others.reduce((a, i) => a + values[i], 0);
    others.forEach((i, k) => {
      const share = k === others.length - 1 ? rest : (before ? Math.round((100 - value) * values[i] / before) : Math.round((100 - value) / others.length));
      values[i] = Math.max(0, Math.min(rest, share));
      rest -= values[i];
    });
    render(values);
  }
  sliders.forEach((s, i) => s.addEventListener("input", () => rebalance(i, Number(s.value))));
  numbers.forEach((n, i) => n.addEventListener("change", () => rebalance(i, Number(n.value))));
});

// Log tail: poll for new entries and append them while "follow" is on.
document.querySelectorAll("[data-log-tail]").forEach((box) => {
  const list = box.querySelector("[data-log-lines]");
  const toggle = box.querySelector("[data-log-follow]");
  let after = Number(box.dataset.after || 0);
  let busy = false;
  async function poll() {
    if (busy || (toggle && !toggle.checked)) return;
    busy = true;
    try {
      const r = await fetch(`${box.dataset.logTail}?after=${after}`, { headers: { "x-portal-fragment": "1" }, credentials: "same-origin" });
      if (r.ok) {
        const holder = document.createElement("div");
        holder.innerHTML = await r.text();
        const rows = Array.from(holder.querySelectorAll("[data-log-id]"));
        rows.forEach((row) => { list.appendChild(row); after = Math.max(after, Number(row.dataset.logId)); });
        if (rows.length) { list.scrollTop = list.scrollHeight; box.querySelector("[data-log-empty]")?.remove(); }
      }
    } finally { busy = false; }
  }
  setInterval(poll, 1500);
});
