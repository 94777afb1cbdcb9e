// Login page: start an approval for the citizen app, show the code, wait, continue.
(function () {
  "use strict";
  const root = document.getElementById("login");
  if (!root) return;
  const requestId = root.dataset.request;
  const error = document.getElementById("error");
  const show = (message) => { error.textContent = message; error.hidden = false; };
  const resume = () => { window.location.assign("/oauth/authorize/resume?request=" + encodeURIComponent(requestId)); };

  const form = document.getElementById("app-form");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const code = document.getElementById("personal-code").value.trim();
      const started = await fetch("/api/v1/auth/app", {
        method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
        body: JSON.stringify({personal_code: code}),
      });
      const body = await started.json();
      if (!started.ok) { show(body.detail || body.title || "Login could not start."); return; }
      form.hidden = true;
      document.getElementById("app-wait").hidden = false;
      document.getElementById("verification-code").textContent = body.verification_code;
      const poll = async () => {
        const answer = await fetch("/api/v1/auth/app/" + encodeURIComponent(body.request_id), {credentials: "same-origin"});
        const status = await answer.json();
        if (status.state === "completed") { resume(); return; }
        if (status.state === "pending") { setTimeout(poll, 1000); return; }
        const reasons = {refused: "You refused the login in the app.", expired: "The request expired.",
                         failed: "The login failed: " + (status.reason || "")};
        show((reasons[status.state] || "The login did not succeed.") + " Try again.");
        form.hidden = false;
        document.getElementById("app-wait").hidden = true;
      };
      setTimeout(poll, 1000);
    });
  }

  const card = document.getElementById("card-login");
  if (card) {
    card.addEventListener("click", async () => {
      if (!window.webeid) { show("The Web eID browser extension is not installed. Install it from web-eid.eu, or use the app."); return; }
      try {
        const challenge = await (await fetch("/api/v1/auth/web-eid/challenge", {credentials: "same-origin"})).json();
        const token = await window.webeid.authenticate(challenge.nonce, {lang: document.documentElement.lang});
        const login = await fetch("/api/v1/auth/web-eid/login", {
          method: "POST", headers: {"Content-Type": "application/json"}, credentials: "same-origin",
          body: JSON.stringify({auth_token: token, nonce: challenge.nonce}),
        });
        if (login.ok) { resume(); } else { show((await login.json()).detail || "The card login failed."); }
      } catch (e) { show("The card could not be used: " + (e.message || e)); }
    });
  }
})();
