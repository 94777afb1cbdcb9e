// Signing page: upload a PDF with a progress bar (or start an envelope's signature), show
// the verification code, wait for the app, offer the signed PDF.
(function () {
  "use strict";
  const root = document.getElementById("sign");
  if (!root) return;
  const msg = (name) => root.dataset["msg" + name.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())] || name;
  const $ = (id) => document.getElementById(id);
  const status = $("sign-status");
  const envelope = root.dataset.envelope;
  const limit = parseInt(root.dataset.limit || "0", 10);
  let file = null;

  const fail = (message) => {
    $("sign-wait").hidden = true;
    $("verification-code").textContent = "";
    if ($("upload")) $("upload").hidden = true;
    status.textContent = "";
    $("sign-error-text").textContent = message;
    $("sign-error").hidden = false;
    $("sign-retry").focus();
  };
  const problemMessage = (status_, body) => {
    if (status_ === 413) return msg("too-large");
    if (status_ === 429) return msg("busy");
    const slug = (body && body.type || "").split("/").pop();
    if (slug === "invalid-document") return msg("not-pdf") + (body.detail ? " (" + body.detail + ")" : "");
    return (body && (body.detail || body.title)) || msg("failed");
  };
  const outcome = (state, reason) => {
    if (state === "refused") return msg("refused");
    if (state === "expired") return msg("expired");
    if (/revoked|suspended/.test(reason || "")) return msg("revoked");
    return msg("failed") + (reason ? " (" + reason + ")" : "");
  };

  const wait = async (session) => {
    // Long-poll: the server holds each request for a few seconds while nothing changes.
    for (;;) {
      let answer, body;
      try {
        answer = await fetch("/api/v1/signing/" + encodeURIComponent(session) + "?wait=true", {credentials: "same-origin"});
        body = await answer.json();
      } catch (e) { await new Promise((r) => setTimeout(r, 2000)); continue; }
      if (!answer.ok) { fail(problemMessage(answer.status, body)); return; }
      if (body.state === "awaiting_signature") continue;
      if (body.state === "finishing") { status.textContent = msg("finishing"); await new Promise((r) => setTimeout(r, 500)); continue; }
      if (body.state === "completed") {
        $("sign-wait").hidden = true;
        status.textContent = msg("done");
        const link = $("download");
        link.href = envelope ? "/api/v1/envelopes/" + encodeURIComponent(envelope) + "/document"
                             : "/api/v1/signing/" + encodeURIComponent(session) + "/document";
        $("sign-done").hidden = false;
        link.focus();
        return;
      }
      fail(outcome(body.state, body.failure_reason));
      return;
    }
  };
  const started = (body) => {
    if ($("upload")) $("upload").hidden = true;
    $("verification-code").textContent = body.verification_code || "";
    $("sign-wait").hidden = false;
    status.textContent = msg("waiting");
    wait(body.id);
  };

  const form = $("sign-form");
  if (form) {
    const input = $("file");
    const drop = $("drop");
    const choose = (chosen) => {
      file = chosen || null;
      $("file-chosen").textContent = file ? msg("chosen").replace("{name}", file.name) : "";
    };
    input.addEventListener("change", () => choose(input.files[0]));
    ["dragenter", "dragover"].forEach((type) => drop.addEventListener(type, (event) => {
      event.preventDefault(); drop.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((type) => drop.addEventListener(type, () => drop.classList.remove("over")));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      const dropped = event.dataTransfer && event.dataTransfer.files[0];
      if (dropped) choose(dropped);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      $("sign-error").hidden = true;
      if (!file) { fail(msg("no-file")); return; }
      if (limit && file.size > limit) { fail(msg("too-large")); return; }
      const params = new URLSearchParams({level: $("level").value, name: file.name.slice(-200)});
      if ($("visible-off").checked) params.set("visible", "false");
      else {
        params.set("page", String(parseInt($("page").value || "-1", 10) || -1));
        params.set("position", $("position").value);
      }
      if ($("reason").value.trim()) params.set("reason", $("reason").value.trim());
      const xhr = new XMLHttpRequest();  // fetch() has no upload progress events
      xhr.open("POST", "/api/v1/signing?" + params.toString());
      xhr.setRequestHeader("Content-Type", "application/pdf");
      const progress = $("upload-progress");
      progress.value = 0;
      $("upload").hidden = false;
      form.hidden = true;
      status.textContent = msg("uploading");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) progress.value = Math.round(100 * e.loaded / e.total);
      });
      xhr.upload.addEventListener("load", () => { progress.value = 100; status.textContent = msg("preparing"); });
      xhr.addEventListener("error", () => { form.hidden = false; fail(msg("network")); });
      xhr.addEventListener("load", () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 201 || xhr.status === 200) { started(body); return; }
        form.hidden = false;
        fail(problemMessage(xhr.status, body));
      });
      xhr.send(file);
    });
  }

  const envelopeButton = $("envelope-sign");
  if (envelopeButton) {
    envelopeButton.addEventListener("click", async () => {
      $("sign-error").hidden = true;
      envelopeButton.disabled = true;
      status.textContent = msg("preparing");
      try {
        const answer = await fetch("/api/v1/envelopes/" + encodeURIComponent(envelope) + "/sign",
                                   {method: "POST", credentials: "same-origin"});
        const body = await answer.json();
        if (!answer.ok) { envelopeButton.disabled = false; fail(problemMessage(answer.status, body)); return; }
        started(body);
      } catch (e) { envelopeButton.disabled = false; fail(msg("network")); }
    });
  }

  $("sign-retry").addEventListener("click", () => {
    $("sign-error").hidden = true;
    if (envelopeButton) { envelopeButton.disabled = false; envelopeButton.focus(); return; }
    if (form) { form.hidden = false; $("file").focus(); }
  });
})();
