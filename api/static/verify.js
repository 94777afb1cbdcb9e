// Verification page: check a photo of a QR code on the server, or scan one with the camera
// (the browser's BarcodeDetector where it exists, else the vendored jsQR decoder).
(function () {
  "use strict";
  const root = document.getElementById("qr");
  if (!root) return;
  root.hidden = false; // the QR part needs this script; without it only the PDF form shows
  const msg = (name, params) => {
    const key = "msg" + name.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase());
    let text = root.dataset[key] || name;
    for (const [k, v] of Object.entries(params || {})) text = text.split("{" + k + "}").join(v);
    return text;
  };
  const $ = (id) => document.getElementById(id);
  const status = $("qr-status"), error = $("qr-error"), result = $("qr-result");

  const showError = (text) => {
    status.textContent = "";
    result.hidden = true;
    error.textContent = text;
    error.hidden = false;
  };
  const clear = () => { error.hidden = true; error.textContent = ""; result.hidden = true; };
  const when = (iso) => iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "";
  const para = (text, cls) => {
    const p = document.createElement("p");
    if (cls) p.className = cls;
    p.textContent = text;
    return p;
  };

  // The JSON of POST /api/v1/verify/qr-image in plain words.
  const showResult = (body) => {
    const claims = body.claims, state = body.status.state;
    const name = body.status.display_name || claims.display_name;
    const date = when(claims.issued_at);
    result.replaceChildren();
    const verdict = state === "valid" ? msg("valid")
      : state === "revoked" ? msg("revoked", {date: when(body.status.revoked_at), reason: body.status.revocation_reason || ""})
      : msg("unknown");
    result.append(para(verdict, "status " + (state === "valid" ? "valid" : "revoked")));
    result.append(para(msg(claims.type === "seal" ? "sealed-by" : "signed-by", {name: claims.type === "seal" ? (body.status.organisation || claims.organisation || name) : name, date: date})));
    const title = body.status.title || claims.title;
    if (title) result.append(para(msg("document", {title: title})));
    result.append(para(msg("compare")));
    status.textContent = verdict;
    result.hidden = false;
    result.focus();
  };
  const problem = (code, body) => {
    if (code === 413) return msg("too-large");
    const slug = ((body && body.type) || "").split("/").pop();
    if (slug === "qr-image-rejected") return msg("no-code");
    if (slug === "qr-signature-invalid") return msg("forged");
    if (/qr/.test(slug)) return msg("not-ours");
    return msg("failed");
  };

  $("qr-photo-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clear();
    const file = $("qr-photo").files[0];
    if (!file) { showError(msg("no-file")); return; }
    status.textContent = msg("checking");
    const form = new FormData();
    form.append("file", file);
    let answer, body;
    try {
      answer = await fetch("/api/v1/verify/qr-image", {method: "POST", body: form, credentials: "same-origin"});
      body = await answer.json();
    } catch (e) { showError(msg("network")); return; }
    if (!answer.ok) { showError(problem(answer.status, body)); return; }
    showResult(body);
  });

  // The camera: a decoder for video frames, then a loop until a code of ours is seen.
  const video = $("camera-view"), start = $("camera-start"), stop = $("camera-stop");
  let stream = null, timer = null;
  const loadJsQR = () => new Promise((resolve, reject) => {
    if (window.jsQR) { resolve(window.jsQR); return; }
    const script = document.createElement("script");
    script.src = root.dataset.decoder;
    script.onload = () => resolve(window.jsQR);
    script.onerror = reject;
    document.head.append(script);
  });
  const decoder = async () => {
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          const detector = new window.BarcodeDetector({formats: ["qr_code"]});
          return async (source) => ((await detector.detect(source))[0] || {}).rawValue || null;
        }
      } catch (e) { /* fall back to jsQR */ }
    }
    const jsQR = await loadJsQR();
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", {willReadFrequently: true});
    return async (source) => {
      const w = source.videoWidth || source.naturalWidth || source.width;
      const h = source.videoHeight || source.naturalHeight || source.height;
      if (!w || !h) return null;
      canvas.width = w; canvas.height = h;
      context.drawImage(source, 0, 0, w, h);
      const found = jsQR(context.getImageData(0, 0, w, h).data, w, h);
      return found ? found.data : null;
    };
  };
  // Only our own verification addresses are followed: a QR code can hold any link.
  const ourPage = (text) => {
    try {
      const url = new URL(text, location.href);
      return url.origin === location.origin && /^\/v\/[A-Za-z0-9_\-.~]+$/i.test(url.pathname) ? url.pathname : null;
    } catch (e) { return null; }
  };
  const stopCamera = () => {
    if (timer) clearTimeout(timer);
    timer = null;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    video.hidden = true; stop.hidden = true; start.hidden = false;
  };
  const cameraProblem = (e) => {
    const name = (e && e.name) || "";
    if (name === "NotAllowedError" || name === "SecurityError") return msg("camera-denied");
    if (name === "NotFoundError" || name === "OverconstrainedError") return msg("camera-none");
    return msg("camera-failed");
  };
  start.addEventListener("click", async () => {
    clear();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) { showError(msg("camera-unsupported")); return; }
    status.textContent = msg("camera-starting");
    let decode;
    try {
      decode = await decoder();
      stream = await navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false});
    } catch (e) { stopCamera(); showError(cameraProblem(e)); start.focus(); return; }
    video.srcObject = stream;
    video.hidden = false; stop.hidden = false; start.hidden = true;
    await video.play().catch(() => {});
    status.textContent = msg("camera-looking");
    stop.focus();
    const look = async () => {
      if (!stream) return;
      let text = null;
      try { text = await decode(video); } catch (e) { text = null; }
      if (text) {
        const path = ourPage(text);
        if (path) { status.textContent = msg("camera-found"); stopCamera(); location.assign(path); return; }
        status.textContent = msg("not-ours");
      }
      timer = setTimeout(look, 250);
    };
    look();
  });
  stop.addEventListener("click", () => { stopCamera(); status.textContent = ""; start.focus(); });
  // For the tests and for curious readers: the same decoder on any image element.
  root.decodeImage = async (image) => (await decoder())(image);
})();
