// The sicodec page: upload or pick an image, choose model / level / fill mode / seed, compare.
// Talks only to the server that served it (see sicodec/web/app.py for the API). No libraries.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = {
    info: null, source: null, job: null, view: null, classic: null,
    jobSeq: 0, viewSeq: 0, classicSeq: 0, playing: false, timer: null, classicTimer: null, classicAbort: null,
  };

  // --- small helpers ---------------------------------------------------------------------------------------

  function setStatus(kind, text) {
    document.body.dataset.state = kind;
    if (text !== undefined) $("status").textContent = text;
  }

  function showError(message) {
    const el = $("error");
    el.textContent = message || "";
    el.hidden = !message;
    if (message) setStatus("error", "");
  }

  async function api(url, options) {
    let response;
    try {
      response = await fetch(url, options);
    } catch (e) {
      throw new Error(`the server cannot be reached (${e.message})`);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      throw new Error(body && body.error ? body.error : `request failed: ${response.status} ${response.statusText}`);
    }
    return body;
  }

  const fixed = (x, digits) => (x === null || x === undefined ? "n/a" : Number(x).toFixed(digits));
  const count = (n) => Number(n).toLocaleString("en-US");
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function el(tag, props, children) {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children || []) node.append(child);
    return node;
  }

  function selectedModel() {
    return state.info.models.find((m) => m.name === $("model").value);
  }

  function seedValue() {
    const text = $("seed").value.trim();
    const seed = Number(text);
    if (text === "" || !Number.isInteger(seed) || seed < 0 || seed > state.info.max_seed) {
      showError(`The seed must be a whole number from 0 to ${state.info.max_seed}.`);
      return null;
    }
    return seed;
  }

  // --- start -----------------------------------------------------------------------------------------------

  async function init() {
    try {
      state.info = await api("/api/info");
    } catch (e) {
      showError(`Cannot load the page's settings: ${e.message}`);
      return;
    }
    const info = state.info;
    for (const m of info.models) {
      const levels = m.progressive ? `${m.levels} levels` : "1 level";
      $("model").add(new Option(`${m.name} (${levels}, ${m.status})`, m.name));
    }
    $("model").value = info.default_model;
    for (const name of info.modes) $("mode").add(new Option(name, name));
    $("mode").value = info.default_mode;
    for (const name of info.samples) $("sample").add(new Option(name, name));
    $("seed").max = String(info.max_seed);
    const mb = info.limits.max_upload_bytes / 2 ** 20;
    $("limits").textContent = `Uploads up to ${mb.toFixed(mb < 10 ? 1 : 0)} MB and ` +
      `${(info.limits.max_pixels / 1e6).toFixed(1)} megapixels; a .sic file opens with the model named in it.`;
    for (const c of info.classic) {
      if (c.available) $("right").add(new Option(c.label, c.name));
    }
    modelChanged(false);
    wire();
    setStatus("idle", "Choose an image, a .sic file or a sample.");
  }

  function wire() {
    $("file").addEventListener("change", () => {
      const file = $("file").files[0];
      if (file) createJob({ file });
    });
    $("use-sample").addEventListener("click", () => createJob({ sample: $("sample").value }));
    $("model").addEventListener("change", () => modelChanged(true));
    $("level").addEventListener("input", () => {
      showLevel();
      clearTimeout(state.timer);
      state.timer = setTimeout(requestView, 150);
    });
    $("mode").addEventListener("change", requestView);
    $("seed").addEventListener("change", () => {
      if (state.job && state.job.progressive) requestView();
    });
    $("play").addEventListener("click", play);
    $("right").addEventListener("change", updateRight);
    $("recon").addEventListener("load", reconLoaded);
    $("recon").addEventListener("error", () => {
      if ($("recon").getAttribute("src")) showError("The reconstruction could not be loaded; try again.");
    });
    wireSplit();
  }

  function modelChanged(reencode) {
    const m = selectedModel();
    const notes = [];
    if (m.status === "untrained") notes.push("untrained (random weights): its reconstructions are not meaningful");
    else if (m.status === "preliminary") notes.push(`preliminary (${m.trained_steps.toLocaleString("en")} training steps)`);
    if (!m.progressive) notes.push("one level (not progressive): level, fill mode and seed do not apply");
    $("model-note").textContent = notes.join("; ");
    if (!state.job) {
      $("mode").disabled = $("seed").disabled = !m.progressive;
    }
    if (reencode && state.source) createJob(state.source);
  }

  // --- jobs ------------------------------------------------------------------------------------------------

  async function createJob(source) {
    showError(null);
    const info = state.info;
    const params = new URLSearchParams({ model: $("model").value });
    const seed = selectedModel().progressive ? seedValue() : 0;
    if (seed === null) return;
    params.set("seed", String(seed));
    const options = { method: "POST" };
    let what;
    if (source.sample) {
      params.set("sample", source.sample);
      what = source.sample;
    } else {
      const file = source.file;
      if (file.size === 0) return showError(`${file.name} is empty.`);
      if (file.size > info.limits.max_upload_bytes) {
        return showError(`${file.name} is ${count(file.size)} bytes; the limit is ${count(info.limits.max_upload_bytes)} bytes.`);
      }
      params.set("filename", file.name);
      options.body = file;
      options.headers = { "Content-Type": "application/octet-stream" };
      what = file.name;
    }
    state.playing = false;
    const seq = ++state.jobSeq;
    setStatus("busy", `Sending ${what} and coding it with ${$("model").value}…`);
    let job;
    try {
      job = await api(`/api/jobs?${params}`, options);
    } catch (e) {
      if (seq === state.jobSeq) showError(e.message);
      return;
    }
    if (seq !== state.jobSeq) return;
    state.source = job.kind === "image" ? source : null;
    setJob(job);
  }

  function setJob(job) {
    state.classicSeq++;
    clearTimeout(state.classicTimer);
    if (state.classicAbort) state.classicAbort.abort();
    state.job = job;
    state.view = null;
    state.classic = null;
    const slider = $("level");
    slider.max = String(job.levels);
    slider.value = String(job.levels);
    slider.disabled = !job.progressive || job.levels < 2;
    $("mode").disabled = !job.progressive;
    $("seed").disabled = !job.progressive;
    $("play").disabled = !job.progressive || job.levels < 2;
    if (job.kind === "sic") {
      $("model").value = job.model;
      $("seed").value = String(job.seed);
    }
    $("level-note").textContent = job.progressive
      ? `${job.levels} of ${job.levels_total} levels are in this file`
      : `${job.model} is not progressive: one level`;

    const notices = $("notices");
    notices.replaceChildren(...job.notices.map((n) => el("li", { textContent: `note: ${n}` })));
    notices.hidden = job.notices.length === 0;

    const rows = job.sizes.map((s, i) => {
      const level = i + 1;
      const button = el("button", { type: "button", textContent: job.progressive ? String(level) : "all",
                                    disabled: !job.progressive });
      button.addEventListener("click", () => {
        $("level").value = String(level);
        requestView();
      });
      const row = el("tr", {}, [el("td", {}, [button]), el("td", { textContent: count(s.bytes) }),
                                el("td", { textContent: fixed(s.bpp, 4) })]);
      row.dataset.level = String(level);
      return row;
    });
    $("levels").tBodies[0].replaceChildren(...rows);

    const compare = $("compare");
    compare.classList.toggle("single", !job.original);
    if (job.original) $("original").src = job.original;
    else $("original").removeAttribute("src");
    $("right").value = "sic";
    $("right").disabled = !job.original;
    $("classic").replaceChildren();
    $("result").hidden = false;
    requestView();
  }

  // --- one level -------------------------------------------------------------------------------------------

  function showLevel() {
    const job = state.job;
    $("level-value").textContent = job ? `${$("level").value} / ${job.levels}` : "-";
  }

  function requestView() {
    const job = state.job;
    if (!job) return Promise.resolve();
    showLevel();
    const level = Number($("level").value);
    const params = new URLSearchParams({ level: String(level) });
    if (job.progressive) {
      const seed = seedValue();
      if (seed === null) return Promise.resolve();
      params.set("mode", $("mode").value);
      params.set("seed", String(seed));
    }
    showError(null);
    const seq = ++state.viewSeq;
    setStatus("busy", job.progressive ? `Decoding level ${level} of ${job.levels}…` : "Decoding…");
    return api(`/api/jobs/${job.id}/view?${params}`).then((view) => {
      if (seq !== state.viewSeq || job !== state.job) return;
      state.view = view;
      showView(job, view);
      requestClassic(job, view.level);
    }, (e) => {
      if (seq === state.viewSeq) showError(e.message);
    });
  }

  function showView(job, v) {
    $("stat-bytes").textContent = count(v.bytes);
    $("stat-bpp").textContent = fixed(v.bpp, 4);
    $("stat-psnr").textContent = v.psnr === null ? (v.psnr_note === "identical to the original" ? "∞ dB" : "n/a")
      : `${fixed(v.psnr, 2)} dB`;
    $("stat-lpips").textContent = fixed(v.lpips, 4);
    const notes = [];
    if (v.psnr === null && v.psnr_note) notes.push(`PSNR: ${v.psnr_note}`);
    if (v.lpips === null && v.lpips_note && v.lpips_note !== v.psnr_note) notes.push(`LPIPS n/a: ${v.lpips_note}`);
    $("metric-note").textContent = notes.join(" ");
    $("metric-note").hidden = notes.length === 0;
    const params = new URLSearchParams({ level: String(v.level) });
    if (job.progressive) params.set("seed", String(v.seed));
    $("download").href = `/api/jobs/${job.id}/download?${params}`;
    for (const row of $("levels").tBodies[0].rows) row.classList.toggle("current", row.dataset.level === String(v.level));
    updateRight();
  }

  function updateRight() {
    const job = state.job;
    const v = state.view;
    if (!job || !v) return;
    let src = v.image;
    let tag = job.progressive ? `sicodec, level ${v.level}` : "sicodec";
    const which = $("right").value;
    if (which !== "sic") {
      const item = state.classic && state.classic.codecs.find((c) => c.name === which && !c.error);
      const label = $("right").selectedOptions[0].textContent;
      if (item) {
        src = item.image;
        tag = `${item.label}, quality ${item.quality}`;
      } else {
        tag = `sicodec (${label} is still being computed)`;
      }
    }
    $("right-tag").textContent = tag;
    const img = $("recon");
    if (img.src === new URL(src, location.href).href && img.complete && img.naturalWidth > 0) reconLoaded();
    else img.src = src;
  }

  function reconLoaded() {
    const job = state.job;
    const v = state.view;
    if (!job || !v) return;
    $("recon").dataset.level = String(v.level);
    const head = job.progressive ? `Level ${v.level} of ${job.levels}` : "The whole file";
    setStatus("ready", `${head}, decoded in ${fixed(v.decode_seconds, 2)} s.`);
  }

  // --- the classic codecs ----------------------------------------------------------------------------------

  function requestClassic(job, level) {
    const seq = ++state.classicSeq;
    state.classic = null;
    clearTimeout(state.classicTimer);
    if (state.classicAbort) state.classicAbort.abort();  // the server stops a search nobody waits for
    state.classicAbort = null;
    if (!job.original) {
      $("classic-status").textContent = "The classic codecs need the original image; an opened .sic file has none.";
      $("classic").replaceChildren();
      return;
    }
    $("classic-status").textContent = `Finding the JPEG, WebP and AVIF qualities that fit ${count(job.sizes[level - 1].bytes)} bytes…`;
    $("classic").classList.add("stale");
    // Wait until the level has stayed put a moment: moving the slider should not start a search per step.
    state.classicTimer = setTimeout(() => {
      if (seq !== state.classicSeq) return;
      const abort = new AbortController();
      state.classicAbort = abort;
      api(`/api/jobs/${job.id}/classic?level=${level}`, { signal: abort.signal }).then((c) => {
        if (seq !== state.classicSeq || job !== state.job) return;
        state.classic = c;
        showClassic(c);
        updateRight();
      }, (e) => {
        if (seq === state.classicSeq && !abort.signal.aborted) {
          $("classic-status").textContent = `The classic codecs failed: ${e.message}`;
        }
      });
    }, 400);
  }

  function showClassic(c) {
    $("classic").classList.remove("stale");
    $("classic-status").textContent = `Each codec at its highest quality whose file is not larger than the .sic file ` +
      `(${count(c.bytes)} bytes, ${fixed(c.bpp, 4)} bpp). Click one to put it on the right side of the split.`;
    const cards = c.codecs.map((item) => {
      if (item.error) {
        return el("figure", { className: "card unavailable" }, [
          el("figcaption", { textContent: `${item.label}: not available here (${item.error})` })]);
      }
      const lines = [
        `${item.label}, quality ${item.quality}`,
        `${count(item.bytes)} bytes, ${fixed(item.bpp, 4)} bpp`,
        `PSNR ${item.psnr === null ? "n/a" : `${fixed(item.psnr, 2)} dB`}, LPIPS ${fixed(item.lpips, 4)}`,
      ];
      if (item.note) lines.push(item.note);
      const card = el("figure", { className: "card" }, [
        el("img", { src: item.image, alt: `${item.label} at quality ${item.quality}` }),
        el("figcaption", {}, lines.map((t) => el("div", { textContent: t }))),
      ]);
      card.dataset.codec = item.name;
      card.addEventListener("click", () => {
        $("right").value = item.name;
        updateRight();
        $("compare").scrollIntoView({ behavior: "smooth", block: "nearest" });
      });
      return card;
    });
    $("classic").replaceChildren(...cards);
  }

  // --- stepping through the levels -------------------------------------------------------------------------

  function whenShown() {
    return new Promise((resolve) => {
      const check = () => (document.body.dataset.state === "busy" ? setTimeout(check, 50) : resolve());
      check();
    });
  }

  async function play() {
    if (state.playing) {
      state.playing = false;
      return;
    }
    const job = state.job;
    state.playing = true;
    $("play").textContent = "Stop";
    for (let k = 1; k <= job.levels && state.playing && state.job === job; k++) {
      $("level").value = String(k);
      await requestView();
      await whenShown();
      if (document.body.dataset.state === "error") break;
      await sleep(500);
    }
    state.playing = false;
    $("play").textContent = "Step through levels";
  }

  // --- the split -------------------------------------------------------------------------------------------

  function setSplit(percent) {
    const p = Math.max(0, Math.min(100, percent));
    $("compare").style.setProperty("--split", `${p}%`);
    $("handle").setAttribute("aria-valuenow", String(Math.round(p)));
  }

  function wireSplit() {
    const compare = $("compare");
    let dragging = false;
    const move = (e) => {
      const r = compare.getBoundingClientRect();
      setSplit(((e.clientX - r.left) / r.width) * 100);
    };
    compare.addEventListener("pointerdown", (e) => {
      if (compare.classList.contains("single")) return;
      dragging = true;
      compare.setPointerCapture(e.pointerId);
      move(e);
      e.preventDefault();
    });
    compare.addEventListener("pointermove", (e) => {
      if (dragging) move(e);
    });
    const stop = () => {
      dragging = false;
    };
    compare.addEventListener("pointerup", stop);
    compare.addEventListener("pointercancel", stop);
    $("handle").addEventListener("keydown", (e) => {
      const now = Number($("handle").getAttribute("aria-valuenow"));
      const step = e.shiftKey ? 10 : 2;
      const next = { ArrowLeft: now - step, ArrowRight: now + step, Home: 0, End: 100 }[e.key];
      if (next !== undefined) {
        setSplit(next);
        e.preventDefault();
      }
    });
    setSplit(50);
  }

  document.addEventListener("DOMContentLoaded", init);
})();
