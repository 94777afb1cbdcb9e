// Login page: the citizen app (start, show the code, wait, continue) or a card via Web eID.
// Messages come from data-msg-* attributes, so the page's language is the script's too.
(function () {
  "use strict";
  const root = document.getElementById("login");
  if (!root) return;
  const msg = (name) => root.dataset["msg" + name.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())] || name;
  const next = root.dataset.next || "/";
  const errorBox = document.getElementById("error");
  const errorText = document.getElementById("error-text");
  const form = document.getElementById("app-form");
  const wait = document.getElementById("app-wait");
  const status = document.getElementById("app-status");
  const input = document.getElementById("personal-code");
  let polling = null;
  let current = null;

  const fail = (message) => {
    errorText.textContent = message;
    errorBox.hidden = false;
    document.getElementById("retry").focus();
  };
  const reset = () => {
    if (polling) { clearTimeout(polling); polling = null; }
    current = null;
    errorBox.hidden = true;
    if (wait) { wait.hidden = true; document.getElementById("verification-code").textContent = ""; }
    if (form) { form.hidden = false; input.focus(); }
  };
  const problemMessage = (body) => {
    const slug = (body && body.type || "").split("/").pop();
    if (slug === "citizen-not-found") return msg("unknown");
    if (slug === "invalid-personal-code" || slug === "validation") return msg("format");
    if (slug === "citizen-not-active") return msg("inactive");
    if (slug === "rate-limited" || (body && body.status === 429)) return msg("busy");
    return msg("start");
  };
  const failure = (state, reason) => {
    if (state === "refused") return msg("refused");
    if (state === "expired") return msg("expired");
    if (/revoked|suspended/.test(reason || "")) return msg("revoked");
    return msg("failed");
  };

  const poll = async () => {
    polling = null;
    if (!current) return;
    let state;
    try {
      const answer = await fetch("/api/v1/auth/app/" + encodeURIComponent(current), {credentials: "same-origin"});
      state = await answer.json();
      if (!answer.ok) { reset(); fail(problemMessage(state)); return; }
    } catch (e) {
      polling = setTimeout(poll, 2000);  // a network blip: keep waiting
      return;
    }
    if (state.state === "completed") {
      status.textContent = msg("done");
      window.location.assign(next);
      return;
    }
    if (state.state === "pending") { polling = setTimeout(poll, 1000); return; }
    const message = failure(state.state, state.reason);
    reset();
    fail(message);
  };

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      const code = input.value.replace(/\s/g, "");
      if (!/^[0-9]{11}$/.test(code)) { input.setAttribute("aria-invalid", "true"); fail(msg("format")); return; }
      input.removeAttribute("aria-invalid");
      let started, body;
      try {
        started = await fetch("/api/v1/auth/app", {
          method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
          body: JSON.stringify({personal_code: code}),
        });
        body = await started.json();
      } catch (e) { fail(msg("network")); return; }
      if (!started.ok) { fail(problemMessage(body)); return; }
      current = body.request_id;
      form.hidden = true;
      wait.hidden = false;
      document.getElementById("verification-code").textContent = body.verification_code;
      status.textContent = msg("waiting");
      document.getElementById("app-cancel").focus();
      polling = setTimeout(poll, 1000);
    });
    document.getElementById("app-cancel").addEventListener("click", reset);
  }
  document.getElementById("retry").addEventListener("click", reset);

  // Web eID: the extension answers window messages (the protocol of web-eid.js).
  const card = document.getElementById("card-login");
  const cardStatus = document.getElementById("card-status");
  const ask = (message, done, timeoutMs) => new Promise((resolve, reject) => {
    let timer = null;
    const listener = (event) => {
      if (event.source !== window || !event.data || typeof event.data.action !== "string") return;
      const action = event.data.action;
      if (action === message.action + "-ack") { clearTimeout(timer); timer = null; return; }
      if (action === done + "-success" || action === done + "-failure") {
        window.removeEventListener("message", listener);
        if (timer) clearTimeout(timer);
        if (action.endsWith("-success")) resolve(event.data); else reject(event.data.error || {});
      }
    };
    window.addEventListener("message", listener);
    timer = setTimeout(() => { window.removeEventListener("message", listener); reject({code: "ERR_WEBEID_EXTENSION_UNAVAILABLE"}); }, timeoutMs);
    window.postMessage(message, window.location.origin);
  });
  if (card) {
    card.addEventListener("click", async () => {
      errorBox.hidden = true;
      cardStatus.textContent = msg("card-wait");
      try {
        await ask({action: "web-eid:status"}, "web-eid:status", 2000);
      } catch (e) { cardStatus.textContent = ""; fail(msg("no-extension")); return; }
      try {
        const challenge = await (await fetch("/api/v1/auth/web-eid/challenge", {credentials: "same-origin"})).json();
        const token = await ask({action: "web-eid:authenticate", challengeNonce: challenge.nonce,
                                 lang: document.documentElement.lang}, "web-eid:authenticate", 120000);
        const authToken = {};
        for (const key of ["unverifiedCertificate", "algorithm", "signature", "format", "appVersion"]) {
          if (key in token) authToken[key] = token[key];
        }
        const login = await fetch("/api/v1/auth/web-eid/login", {
          method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
          body: JSON.stringify({auth_token: authToken, nonce: challenge.nonce}),
        });
        if (login.ok) { cardStatus.textContent = msg("done"); window.location.assign(next); return; }
        cardStatus.textContent = "";
        fail(msg("card-failed"));
      } catch (e) { cardStatus.textContent = ""; fail(msg("card-failed")); }
    });
  }
})();
